"""The leakage guard (core.model.leakage): a feature that predicts the target almost alone is left out by default.

The measure is checked on columns whose relation to the target is known (a threshold, a non-monotone function, a
text mapping, a pair whose difference is the target, an ID, noise), then training is checked end to end on the
flights demo: the default run for `delayed` must not use `arr_delay` (nor the arrival time, whose difference
with the scheduled one is the delay), and its test AUC must be a believable figure.
"""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from core.cli.main import main
from core.data import catalog as cat
from core.data import engine
from core.data.demo.flights import write_flights
from core.model import job as train_job
from core.model import leakage, runs
from core.model.splits import SplitConfig, split_sql
from tests.eval_support import register_table

RNG = np.random.default_rng(11)
N = 6000


def _auc_of(values: np.ndarray, y: np.ndarray, kind: str = "numeric") -> float:
    return leakage.strength(values, kind, y, "binary", 2, seed=1)[1]


def test_a_threshold_on_the_feature_is_a_leak_and_noise_is_not():
    x = RNG.normal(size=N)
    y = (x > 0.3).astype(float)
    assert _auc_of(x, y) >= leakage.LEAK_AUC
    assert _auc_of(RNG.normal(size=N), y) < 0.6
    noisy = x + RNG.normal(scale=1.0, size=N)  # a strong, honest feature: predictive, not a function of y
    assert 0.75 < _auc_of(noisy, y) < leakage.LEAK_AUC


def test_the_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    score = RNG.integers(0, 7, size=N).astype(float)  # few values: many ties, like out-of-fold bin means
    y = (RNG.uniform(size=N) < 0.2 + 0.08 * score).astype(float)
    assert leakage._auc(score, y) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert leakage._auc(score, np.zeros(N)) == 0.5


def test_a_non_monotone_function_is_a_leak_too():
    x = RNG.uniform(-3, 3, size=N)
    y = (np.abs(x) > 1.5).astype(float)  # AUC of x itself is ~0.5; its bins predict y whole
    assert _auc_of(x, y) >= leakage.LEAK_AUC


def test_ids_and_many_valued_categories_do_not_look_leaky_out_of_fold():
    y = (RNG.uniform(size=N) < 0.3).astype(float)
    ids = np.arange(N).astype(np.float64)
    assert _auc_of(ids, y) < 0.6
    codes = np.array([f"c{i}" for i in range(N)], dtype=object)  # a unique text per row: perfect in sample
    assert _auc_of(codes, y, "categorical") < 0.6


def test_a_text_mapping_of_the_target_is_a_leak():
    y = (RNG.uniform(size=N) < 0.4).astype(float)
    status = np.where(y == 1, "refunded", "kept").astype(object)
    assert _auc_of(status, y, "categorical") >= leakage.LEAK_AUC


def test_multiclass_and_regression_measures():
    cls = RNG.integers(0, 4, size=N)
    label = np.array(["a", "b", "c", "d"], dtype=object)[cls]
    measure, share = leakage.strength(label, "categorical", cls.astype(float), "multiclass", 4)
    assert measure == "share of classes predicted" and share >= leakage.LEAK_SHARE
    assert leakage.strength(RNG.normal(size=N), "numeric", cls.astype(float), "multiclass", 4)[1] < 0.2
    x = RNG.normal(size=N)
    assert leakage.strength(x, "numeric", 3 * x + 1, "regression", 1) == ("R²", pytest.approx(1.0, abs=0.02))
    assert leakage.strength(x, "numeric", x + RNG.normal(scale=2, size=N), "regression", 1)[1] < 0.5


def _split_query(con, table: str, target: str) -> str:
    return split_sql(con, f'SELECT * FROM "{table}"', {}, SplitConfig(seed=42), target)


