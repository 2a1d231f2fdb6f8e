"""Real runs for evaluation and explanation tests: a generated dataset per task, trained by core.train.

Every task's target depends on x1, x2 and `channel` only; `noise` and `region` are unrelated to it,
`region` is a categorical column to slice on and `id` is ID-like (left out of the features).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from core.data import catalog as cat
from core.data import engine
from core.evaluate import holdout
from core.model import job as train_job
from core.model import runs
from core.settings import Settings
from tests.conftest import write_parquet

CLASSES = ["bronze", "silver", "gold"]
REGIONS = ["north", "south", "east", "west"]
DRIVERS = {"x1", "x2", "channel"}


def task_table(task: str, rows: int = 3000, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    x1, x2, noise = rng.normal(size=rows), rng.uniform(0, 10, size=rows), rng.normal(size=rows)
    channel = rng.choice(["web", "shop", "phone"], size=rows)
    region = rng.choice(REGIONS, size=rows)
    signal = 1.5 * x1 - 0.4 * x2 + 1.0 * (channel == "web") + 1.0
    if task == "binary":
        y = pa.array((rng.uniform(size=rows) < 1 / (1 + np.exp(-signal))).tolist(), pa.bool_())
    elif task == "multiclass":
        z = signal + rng.logistic(size=rows) * 0.5
        y = pa.array([CLASSES[int(k)] for k in np.digitize(z, [-0.5, 1.0])])
    else:
        y = pa.array(signal * 10 + 50 + rng.normal(size=rows), pa.float64())
    return pa.table({"id": pa.array(range(rows), pa.int64()), "x1": x1, "x2": x2, "noise": noise,
                     "channel": channel.tolist(), "region": region.tolist(), "y": y})


def register_table(settings: Settings, root: Path, name: str, table: pa.Table) -> Path:
    path = write_parquet(root / f"{name}.parquet", table)
    con = engine.connect(settings)
    try:
        cat.register(con, cat.Catalog(settings), str(path), name=name)
    finally:
        con.close()
    return path


def make_run(settings: Settings, root: Path, task: str, *, rows: int = 3000, rounds: int = 30,
             name: str | None = None, **extra) -> runs.Run:
    """Register `task_table(task, rows)` as dataset `name` (default: the task) and train a run on it in this
    process (random 60/20/20 split unless `split` is given); the loaded run."""
    name = name or task
    register_table(settings, root, name, task_table(task, rows))
    params = {"dataset": name, "target": "y", "num_boost_round": rounds, "early_stopping_rounds": 0,
              "device": "cpu", "split": {"kind": "random", "valid": 0.2, "test": 0.2, "seed": 42}, **extra}
    return runs.load_run(settings, train_job.run(params)["run_id"])


def scored(settings: Settings, con, run: runs.Run) -> holdout.Scored:
    """The run's scored test split, with the catalog's views in `con`."""
    cat.sync_views(con, cat.Catalog(settings).list())
    return holdout.scored_test(settings, con, run)
