"""One encoder (core.model.encoding.FeatureSpec): the same rows scored through every path give the same predictions.

A run is trained on numbers, booleans, dates, timestamps and text categories, all with missing values, and its
test rows are then predicted by each path that turns rows into the model's input: the holdout scoring behind
Evaluate, batch scoring (Score), SHAP (Explain) and the what-if form. Scoring also sees a category the training
data never had. Every path must give the same number for every row.
"""
from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.data import catalog as cat
from core.data import engine
from core.errors import QuarryError
from core.evaluate import holdout
from core.explain import local, shap
from core.model import job as train_job
from core.model import runs, score
from core.model.encoding import FeatureSpec
from tests.eval_support import register_table

FEATURES = ["x", "flag", "day", "when", "channel"]


def mixed_table(rows: int = 2000, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    flag = rng.uniform(size=rows) < 0.4
    day = [date(2020, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 900, size=rows)]
    when = [datetime(2021, 1, 1, tzinfo=UTC) + timedelta(seconds=int(s)) for s in rng.integers(0, 10**8, size=rows)]
    channel = rng.choice(["web", "shop", "phone", "mail"], size=rows)
    signal = 1.2 * x + 1.0 * flag + 0.8 * (channel == "web") + 0.002 * np.array([(d - date(2020, 1, 1)).days
                                                                              for d in day]) - 1.5
    y = rng.uniform(size=rows) < 1 / (1 + np.exp(-signal))
    missing = rng.uniform(size=(5, rows)) < 0.05
    def holes(values, m):  # noqa: E306
        return [None if m[i] else v for i, v in enumerate(values)]
    return pa.table({"id": pa.array(range(rows), pa.int64()),
                     "x": pa.array(holes(x.tolist(), missing[0]), pa.float64()),
                     "flag": pa.array(holes(flag.tolist(), missing[1]), pa.bool_()),
                     "day": pa.array(holes(day, missing[2]), pa.date32()),
                     "when": pa.array(holes(when, missing[3]), pa.timestamp("us", tz="UTC")),
                     "channel": pa.array(holes(channel.tolist(), missing[4]), pa.string()),
                     "y": pa.array(y.tolist(), pa.bool_())})


@pytest.fixture
def trained(settings, root):
    register_table(settings, root, "mixed", mixed_table())
    params = {"dataset": "mixed", "target": "y", "features": FEATURES, "num_boost_round": 40,
              "early_stopping_rounds": 0, "device": "cpu",
              "split": {"kind": "random", "valid": 0.2, "test": 0.2, "seed": 42}}
    return runs.load_run(settings, train_job.run(params)["run_id"])


def test_every_path_predicts_the_same_for_the_same_rows(settings, root, trained):
    run = trained
    assert list(run.info["feature_kinds"]) == ["numeric", "boolean", "temporal", "temporal", "categorical"]
    con = engine.connect(settings)
    cat.sync_views(con, cat.Catalog(settings).list())
    spec = FeatureSpec.for_run(run)

    # Evaluate's path: the test split drawn again and scored batch by batch
    test = holdout.scored_test(settings, con, run)
    rows = pq.read_table(test.path).sort_by("id")
    ids = rows["id"].to_pylist()
    holdout_scores = rows["__score"].to_numpy()
    assert len(ids) == test.rows > 300

    # Score's path: the whole dataset, keeping the id; the test rows' scores picked out
    out = root / "workspace" / "scored.parquet"
    score.score(settings, con, run, "mixed", out, keep=("id",), batch_size=97)
    scored = duckdb.sql(f"SELECT id, score FROM '{out}' ORDER BY id").to_arrow_table()
    by_id = dict(zip(scored["id"].to_pylist(), scored["score"].to_pylist(), strict=True))
    batch_scores = np.array([by_id[i] for i in ids])

    # Explain's path: SHAP of the encoded rows adds up to the raw score
    x = spec.encode(rows.select(FEATURES))
    values, base = shap.contributions(run, x)
    shap_scores = 1 / (1 + np.exp(-(values.sum(axis=1) + base)))

    # The what-if form's path: each row's own values, as Python values
    records = rows.select(FEATURES).to_pylist()
    what_if = np.array([local.what_if(run, r).prediction for r in records[:60]])

    np.testing.assert_array_equal(batch_scores, holdout_scores)
    np.testing.assert_allclose(shap_scores, holdout_scores, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(what_if, holdout_scores[:60], rtol=1e-9, atol=1e-12)
    con.close()


def test_an_unseen_category_is_missing_on_every_path(settings, root, trained):
    run = trained
    spec = FeatureSpec.for_run(run)
    row = {"x": 0.3, "flag": True, "day": date(2021, 5, 1), "when": datetime(2022, 1, 1, tzinfo=UTC),
           "channel": "carrier pigeon"}
    as_missing = {**row, "channel": None}
    table = pa.Table.from_pylist([row, as_missing], schema=mixed_table(1).select(FEATURES).schema)
    x = spec.encode(table)
    assert np.isnan(x[0, 4]) and np.isnan(x[1, 4])
    np.testing.assert_array_equal(x[0], x[1])
    assert local.what_if(run, row).prediction == local.what_if(run, as_missing).prediction
    np.testing.assert_array_equal(local.encode_row(spec, row), x[:1])


def test_a_run_without_feature_kinds_is_encoded_from_the_column_types(trained):
    run = trained
    info = {k: v for k, v in run.info.items() if k != "feature_kinds"}
    old = dataclasses.replace(run, info=info)
    types = {"x": "DOUBLE", "flag": "BOOLEAN", "day": "DATE", "when": "TIMESTAMP WITH TIME ZONE", "channel": "VARCHAR"}
    assert FeatureSpec.for_run(old, types) == FeatureSpec.for_run(run)
    with pytest.raises(QuarryError, match="lacks the kind of each feature"):
        FeatureSpec.for_run(old)