def test_check_flags_a_pair_and_leaves_out_its_stronger_column(settings, root):
    start = RNG.uniform(0, 1000, size=N)
    duration = RNG.exponential(20, size=N)
    table = pa.table({"start": start, "end": start + duration, "honest": RNG.normal(size=N) + (duration > 25),
                      "late": pa.array((duration > 25).tolist())})
    register_table(settings, root, "trips", table)
    con = engine.connect(settings)
    cat.sync_views(con, cat.Catalog(settings).list())
    found, checked = leakage.check(con, _split_query(con, "trips", "late"), {}, ["start", "end", "honest"],
                                   ["numeric"] * 3, "late", "binary", [False, True])
    assert checked == pytest.approx(N * 0.7, rel=0.1)
    assert len(found) == 1 and found[0].feature in ("start", "end")  # alone both are noise; either may go
    assert found[0].pair in ("end - start", "start - end")
    assert f"{found[0].pair} predicts late with AUC" in found[0].sentence("late")
    con.close()


@pytest.fixture(scope="module")
def flights_runs(tmp_path_factory):
    """The flights demo, and the default `delayed` run on it with and without keeping arr_delay."""
    from tests.conftest import quarry_env

    root = tmp_path_factory.mktemp("leak_flights")
    mp = pytest.MonkeyPatch()
    settings = quarry_env(mp, root)
    path = write_flights(root / "flights.parquet").path
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), str(path), name="flights")
    con.close()
    base = {"dataset": "flights", "target": "delayed", "num_boost_round": 60, "device": "cpu"}
    plain = runs.load_run(settings, train_job.run(base)["run_id"])
    kept = runs.load_run(settings, train_job.run({**base, "keep_leaky": ["arr_delay"]})["run_id"])
    yield settings, root, plain, kept
    mp.undo()


def test_the_default_delayed_run_on_flights_is_honest(flights_runs):
    _, _, plain, _ = flights_runs
    assert "arr_delay" not in plain.features and "arr_time" not in plain.features
    assert plain.info["excluded"]["arr_delay"].startswith("probable leakage: arr_delay alone predicts delayed")
    assert {leak["feature"] for leak in plain.info["leakage"]} == {"arr_delay", "arr_time"}
    assert plain.info["leakage_checked"] > 100_000
    auc = plain.info["metrics"]["test"]["auc"]
    assert 0.8 < auc < 0.98, auc  # believable: dep_delay carries most of it, nothing computed from the target


def test_keep_leaky_keeps_it_and_says_so(flights_runs):
    _, _, plain, kept = flights_runs
    assert "arr_delay" in kept.features
    assert [leak["kept"] for leak in kept.info["leakage"] if leak["feature"] == "arr_delay"] == [True]
    assert kept.info["metrics"]["test"]["auc"] > plain.info["metrics"]["test"]["auc"]  # the leak does 'help'


def test_the_cli_prints_the_leaks_and_takes_keep_leaky(flights_runs, capsys):
    assert main(["train", "flights", "--target", "delayed", "--rounds", "10", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "left out: arr_delay alone predicts delayed with AUC 1.000" in out
    assert "Keep it with --keep-leaky arr_delay." in out
    assert main(["train", "flights", "--target", "delayed", "--rounds", "10", "--device", "cpu",
                 "--keep-leaky", "arr_delay", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [leak for leak in doc["leakage"] if leak["feature"] == "arr_delay"][0]["kept"] is True


def test_the_pages_say_it_escaped_and_say_what_was_kept():
    from markdown_it import MarkdownIt

    from core import ui

    hostile = "x ![b](http://127.0.0.1:9/b.png) :red[y]"
    info = {"target": "t", "leakage": [
        leakage.Leak(hostile, "AUC", 0.999, 0.99, 1000).to_json(),
        leakage.Leak("z", "R²", 0.99, 0.98, 500, kept=True, pair="z - w").to_json()]}
    lines = ui.leakage_lines(info)
    assert lines[0].startswith("Left out as probable leakage: ") and lines[1].startswith("Kept although")
    html = MarkdownIt().render(lines[0])
    assert "<img" not in html and ":red[" not in lines[0] and "AUC 0.999" in lines[0]
    assert "z - w predicts t with R² 0.990" in lines[1]
