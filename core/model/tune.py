"""Hyperparameter search with Optuna over core.train, with pruning, then a refit of the best trial.

Each trial trains on the same split (same seed) with parameters drawn from ``SPACE`` laid over the
user's; its value is the validation value of the task's curve metric (log loss, multiclass log
loss or RMSE: lower is better) at the best iteration. A trial reports that value every iteration,
and Optuna's median pruner stops trials that are clearly behind. The search stops after
``n_trials`` trials or ``timeout_s`` seconds, whichever comes first; the best parameters are then
trained once more (the refit) and that model is the run's.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import duckdb
import optuna

from core.errors import QuarryError
from core.model.train import TrainConfig, TrainResult, train

# name: (kind, low, high, log scale)
SPACE = {
    "learning_rate": ("float", 0.01, 0.3, True),
    "num_leaves": ("int", 15, 255, True),
    "min_data_in_leaf": ("int", 10, 500, True),
    "feature_fraction": ("float", 0.5, 1.0, False),
    "bagging_fraction": ("float", 0.5, 1.0, False),
    "lambda_l2": ("float", 1e-3, 10.0, True),
}


@dataclass(frozen=True)
class Trial:
    number: int
    state: str  # 'complete', 'pruned' or 'failed'
    value: float | None
    params: dict
    seconds: float
    iterations: int


@dataclass(frozen=True)
class TuneResult:
    """Every trial, the best one, and the refit of its parameters (the run's model)."""

    metric: str
    trials: tuple[Trial, ...]
    best_params: dict
    best_value: float
    refit: TrainResult

    def to_json(self) -> dict:
        return {"metric": self.metric, "trials": [asdict(t) for t in self.trials], "best_params": self.best_params,
                "best_value": self.best_value}


def _suggest(trial: optuna.Trial, fixed: dict) -> dict:
    """Draw every parameter of SPACE the user did not fix."""
    out = {}
    for name, (kind, low, high, log) in SPACE.items():
        if name in fixed:
            continue
        out[name] = (trial.suggest_int(name, low, high, log=log) if kind == "int"
                     else trial.suggest_float(name, low, high, log=log))
    return out


def tune(con: duckdb.DuckDBPyConnection, config: TrainConfig, *, n_trials: int = 20, timeout_s: float | None = None,
         progress: Callable[[dict], None] | None = None, settings=None) -> TuneResult:
    """Search LightGBM parameters for `config`, then refit the best.

    Parameters
    ----------
    n_trials, timeout_s
        The budget: at most this many trials, and no new trial after this many seconds.
    progress
        Called with a dict per finished trial ({number, state, value, best_value, elapsed}).
    """
    if n_trials < 1:
        raise QuarryError(f"The number of trials must be at least 1. Got {n_trials}.", "Ask for 1 or more trials.")
    started = time.monotonic()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=config.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=10))
    trials: list[Trial] = []
    metric: dict = {}

    def objective(trial: optuna.Trial) -> float:
        params = {**config.params, **_suggest(trial, config.params)}
        t0, seen = time.monotonic(), [0]

        def report(iteration: int, total: int, train_value: float | None, valid_value: float | None) -> None:
            seen[0] = iteration
            if valid_value is not None:
                trial.report(valid_value, iteration)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        try:
            result = train(con, replace(config, params=params), progress=report, settings=settings)
        except optuna.TrialPruned:
            trials.append(Trial(trial.number, "pruned", None, params, time.monotonic() - t0, seen[0]))
            raise
        metric["name"] = result.curve.get("metric", "")
        valid = result.curve.get("valid") or []
        value = float(valid[result.best_iteration - 1]) if valid else float("inf")
        trials.append(Trial(trial.number, "complete", value, params, time.monotonic() - t0, seen[0]))
        return value

    def after(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        if progress:
            done = [t for t in trials if t.value is not None]
            progress({"number": frozen.number, "state": trials[-1].state if trials else "failed",
                      "value": frozen.value, "best_value": min((t.value for t in done), default=None),
                      "elapsed": round(time.monotonic() - started, 1), "of": n_trials})

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, callbacks=[after], catch=())
    done = [t for t in trials if t.state == "complete"]
    if not done:
        raise QuarryError("No trial finished: every one was pruned or failed.", "Give the search more trials or time.")
    best = min(done, key=lambda t: t.value)
    refit = train(con, replace(config, params=best.params), settings=settings)
    return TuneResult(metric=metric.get("name", ""), trials=tuple(trials), best_params=best.params,
                      best_value=best.value, refit=refit)
