"""One training run from start to registry: the function a training job (core.jobs) or the CLI runs.

``run(params, reporter)`` takes plain JSON parameters (what the Train page's form or the CLI's
arguments hold), trains through core.train, saves the run atomically through core.runs and returns
``{"run_id": ...}``. Progress goes to the reporter once per boosting iteration.
"""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from core import audit, auth
from core.data import catalog as cat
from core.features import store as recipe_store
from core.model import runs, tune
from core.model.splits import SplitConfig
from core.model.train import TrainConfig, train
from core.workspace import open_workspace

TARGET = "train"  # the key of `run` in core.jobs.TARGETS, the registry of what a job worker may call


def config_from(params: dict, settings) -> TrainConfig:
    """A TrainConfig from JSON parameters; a recipe is named (kept in the workspace) or a path."""
    recipe = recipe_store.load(settings, params["recipe"]) if params.get("recipe") else None
    split = SplitConfig(**params.get("split", {}))
    keys = ("task", "features", "params", "num_boost_round", "early_stopping_rounds", "device", "class_weight",
            "memory_budget_mb", "seed", "cv_folds")
    given = {k: params[k] for k in keys if params.get(k) is not None}
    given.setdefault("memory_budget_mb", settings.train_memory_mb)
    given["keep_leaky"] = tuple(params.get("keep_leaky") or ())  # the setting, unless the job says otherwise
    return TrainConfig(dataset=params["dataset"], target=params["target"], split=split, recipe=recipe, **given)


def run(params: dict, reporter=None) -> dict:
    """Train, save the run, return {"run_id", "metrics", "baselines", "device", "data_path", "cv"}."""
    ws = open_workspace()
    settings, con, catalog = ws.settings, ws.con, ws.catalog
    dataset = cat.resolve(con, catalog, params["dataset"])  # a registered name, or a path (README: "CLI")
    registered = dataset.name in catalog.names()
    config = config_from({**params, "dataset": dataset.name}, settings)
    created_by = params.get("created_by") or auth.who()  # set by core.jobs.start for the Train page's jobs
    audit.record(settings, "train.run", who=created_by, dataset=config.dataset, target=config.target,
                 name=params.get("name"))
    started = time.monotonic()

    def progress(iteration: int, total: int, train_value: float | None, valid_value: float | None) -> None:
        if reporter is not None:
            reporter.report(iteration=iteration, total=total, train=train_value, valid=valid_value,
                            elapsed=round(time.monotonic() - started, 2))

    search = params.get("tune") or {}
    if search.get("n_trials"):  # an Optuna search, then the refit of its best trial is the run's model
        def trial_done(t: dict) -> None:
            if reporter is not None:
                reporter.report(trial=t["number"] + 1, trials=t["of"], trial_state=t["state"], value=t["value"],
                                best=t["best_value"], elapsed=t["elapsed"])

        # Trials skip cross-validation (it would multiply every trial's cost); the best is refit with it.
        found = tune.tune(con, replace(config, cv_folds=0), n_trials=int(search["n_trials"]),
                          timeout_s=search.get("timeout_s"), progress=trial_done, settings=settings)
        result, tuning = found.refit, found.to_json()
        if config.cv_folds:
            result = train(con, replace(config, params=found.best_params), settings=settings)
    else:
        result, tuning = train(con, config, progress=progress, settings=settings), None
    info = result.to_json()
    if tuning:
        info["tuning"] = tuning
    info.pop("model_text", None)
    if not registered:  # read again from the same path by Evaluate, Explain and Score
        info["source_path"] = params["dataset"]
    info.update(name=params.get("name") or f"{config.target} on {config.dataset}",
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                fingerprint=cat.fingerprint(dataset, settings), recipe_name=params.get("recipe"),
                tags=list(params.get("tags") or []), created_by=created_by)
    path = runs.save_run(settings, info, result.model_text, result.curve, result.importance,
                         config.recipe.dumps() if config.recipe else None)
    return {"run_id": path.name, "metrics": result.metrics, "baselines": result.baselines,
            "device": result.device, "data_path": result.data_path, "cv": result.cv,
            "target": result.target, "leakage": result.leakage, "leakage_checked": result.leakage_checked,
            "excluded": result.excluded}
