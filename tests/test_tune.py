"""Optuna search over real LightGBM training on small generated data."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from core.data import catalog as cat
from core.errors import QuarryError
from core.model import tune as tn
from core.model.splits import SplitConfig
from core.model.train import TrainConfig
from tests.conftest import write_parquet


@pytest.fixture
def registered(con, catalog, root):
    rng = np.random.default_rng(3)
    n = 4_000
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] - 0.5 * x[:, 1] + rng.normal(scale=0.7, size=n)) > 0
    write_parquet(root / "t.parquet", pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}))
    cat.register(con, catalog, str(root / "t.parquet"), name="t")
    return TrainConfig(dataset="t", target="y", split=SplitConfig(kind="random", seed=1), num_boost_round=60,
                       early_stopping_rounds=10, params={"num_threads": 1, "deterministic": True})


def test_search_records_trials_and_refits_the_best(con, settings, registered):
    seen = []
    result = tn.tune(con, registered, n_trials=6, progress=seen.append, settings=settings)
    assert len(result.trials) == 6 and [s["number"] for s in seen] == list(range(6))
    complete = [t for t in result.trials if t.state == "complete"]
    assert result.best_value == min(t.value for t in complete)
    assert all(t.params["num_threads"] == 1 and 15 <= t.params["num_leaves"] <= 255 for t in result.trials)
    refit = result.refit  # the same parameters and split: the same model, so the same validation value
    assert refit.curve["valid"][refit.best_iteration - 1] == pytest.approx(result.best_value, rel=1e-9)
    assert result.metric == "binary_logloss" and result.to_json()["best_params"] == result.best_params


def test_parameters_the_user_fixed_are_not_searched(con, settings, registered):
    fixed = TrainConfig(**{**registered.__dict__, "params": {**registered.params, "num_leaves": 7}})
    result = tn.tune(con, fixed, n_trials=2, settings=settings)
    assert {t.params["num_leaves"] for t in result.trials} == {7}


def test_time_budget_and_bad_budget(con, settings, registered):
    assert len(tn.tune(con, registered, n_trials=50, timeout_s=0.01, settings=settings).trials) == 1
    with pytest.raises(QuarryError, match="at least 1"):
        tn.tune(con, registered, n_trials=0, settings=settings)
