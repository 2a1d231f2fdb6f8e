"""Training: LightGBM on a dataset (through its fitted recipe), fed from DuckDB in Arrow batches.

The flow, all out of core except what LightGBM itself holds:

1. One aggregate query surveys the rows: the target's values (the task is detected from them, as
   ``core.target.detect_task`` does from a profile) and each column's approximate distinct count
   (ID-like columns are left out of the default features).
2. ``core.splits.split_sql`` adds ``__split`` to the recipe's query; one more query counts the rows
   per split (and class), another takes each text column's top categories in the train split.
3. Each split is read with ``to_arrow_reader`` and converted column by column into a float64 matrix
   (text -> integer codes of the train categories, unseen -> NaN; true/false -> 1/0; times -> epoch
   seconds). No pandas copy of the table is ever made. When the train split would take more than
   ``memory_budget_mb`` as float64, train and valid are written to Parquet in the temp folder by
   DuckDB and LightGBM builds its Dataset from a ``lightgbm.Sequence`` reading one row group at a
   time, so data larger than RAM trains (LightGBM keeps only its binned copy, ~1 byte per value).
4. LightGBM trains with early stopping on the valid split; a trivial (prior) model and a linear model
   on a sample are fitted alongside; all three are scored on the test split, streamed in batches.
5. With ``cv_folds=k`` (optional), the train and valid rows (never the test rows) are read once more
   with a fold number from DuckDB's seeded hash (see :func:`fold_sql`), and k models are trained with
   the same parameters for the main model's best number of rounds, each on k - 1 folds and scored on
   the fold it did not see. Cross-validation holds those rows in memory, so it needs them to fit the
   memory budget; it refuses (before reading anything) when they do not.

Cancelling: ``should_stop()`` is asked before every boosting iteration (and between batches while
reading, and before each cross-validation fold); when it returns True, ``train`` raises
:class:`Cancelled` (a QuarryError) and keeps no model; a cancelled run has no result.
"""
from __future__ import annotations

import difflib
import functools
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from lightgbm.basic import _ConfigAliases

from core.data.engine import quote_ident, quote_literal, translate
from core.data.types import MAX_CLASSES, NUMERIC, TASKS, column_kind
from core.errors import QuarryError
from core.features.recipe import Recipe, compile_recipe, source_sql
from core.fmt import jsonable
from core.model import leakage
from core.model.encoding import FeatureSpec, Labels, label_sql
from core.model.splits import ROW, SPLIT_COLUMN, SplitConfig, split_counts, split_sql
from core.settings import Settings, load_settings

DEVICES = ("auto", "cpu", "gpu", "cuda")
MAX_CATEGORIES = 1000  # categories kept per text feature (the most frequent in the train split)
ID_LIKE_SHARE = 0.95  # approx distinct >= this share of rows: an ID (HyperLogLog reads ~2% low on a unique column)
GPU_MIN_ROWS = 1_000_000  # below this, auto stays on CPU: moving data to a GPU costs more than it saves
BATCH_ROWS = 65_536  # Arrow batch and Parquet row group size
BASELINE_ROWS = 100_000  # the linear baseline's sample
CATEGORY_BATCH = 32  # text features per GROUPING SETS query (GROUPING() takes at most 64 columns)
CV_MAX_FOLDS = 20
FOLD_COLUMN = "__fold"
CV_SALT = "quarry-cv-folds"  # hashed with the seed and the row, so folds do not echo the split's own hash
CUDA_BUILD_HINT = ("Build LightGBM with CUDA with scripts/build-lightgbm-cuda.sh on a machine with an NVIDIA GPU, "
                   "or use device 'auto' or 'cpu'.")
DEFAULT_METRIC = {"binary": "binary_logloss", "multiclass": "multi_logloss", "regression": "rmse"}
OBJECTIVES = {
    "binary": ("binary", "cross_entropy", "xentropy"),
    "multiclass": ("multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"),
    "regression": ("regression", "regression_l2", "l2", "mean_squared_error", "mse", "l2_root",
                   "root_mean_squared_error", "rmse", "regression_l1", "l1", "mean_absolute_error", "mae", "huber",
                   "fair", "poisson", "quantile", "mape", "mean_absolute_percentage_error", "gamma", "tweedie"),
}


class Cancelled(QuarryError):
    """Training was stopped by ``should_stop``; ``iteration`` is the number of boosting rounds done."""

    def __init__(self, message: str, hint: str = "", iteration: int = 0) -> None:
        super().__init__(message, hint)
        self.iteration = iteration


# ----------------------------------------------------------------------------------------------
# Parameters: defaults, a declarative table of constraints, names checked against LightGBM's


@dataclass(frozen=True)
class Rule:
    """A parameter's constraint: 'int', 'float' (ints accepted) or 'bool', with optional bounds."""

    type: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def expected(self) -> str:
        article = "an" if self.type == "int" else "a"
        what = f"{article} {self.type}"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{what} in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {_num(self.high)}"
        return what

    def ok(self, value: object) -> bool:
        if self.type == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.type == "int" and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


RULES: dict[str, Rule] = {
    "learning_rate": Rule("float", 0, None, low_open=True),
    "num_leaves": Rule("int", 2, 131072),
    "max_depth": Rule("int", -1),
    "min_data_in_leaf": Rule("int", 0),
    "min_sum_hessian_in_leaf": Rule("float", 0),
    "bagging_fraction": Rule("float", 0, 1, low_open=True),
    "bagging_freq": Rule("int", 0),
    "pos_bagging_fraction": Rule("float", 0, 1, low_open=True),
    "neg_bagging_fraction": Rule("float", 0, 1, low_open=True),
    "feature_fraction": Rule("float", 0, 1, low_open=True),
    "feature_fraction_bynode": Rule("float", 0, 1, low_open=True),
    "lambda_l1": Rule("float", 0),
    "lambda_l2": Rule("float", 0),
    "min_gain_to_split": Rule("float", 0),
    "max_bin": Rule("int", 2),
    "min_data_in_bin": Rule("int", 1),
    "num_threads": Rule("int", 0),
    "seed": Rule("int"),
    "max_cat_threshold": Rule("int", 1),
    "max_cat_to_onehot": Rule("int", 1),
    "min_data_per_group": Rule("int", 1),
    "cat_l2": Rule("float", 0),
    "cat_smooth": Rule("float", 0),
    "scale_pos_weight": Rule("float", 0, None, low_open=True),
    "path_smooth": Rule("float", 0),
    "drop_rate": Rule("float", 0, 1),
    "extra_trees": Rule("bool"),
    "linear_tree": Rule("bool"),
    "is_unbalance": Rule("bool"),
    "deterministic": Rule("bool"),
    "force_col_wise": Rule("bool"),
    "force_row_wise": Rule("bool"),
    "verbosity": Rule("int"),
}
# Parameters Quarry sets itself (the value: what to use instead) and file/network parameters it refuses.
RESERVED = {
    "num_iterations": "Set the number of boosting rounds with num_boost_round.",
    "early_stopping_round": "Set early stopping with early_stopping_rounds (0 turns it off).",
    "device_type": "Pick the device with device: auto, cpu, gpu or cuda.",
    "num_class": "The number of classes comes from the target.",
    "categorical_feature": "Text columns are categorical automatically; cast a column to text to make it one.",
    "label_column": "The target is set with target.",
    "weight_column": "Class weights are set with class_weight.",
}
REFUSED = ("task", "config", "data", "valid", "input_model", "output_model", "output_result", "convert_model",
           "convert_model_language", "save_binary", "snapshot_freq", "initscore_filename", "valid_data_initscores",
           "forcedsplits_filename", "forcedbins_filename", "header", "group_column", "ignore_column",
           "parser_config_file", "machines", "machine_list_filename", "num_machines", "local_listen_port",
           "time_out", "tree_learner", "gpu_platform_id", "gpu_device_id", "gpu_use_dp", "num_gpu")


@functools.cache
def _aliases() -> dict[str, str]:
    """Every LightGBM parameter name and alias -> its main name (from the library itself)."""
    out: dict[str, str] = {}
    for main, names in _ConfigAliases._get_all_param_aliases().items():
        for name in names:
            out.setdefault(name, main)
    return out


def check_params(params: dict, task: str | None = None) -> dict:
    """User LightGBM parameters, checked and keyed by their main names (aliases resolved).

    Raises QuarryError for an unknown name (with the nearest known ones), a parameter Quarry sets
    itself, a value outside the parameter's constraints (see RULES) or an objective that does not
    fit the task. LightGBM checks the rest when it trains; its refusal becomes a QuarryError too.
    """
    if not isinstance(params, dict):
        raise QuarryError(f"LightGBM parameters must be a mapping of names to values. Got {type(params).__name__}.",
                          'Give them as {"num_leaves": 31, ...}.')
    aliases = _aliases()
    out: dict = {}
    for name, value in params.items():
        main = aliases.get(name) if isinstance(name, str) else None
        if main is None:
            near = list(dict.fromkeys(aliases[n] for n in difflib.get_close_matches(str(name), list(aliases), n=5)))[:3]
            raise QuarryError(f"Unknown LightGBM parameter {name!r}.",
                              (f"Did you mean {' or '.join(repr(n) for n in near)}? " if near else "")
                              + "See https://lightgbm.readthedocs.io/en/latest/Parameters.html.")
        if main in out:
            raise QuarryError(f"The LightGBM parameter {main!r} is given twice (as {name!r} and another alias).",
                              "Give it once.")
        if main in RESERVED:
            raise QuarryError(f"The LightGBM parameter {name!r} is set by Quarry.", RESERVED[main])
        if main in REFUSED:
            raise QuarryError(f"The LightGBM parameter {name!r} cannot be set here (files, machines and devices "
                              "are Quarry's).", "Leave it out.")
        rule = RULES.get(main)
        if rule and not rule.ok(value):
            raise QuarryError(f"The {main!r} parameter must be {rule.expected()}. Got {value!r}.",
                              "Fix the value, or leave the parameter out for Quarry's default.")
        if main == "objective" and task is not None and value not in OBJECTIVES[task]:
            raise QuarryError(f"The 'objective' parameter must be one of {', '.join(OBJECTIVES[task])} for a {task} "
                              f"task. Got {value!r}.", "Leave it out for the task's usual objective.")
        out[main] = value
    return out


def default_params(task: str, n_classes: int, seed: int, threads: int) -> dict:
    """Quarry's LightGBM defaults for a task (user parameters are laid over these)."""
    params = {"objective": {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}[task],
              "metric": DEFAULT_METRIC[task], "learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 50,
              "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1, "seed": seed,
              "verbosity": -1, "num_threads": threads}
    if task == "multiclass":
        params["num_class"] = n_classes
    return params


# ----------------------------------------------------------------------------------------------
# Device


@functools.cache
def _probe(device: str) -> str | None:
    """None when LightGBM trains one round on `device` here, else its first line of complaint (cached)."""
    x = np.random.default_rng(0).normal(size=(256, 2))
    try:
        lgb.train({"device_type": device, "verbosity": -1, "num_threads": 1, "min_data_in_leaf": 1},
                  lgb.Dataset(x, label=x[:, 0]), num_boost_round=1)
    except lgb.basic.LightGBMError as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
    return None


def _why_not(device: str, message: str) -> str:
    if device == "cuda":
        return ("this LightGBM build has no CUDA support" if "not enabled" in message
                else f"CUDA is not usable here ({message})")
    if "not enabled" in message:
        return "this LightGBM build has no OpenCL GPU support"
    if "No OpenCL device" in message:
        return "no OpenCL device was found"
    return f"the OpenCL GPU is not usable here ({message})"


def choose_device(requested: str, rows: int) -> tuple[str, str]:
    """(device used, why) for training on `rows` rows.

    'auto': CPU below GPU_MIN_ROWS training rows; else CUDA when this LightGBM build and a GPU
    support it, else an OpenCL GPU when one is found, else CPU. 'cuda' / 'gpu' asked explicitly
    where they cannot run raise QuarryError; 'cpu' is always possible. Support is found by
    training one round on tiny data (once per process).
    """
    if requested not in DEVICES:
        raise QuarryError(f"The device must be one of {', '.join(DEVICES)}. Got {requested!r}.",
                          "Use 'auto' to let Quarry pick.")
    if requested == "cpu":
        return "cpu", "CPU was asked for"
    if requested == "cuda":
        problem = _probe("cuda")
        if problem:
            raise QuarryError(f"CUDA training is not available: {_why_not('cuda', problem)}.", CUDA_BUILD_HINT)
        return "cuda", "CUDA was asked for"
    if requested == "gpu":
        problem = _probe("gpu")
        if problem:
            raise QuarryError(f"OpenCL GPU training is not available: {_why_not('gpu', problem)}.",
                              "Install the GPU's OpenCL driver, or use device 'auto' or 'cpu'.")
        return "gpu", "the OpenCL GPU was asked for"
    if rows < GPU_MIN_ROWS:
        return "cpu", f"fewer than {GPU_MIN_ROWS:,} training rows: CPU is faster"
    cuda = _probe("cuda")
    if cuda is None:
        return "cuda", "this LightGBM build supports CUDA and a GPU was found"
    gpu = _probe("gpu")
    if gpu is None:
        return "gpu", f"{_why_not('cuda', cuda)}; an OpenCL GPU was found"
    return "cpu", f"{_why_not('cuda', cuda)} and {_why_not('gpu', gpu)}"


# ----------------------------------------------------------------------------------------------
# Configuration and result


@dataclass(frozen=True)
class TrainConfig:
    """What to train: data, target, task (None: detect), features (None: all but the target and ID-like
    columns), split, LightGBM parameters over the defaults, rounds, device and limits.

    ``early_stopping_rounds=0`` trains all ``num_boost_round`` rounds. ``class_weight='balanced'`` sets
    is_unbalance for a binary task and per-row weights n / (classes * class rows) for a multiclass one.
    ``recipe`` is a fitted core.recipe.Recipe whose output is what the model learns from.
    ``cv_folds``: 0 (off), or k in [2, 20] for k-fold cross-validation of the train and valid rows
    after training (see :func:`fold_sql` and ``TrainResult.cv``). The folds' round count is the main
    model's best iteration, which was chosen on the valid rows the folds include, so the estimate
    leans slightly optimistic; the test split stays the unbiased one.
    """

    dataset: str
    target: str
    task: str | None = None
    features: list[str] | None = None
    split: SplitConfig = field(default_factory=SplitConfig)
    params: dict = field(default_factory=dict)
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    device: str = "auto"
    class_weight: str | None = None
    memory_budget_mb: float = 2048
    recipe: Recipe | None = None
    seed: int = 42
    cv_folds: int = 0
    keep_leaky: tuple[str, ...] = ()  # features the leakage guard would leave out, kept by the user's choice

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise QuarryError(f"The task must be one of {', '.join(TASKS)}. Got {self.task!r}.",
                              "Leave it empty to detect it from the target.")
        for name, low in (("num_boost_round", 1), ("early_stopping_rounds", 0)):
            value = getattr(self, name)
            if not Rule("int", low).ok(value):
                raise QuarryError(f"The '{name}' parameter must be an int >= {low}. Got {value!r}.",
                                  "Give a whole number.")
        if self.device not in DEVICES:
            raise QuarryError(f"The device must be one of {', '.join(DEVICES)}. Got {self.device!r}.",
                              "Use 'auto' to let Quarry pick.")
        if self.class_weight not in (None, "balanced"):
            raise QuarryError(f"The class weight must be None or 'balanced'. Got {self.class_weight!r}.",
                              "Use 'balanced' to weight classes by their rarity.")
        if not Rule("float", 0, None, low_open=True).ok(self.memory_budget_mb):
            raise QuarryError(f"The memory budget must be a number of MB > 0. Got {self.memory_budget_mb!r}.",
                              "Give a size in MB, e.g. 2048.")
        if not isinstance(self.split, SplitConfig):
            raise QuarryError("The split must be a SplitConfig.", "Build it with core.splits.SplitConfig(...).")
        if not Rule("int").ok(self.seed):
            raise QuarryError(f"The seed must be an int. Got {self.seed!r}.", "Give a whole number, e.g. 42.")
        folds = self.cv_folds
        if isinstance(folds, bool) or not isinstance(folds, int) or not (folds == 0 or 2 <= folds <= CV_MAX_FOLDS):
            raise QuarryError(f"The 'cv_folds' parameter must be 0 (off) or an int in [2, {CV_MAX_FOLDS}]. "
                              f"Got {self.cv_folds!r}.", "Give the number of folds, e.g. 5, or 0 for none.")


@dataclass(frozen=True)
class TrainResult:
    """A trained model and everything known about how it was made and how well it does.

    ``categorical``: text feature -> its training categories in code order. ``excluded``: columns left
    out of the default features -> why. ``metrics`` / ``baselines`` are on the valid and test splits
    (baselines on test, or valid when there is no test split). ``curve`` is the first metric per
    iteration on train and valid. ``booster`` is the live model; it is not part of the JSON.

    ``cv`` is None without cross-validation, else ``{"folds": k, "rounds": n, "rows": [held-out rows
    per fold], "per_fold": [{metric: value} per fold], "mean": {...}, "std": {...}}``: every fold's
    model trained n rounds on the other folds and scored on its own (the task's metrics, as
    ``metrics``); mean and std (population, ddof=0) over the folds where the metric is defined.
    """

    dataset: str
    target: str
    task: str
    classes: list | None
    features: list[str]
    feature_kinds: list[str]
    categorical: dict[str, list[str]]
    excluded: dict[str, str]
    params: dict
    num_boost_round: int
    best_iteration: int
    curve: dict
    metrics: dict
    baselines: dict
    importance: dict
    device: dict
    data_path: str
    rows: dict
    split: dict
    timings: dict
    notes: list[str]
    model_text: str
    cv: dict | None = None
    booster: lgb.Booster | None = field(default=None, repr=False, compare=False)
    leakage: list[dict] = field(default_factory=list)  # core.model.leakage.Leak per flagged feature, kept or not
    leakage_checked: int = 0  # training rows the guard looked at (0: it did not run)

    @property
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(tuple(self.features), tuple(self.feature_kinds), dict(self.categorical))

    def to_json(self) -> dict:
        return jsonable({f.name: getattr(self, f.name) for f in fields(self) if f.name != "booster"})


# ----------------------------------------------------------------------------------------------
# Survey: task, classes and default features from one aggregate query


@dataclass(frozen=True)
class _Survey:
    rows: int
    usable: int
    distinct: dict[str, int]  # approximate, for ID-like candidates and the target
    classes: list | None  # exact, sorted, when the target has few values
    class_rows: dict | None


def _usable_target(name: str, typ: str) -> str:
    q = quote_ident(name)
    return f"({q} IS NOT NULL AND isfinite({q}))" if column_kind(typ) == "float" else f"{q} IS NOT NULL"


def _survey(cur: duckdb.DuckDBPyConnection, source: str, params: dict, columns: dict[str, str],
            target: str) -> _Survey:
    usable = _usable_target(target, columns[target])
    candidates = [c for c, t in columns.items() if c != target and column_kind(t) in ("integer", "string")]
    aggs = ["count(*)", f"count(*) FILTER (WHERE {usable})",
            f"approx_count_distinct({quote_ident(target)}) FILTER (WHERE {usable})",
            *(f"approx_count_distinct({quote_ident(c)})" for c in candidates)]
    try:
        row = cur.sql(f"SELECT {', '.join(aggs)} FROM ({source})", params=params or None).fetchall()[0]
        classes = class_rows = None
        if (row[2] or 0) <= 2 * MAX_CLASSES:
            got = cur.sql(f"SELECT {quote_ident(target)}, count(*) FROM ({source}) WHERE {usable} GROUP BY 1 "
                          f"LIMIT {2 * MAX_CLASSES + 1}", params=params or None).fetchall()
            class_rows = dict(sorted((v, int(n)) for v, n in got))
            classes = list(class_rows)
    except duckdb.Error as exc:
        raise translate(exc, "Surveying the training data") from None
    distinct = {target: len(classes) if classes is not None else int(row[2] or 0)}
    distinct.update({c: int(v or 0) for c, v in zip(candidates, row[3:], strict=True)})
    return _Survey(int(row[0]), int(row[1]), distinct, classes, class_rows)


def _task(config: TrainConfig, typ: str, survey: _Survey) -> str:
    """The task asked for, checked against the target's values; detected when None (as core.target.detect_task)."""
    name, kind = config.target, column_kind(typ)
    if kind not in (*NUMERIC, "string", "boolean"):
        raise QuarryError(f"The target {name!r} is a {typ} column; a target must be numbers, text or true/false.",
                          "Pick another target, or derive one from this column first.")
    if survey.usable == 0:
        raise QuarryError(f"The target {name!r} has no values: every row is missing.",
                          "Pick a column with values as the target.")
    distinct = survey.distinct[name]
    if distinct < 2:
        raise QuarryError(f"The target {name!r} has one value only; there is nothing to predict.",
                          "Pick a column whose value varies.")
    task = config.task
    if task is None:
        if distinct == 2:
            return "binary"
        if kind in ("string", "boolean", "integer") and distinct <= MAX_CLASSES:
            return "multiclass"
        if kind in NUMERIC:
            return "regression"
        raise QuarryError(f"The target {name!r} has {distinct:,} distinct values; a text target may have at most "
                          f"{MAX_CLASSES}.", "Group its values into fewer classes, or pick another target.")
    if task == "regression" and kind not in NUMERIC:
        raise QuarryError(f"Regression needs a numeric target; {name!r} is {typ}.",
                          "Use task='binary' or 'multiclass', or leave the task to be detected.")
    if task == "binary" and distinct != 2:
        raise QuarryError(f"A binary target needs exactly 2 classes; {name!r} has {distinct:,}.",
                          "Use task='multiclass' or 'regression', or leave the task to be detected.")
    if task == "multiclass" and distinct > MAX_CLASSES:
        raise QuarryError(f"A multiclass target may have at most {MAX_CLASSES} classes; {name!r} has {distinct:,}.",
                          "Group its values into fewer classes, or use task='regression'.")
    return task


def _feature_kind(typ: str) -> str | None:
    kind = column_kind(typ)
    if kind in NUMERIC:
        return "numeric"
    if kind == "string" or typ.upper().startswith("ENUM"):
        return "categorical"
    if kind in ("boolean", "temporal"):
        return kind
    return None


def _features(config: TrainConfig, columns: dict[str, str], survey: _Survey) -> tuple[list, list, dict]:
    """(features, their kinds, columns left out -> why)."""
    split_col = config.split.column if config.split.kind in ("time", "group") else None
    if config.features is not None:
        if not isinstance(config.features, list | tuple) or not config.features:
            raise QuarryError("The features must be a non-empty list of column names.",
                              "Leave them out to use every column but the target and ID-like ones.")
        if len(set(config.features)) != len(config.features):
            raise QuarryError("A feature is listed twice.", "List each feature once.")
        kinds, listed = [], [f for f in config.features if f != config.target]  # the target is never a feature
        if not listed:
            raise QuarryError(f"The only feature listed is the target {config.target!r}.",
                              "List the columns to learn it from, or leave the features out to use all others.")
        for name in listed:
            if name not in columns:
                raise QuarryError(f"The feature {name!r} is not a column of the data.",
                                  f"Columns: {', '.join(list(columns)[:20])}{'…' if len(columns) > 20 else ''}.")
            kind = _feature_kind(columns[name])
            if kind is None:
                raise QuarryError(f"The feature {name!r} is a {columns[name]} column, which LightGBM cannot use.",
                                  "Take it out, or turn it into numbers or text with a recipe step.")
            kinds.append(kind)
        left = {config.target: "the target itself"} if len(listed) < len(config.features) else {}
        return listed, kinds, left
    names, kinds, excluded = [], [], {}
    for name, typ in columns.items():
        if name == config.target:
            continue
        kind = _feature_kind(typ)
        if name == split_col:
            excluded[name] = f"the {config.split.kind} column of the split"
        elif kind is None:
            excluded[name] = f"its type {typ} is not a number, text, true/false or time"
        elif kind == "temporal":
            excluded[name] = "a time: derive date parts or days-since with a recipe step (or list it as a feature)"
        elif name in survey.distinct and survey.rows and survey.distinct[name] >= ID_LIKE_SHARE * survey.rows:
            excluded[name] = (f"ID-like: about {survey.distinct[name]:,} distinct values in {survey.rows:,} rows")
        else:
            names.append(name)
            kinds.append(kind)
    if not names:
        raise QuarryError(f"No column is left to learn {config.target!r} from.",
                          "List the features to use, or add columns with a recipe.")
    return names, kinds, excluded


def _categories(cur: duckdb.DuckDBPyConnection, query: str, params: dict, names: list[str]) -> dict[str, list[str]]:
    """Each text feature's most frequent values in the train split (up to MAX_CATEGORIES, ties by value)."""
    out: dict[str, list[str]] = {}
    for start in range(0, len(names), CATEGORY_BATCH):
        batch = names[start:start + CATEGORY_BATCH]
        k = len(batch)
        cs = [f"c{i}" for i in range(k)]
        inner = ", ".join(f"CAST({quote_ident(n)} AS VARCHAR) AS c{i}" for i, n in enumerate(batch))
        sets = ", ".join(f"({c})" for c in cs)
        sql = (f"SELECT GROUPING({', '.join(cs)}) AS g, {', '.join(cs)}, count(*) AS n "
               f"FROM (SELECT {inner} FROM ({query}) WHERE {SPLIT_COLUMN} = 'train') "
               f"GROUP BY GROUPING SETS ({sets}) "
               f"QUALIFY row_number() OVER (PARTITION BY g ORDER BY ({' IS NULL AND '.join(cs)} IS NULL), n DESC, "
               f"coalesce({', '.join(cs)})) <= {MAX_CATEGORIES}")
        try:
            rows = cur.sql(sql, params=params or None).fetchall()
        except duckdb.Error as exc:
            raise translate(exc, "Finding the categories of the text features") from None
        found: dict[int, list] = {i: [] for i in range(k)}
        full = (1 << k) - 1
        for g, *values, n in rows:
            i = k - (full ^ int(g)).bit_length()  # the one column this grouping set is by
            if values[i] is not None:
                found[i].append((-n, values[i]))
        for i, name in enumerate(batch):
            out[name] = [v for _, v in sorted(found[i])]
    return out


# ----------------------------------------------------------------------------------------------
# Reading splits: Arrow batches -> float64 matrices, or Parquet files read by a lightgbm.Sequence


class ParquetSequence(lgb.Sequence):
    """A split written by DuckDB to Parquet, read one row group at a time as feature matrices.

    LightGBM samples rows by index (monotonically) to find its bins, then reads consecutive
    slices; one row group is kept converted, so both read each row group about once.
    """

    def __init__(self, path: Path, spec: FeatureSpec, batch_size: int = BATCH_ROWS) -> None:
        self.path = path
        self.file = pq.ParquetFile(path)
        self.spec = spec
        self.batch_size = batch_size
        meta = self.file.metadata
        self.starts = np.cumsum([0, *(meta.row_group(g).num_rows for g in range(meta.num_row_groups))])
        self.columns = [f"__f{i}" for i in range(len(spec.names))]
        self._cached: tuple[int, np.ndarray | None] = (-1, None)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _group(self, g: int) -> np.ndarray:
        if self._cached[0] != g:
            table = self.file.read_row_group(g, columns=self.columns)
            self._cached = (g, np.ascontiguousarray(self.spec.matrix(table)))
        return self._cached[1]

    def _rows(self, start: int, stop: int) -> np.ndarray:
        parts = []
        while start < stop:
            g = int(np.searchsorted(self.starts, start, side="right") - 1)
            end = min(stop, int(self.starts[g + 1]))
            parts.append(self._group(g)[start - self.starts[g]:end - self.starts[g]])
            start = end
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __getitem__(self, idx: int | slice | list[int]) -> np.ndarray:
        if isinstance(idx, slice):
            start, stop, step = idx.indices(len(self))
            rows = self._rows(start, stop)
            return rows if step == 1 else rows[::step]
        if isinstance(idx, list):
            return np.stack([self[i] for i in idx]) if idx else np.empty((0, len(self.columns)))
        i = int(idx)
        if i < 0:
            i += len(self)
        return self._rows(i, i + 1)[0]

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Every row, features and label, one row group at a time."""
        for g in range(self.file.metadata.num_row_groups):
            yield from self.file.read_row_group(g).to_batches()


@dataclass
class _Split:
    """One split as read: a matrix in memory, or a Parquet-backed Sequence; labels always in memory."""

    y: np.ndarray
    x: np.ndarray | None = None
    seq: ParquetSequence | None = None
    fold: np.ndarray | None = None  # each row's cross-validation fold, when read with one

    def chunks(self, labels: Labels) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self.x is not None:
            yield self.x, self.y
            return
        for batch in self.seq.batches():
            yield self.seq.spec.matrix(batch), labels(batch.column("__y"))


def _split_select(spec: FeatureSpec, target: str, task: str, query: str, split: str) -> str:
    return (f"SELECT {spec.select_sql()}, {label_sql(target, task)} AS __y FROM ({query}) "
            f"WHERE {SPLIT_COLUMN} = '{split}'")


def fold_sql(query: str, split: SplitConfig, target: str, folds: int, seed: int) -> str:
    """The train and valid rows of a split query (core.splits.split_sql) with their cross-validation fold.

    ``SELECT <the query's columns>, __fold FROM ...`` where ``__fold`` is 0 .. folds - 1, drawn from
    DuckDB's ``hash()`` of the seed, a salt of its own (so folds do not follow the split's hash) and:

    - the whole row (random and time splits): about equal folds. Folds are not by time.
    - the group value (group splits): a group is in one fold only.
    - the whole row, ranked within each target class (stratified splits): each class is dealt
      round-robin over the folds, so fold sizes per class differ by at most one.

    Test rows are never in it. Same rows, seed and DuckDB version: same folds.
    """
    salt = quote_literal(CV_SALT)
    by = quote_ident(split.column) if split.kind == "group" else ROW
    hashed = (f"SELECT *, hash({int(seed)}, {salt}, {by}) AS __h FROM ({query}) AS {ROW} "
              f"WHERE {SPLIT_COLUMN} IN ('train', 'valid')")
    fold = (f"(row_number() OVER (PARTITION BY {quote_ident(target)} ORDER BY __h) - 1) % {int(folds)}"
            if split.kind == "stratified" else f"__h % {int(folds)}")
    return f"SELECT * EXCLUDE (__h), CAST({fold} AS INTEGER) AS {FOLD_COLUMN} FROM ({hashed})"


def _check_stop(should_stop: Callable[[], bool] | None, iteration: int = 0) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled(f"Training was cancelled after {iteration:,} boosting rounds." if iteration else
                        "Training was cancelled while the data was being read.",
                        "Start it again when you want a model.", iteration=iteration)


def _read_memory(cur: duckdb.DuckDBPyConnection, sql: str, params: dict, spec: FeatureSpec, labels: Labels,
                 n: int, should_stop: Callable[[], bool] | None, *, with_fold: bool = False) -> _Split:
    """A split into a preallocated column-major float64 matrix (LightGBM takes it without a copy).

    With `with_fold`, the column after the label is each row's fold number (see fold_sql).
    """
    x = np.empty((n, len(spec.names)), dtype=np.float64, order="F")
    y = np.empty(n, dtype=np.float64)
    fold = np.empty(n, dtype=np.int64) if with_fold else None
    at = 0
    try:
        for batch in cur.sql(sql, params=params or None).to_arrow_reader(BATCH_ROWS):
            _check_stop(should_stop)
            m = batch.num_rows
            if at + m > n:
                raise QuarryError("The data changed while it was being read for training.",
                                  "Train again once the files stop changing.")
            for i in range(len(spec.names)):
                x[at:at + m, i] = spec.column(i, batch.column(i))
            y[at:at + m] = labels(batch.column(len(spec.names)))
            if fold is not None:
                fold[at:at + m] = batch.column(len(spec.names) + 1).to_numpy(zero_copy_only=False)
            at += m
    except duckdb.Error as exc:
        raise translate(exc, "Reading the training data") from None
    if at != n:
        raise QuarryError("The data changed while it was being read for training.",
                          "Train again once the files stop changing.")
    return _Split(y=y, x=x, fold=fold)


def _read_parquet(cur: duckdb.DuckDBPyConnection, sql: str, params: dict, spec: FeatureSpec, labels: Labels,
                  path: Path) -> _Split:
    """A split written to Parquet by DuckDB (row groups of BATCH_ROWS), read back as a Sequence."""
    try:
        cur.execute(f"COPY ({sql}) TO {quote_literal(str(path))} (FORMAT parquet, ROW_GROUP_SIZE {BATCH_ROWS})",
                    params or None)
    except duckdb.Error as exc:
        raise translate(exc, "Writing the training data to the temp folder") from None
    y = labels(pq.read_table(path, columns=["__y"]).column(0))
    return _Split(y=y, seq=ParquetSequence(path, spec))


def _stream(cur: duckdb.DuckDBPyConnection, sql: str, params: dict, spec: FeatureSpec,
            labels: Labels) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    try:
        for batch in cur.sql(sql, params=params or None).to_arrow_reader(BATCH_ROWS):
            yield spec.matrix(batch), labels(batch.column(len(spec.names)))
    except duckdb.Error as exc:
        raise translate(exc, "Reading the test data") from None


# ----------------------------------------------------------------------------------------------
# Metrics and baselines


def metrics(task: str, y: np.ndarray, pred: np.ndarray, n_classes: int = 2) -> dict:
    """binary: auc, logloss, accuracy (at 0.5); multiclass: logloss, accuracy, macro_f1; regression:
    rmse, mae, r2. `pred` is P(positive), class probabilities (rows, classes) or values. None where
    undefined (AUC with one class present); {} when there are no rows."""
    if len(y) == 0:
        return {}
    from sklearn import metrics as skm  # here: importing scikit-learn costs ~1 s, and most commands never train

    if task == "binary":
        p = np.clip(pred, 1e-15, 1 - 1e-15)
        return {"auc": float(skm.roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None,
                "logloss": float(skm.log_loss(y, p, labels=[0, 1])),
                "accuracy": float(skm.accuracy_score(y, p >= 0.5))}
    if task == "multiclass":
        p = np.clip(pred, 1e-15, None)
        p = p / p.sum(axis=1, keepdims=True)
        guess = p.argmax(axis=1)
        return {"logloss": float(skm.log_loss(y, p, labels=list(range(n_classes)))),
                "accuracy": float(skm.accuracy_score(y, guess)),
                "macro_f1": float(skm.f1_score(y, guess, average="macro", zero_division=0))}
    return {"rmse": float(skm.root_mean_squared_error(y, pred)), "mae": float(skm.mean_absolute_error(y, pred)),
            "r2": float(skm.r2_score(y, pred)) if len(y) > 1 else None}


class _Prior:
    """The trivial model: the train split's class shares, or its mean."""

    def __init__(self, task: str, y: np.ndarray, n_classes: int) -> None:
        self.task = task
        if task == "regression":
            self.value = np.array(float(np.mean(y)))
        else:
            shares = np.bincount(y.astype(np.int64), minlength=n_classes).astype(float)
            shares /= shares.sum()
            self.value = shares[1] if task == "binary" else shares

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.task == "multiclass":
            return np.tile(self.value, (len(x), 1))
        return np.full(len(x), float(self.value))


class _Linear:
    """LogisticRegression / Ridge on the non-categorical features: train medians impute, then standardise."""

    def __init__(self, task: str, x: np.ndarray, y: np.ndarray, columns: list[int], n_classes: int, seed: int):
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.task, self.columns, self.n_classes = task, columns, n_classes
        model = Ridge(alpha=1.0) if task == "regression" else LogisticRegression(max_iter=500, random_state=seed)
        self.pipe = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), model)
        self.pipe.fit(self._x(x), y if task == "regression" else y.astype(np.int64))

    def _x(self, x: np.ndarray) -> np.ndarray:
        x = x[:, self.columns]
        return np.where(np.isfinite(x), x, np.nan)

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return self.pipe.predict(self._x(x))
        proba = self.pipe.predict_proba(self._x(x))
        full = np.zeros((len(x), self.n_classes))
        full[:, self.pipe.classes_.astype(np.int64)] = proba
        return full[:, 1] if self.task == "binary" else full


def _evaluate(chunks: Iterator[tuple[np.ndarray, np.ndarray]], models: dict[str, Callable], task: str,
              n_classes: int) -> dict[str, dict]:
    """Each model's metrics over batches of (matrix, labels); only predictions and labels are kept."""
    ys: list[np.ndarray] = []
    preds: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for x, y in chunks:
        ys.append(y)
        for name, predict in models.items():
            preds[name].append(predict(x))
    y = np.concatenate(ys) if ys else np.empty(0)
    out = {}
    for name, parts in preds.items():
        pred = np.concatenate(parts) if parts else np.empty(0)
        out[name] = metrics(task, y, pred, n_classes)
    return out


# ----------------------------------------------------------------------------------------------
# Callbacks


class _Progress:
    """Calls progress(iteration, total, train_value, valid_value) after every iteration."""

    order = 25  # after record_evaluation (20), before early stopping (30)
    before_iteration = False

    def __init__(self, progress: Callable, total: int) -> None:
        self.progress, self.total = progress, total

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        values = {}
        for r in env.evaluation_result_list or []:
            values.setdefault(r[0], r[2])
        self.progress(env.iteration + 1, self.total, values.get("train"), values.get("valid"))


class _Cancel:
    """Raises Cancelled before an iteration when should_stop() says so (`cancelled`: the exception to raise)."""

    order = 0
    before_iteration = True

    def __init__(self, should_stop: Callable[[], bool], cancelled: Callable[[], Cancelled] | None = None) -> None:
        self.should_stop, self.cancelled = should_stop, cancelled

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        if self.cancelled is None:
            _check_stop(self.should_stop, env.iteration - env.begin_iteration)
        elif self.should_stop():
            raise self.cancelled()


def _lgb_names(names: list[str]) -> list[str]:
    """Feature names LightGBM accepts (no JSON punctuation), unique; the result keeps the real names."""
    out, seen = [], set()
    for name in names:
        clean = "".join("_" if ch in '[]{}:,"\\' or ch.isspace() else ch for ch in name) or "_"
        base, k = clean, 1
        while clean in seen:
            k += 1
            clean = f"{base}_{k}"
        seen.add(clean)
        out.append(clean)
    return out


# ----------------------------------------------------------------------------------------------
# Training


def train(con: duckdb.DuckDBPyConnection, config: TrainConfig, *, progress: Callable | None = None,
          should_stop: Callable[[], bool] | None = None, settings: Settings | None = None) -> TrainResult:
    """Train LightGBM on a registered dataset (through its recipe) and score it against baselines.

    Parameters
    ----------
    con
        The DuckDB connection; this function works on a cursor of its own.
    config
        What to train (see TrainConfig).
    progress
        ``progress(iteration, total, train_value, valid_value)`` after every boosting iteration of the
        main model, with the first metric's value on train and valid. Cross-validation folds report
        nothing: their rounds are not the main model's curve.
    should_stop
        Asked before every iteration (cross-validation folds' included), between batches while reading
        and before each fold; True stops training by raising :class:`Cancelled` (no model is kept).
    settings
        Where temporary Parquet files go and the default thread count; read from the environment
        when None.

    Returns
    -------
    TrainResult
        The model, its metrics and baselines, and how it was trained (device, data path, params);
        with ``config.cv_folds``, the cross-validation's per-fold metrics in ``cv``.

    Raises
    ------
    QuarryError
        Bad configuration or parameters, an unusable target or split, LightGBM refusing to train;
        cross-validation whose train and valid rows do not fit ``memory_budget_mb``, or an empty fold.
    Cancelled
        ``should_stop`` returned True.
    """
    started = time.perf_counter()
    settings = settings or load_settings()
    user_params = check_params(config.params, config.task)
    notes: list[str] = []
    cur = con.cursor()
    tmp: Path | None = None
    try:
        source, params = source_sql(config.dataset), {}
        if config.recipe is not None:
            # Training form for every row: out-of-fold target encodings, so no row's own target is in its
            # features, whichever split it lands in (and one query, so one row hash, for all splits).
            compiled = compile_recipe(cur, config.recipe, source, training=True)
            source, params = compiled.sql, compiled.params
            if any(st.fitted for st in config.recipe.steps):  # said, so that nobody reads too much into test
                on = config.recipe.fitted_on or {}
                notes.append(f"The recipe's fitted steps learned their statistics on {on.get('dataset', 'its data')}"
                             + (f" where {on['where']}" if on.get("where") else " (all rows)")
                             + ", not on the train split alone: when that includes the test rows, test metrics of "
                             "target-encoded or scaled features can be slightly optimistic. Fit the recipe on "
                             "training rows only (`features fit ... --where`) to rule it out.")
        try:
            columns = {n: t for n, t, *_ in cur.sql(f"DESCRIBE ({source})", params=params or None).fetchall()}
        except duckdb.Error as exc:
            raise translate(exc, f"Reading the dataset {config.dataset!r}") from None
        if config.target not in columns:
            raise QuarryError(f"The target {config.target!r} is not a column of the data.",
                              f"Columns: {', '.join(list(columns)[:20])}{'…' if len(columns) > 20 else ''}.")
        survey = _survey(cur, source, params, columns, config.target)
        task = _task(config, columns[config.target], survey)
        user_params = check_params(config.params, task)
        classes = survey.classes if task != "regression" else None
        n_classes = len(classes) if classes else 1
        if config.split.kind == "stratified" and task == "regression":
            raise QuarryError("A stratified split needs a classification target.",
                              "Use a random, time or group split for regression.")
        if config.class_weight == "balanced" and task == "regression":
            raise QuarryError("Class weights need a classification target.", "Leave class_weight empty.")
        if survey.rows > survey.usable:
            notes.append(f"{survey.rows - survey.usable:,} rows with a missing target were left out.")
        names, kinds, excluded = _features(config, columns, survey)

        query = split_sql(cur, source, params, config.split, config.target)
        leaks, checked = leakage.check(cur, query, params, names, kinds, config.target, task, classes, config.seed)
        leaks = [replace(leak, kept=leak.feature in config.keep_leaky) for leak in leaks]
        for leak in leaks:
            if not leak.kept:
                i = names.index(leak.feature)
                del names[i], kinds[i]
                excluded[leak.feature] = "probable leakage: " + leak.sentence(config.target)
        if leaks and not names:
            raise QuarryError(f"Every feature predicts {config.target!r} almost perfectly on its own: each looks "
                              "computed from the target.", "Pick other features, or keep one deliberately "
                              "(Keep even if leaky; CLI --keep-leaky COL).")
        counts = split_counts(cur, source, params, config.split, config.target, by_class=False, query=query)
        rows = counts.rows
        if counts.dropped.get("missing time"):
            notes.append(f"{counts.dropped['missing time']:,} rows with a missing time were left out.")
        for part in ("train", "valid"):
            if not rows[part]:
                raise QuarryError(f"The {part} split has no rows ({config.split.describe()}).",
                                  "Raise its fraction, or use a split kind with more groups or times."
                                  if part == "valid" else "Lower the valid and test fractions.")
        spec = FeatureSpec(tuple(names), tuple(kinds))
        spec = FeatureSpec(spec.names, spec.kinds,
                           _categories(cur, query, params, [n for n, k in zip(names, kinds, strict=True)
                                                            if k == "categorical"]))
        if config.cv_folds:
            _check_cv_budget(rows["train"] + rows["valid"], len(names), config.memory_budget_mb)
        device, reason = choose_device(config.device, rows["train"])
        lgb_params = default_params(task, n_classes, config.seed, settings.threads)
        if config.class_weight == "balanced" and task == "binary":
            lgb_params["is_unbalance"] = True
        lgb_params.update(user_params)
        if device != "cpu":
            lgb_params["device_type"] = device

        labels = Labels(task, classes)
        selects = {part: _split_select(spec, config.target, task, query, part) for part in ("train", "valid", "test")}
        sequence = rows["train"] * len(names) * 8 > config.memory_budget_mb * 2**20
        if sequence:
            tmp = Path(tempfile.mkdtemp(prefix="train-", dir=settings.temp_dir))
            data = {p: _read_parquet(cur, selects[p], params, spec, labels, tmp / f"{p}.parquet")
                    for p in ("train", "valid")}
            notes.append(f"The train split ({rows['train']:,} rows x {len(names)} features) is over the "
                         f"{config.memory_budget_mb:g} MB memory budget: LightGBM read it from Parquet in batches.")
        else:
            data = {p: _read_memory(cur, selects[p], params, spec, labels, rows[p], should_stop)
                    for p in ("train", "valid")}
        _check_stop(should_stop)
        y_train = data["train"].y
        if task != "regression":
            present = set(np.unique(y_train).astype(int))
            if task == "binary" and len(present) < 2:
                raise QuarryError(f"The train split has only one class of {config.target!r}.",
                                  "Use a stratified split, or more data.")
            missing = [classes[i] for i in range(n_classes) if i not in present]
            if missing:
                notes.append(f"Classes absent from the train split: {', '.join(map(str, missing[:10]))}.")
        weight = None
        if config.class_weight == "balanced" and task == "multiclass":
            weight = _balanced_weight(y_train, n_classes)

        lgb_names = _lgb_names(names)
        cats = [lgb_names[i] for i in spec.categorical]
        train_ds = lgb.Dataset(data["train"].x if data["train"].x is not None else data["train"].seq, label=y_train,
                               weight=weight, feature_name=lgb_names, categorical_feature=cats or "auto",
                               free_raw_data=True)
        valid_ds = lgb.Dataset(data["valid"].x if data["valid"].x is not None else data["valid"].seq,
                               label=data["valid"].y, reference=train_ds, feature_name=lgb_names,
                               categorical_feature=cats or "auto")
        loaded = time.perf_counter()

        evals: dict = {}
        callbacks: list = [lgb.record_evaluation(evals)]
        if config.early_stopping_rounds:
            callbacks.append(lgb.early_stopping(config.early_stopping_rounds, first_metric_only=True, verbose=False))
        if progress is not None:
            callbacks.append(_Progress(progress, config.num_boost_round))
        if should_stop is not None:
            callbacks.append(_Cancel(should_stop))
        try:
            booster = lgb.train(lgb_params, train_ds, num_boost_round=config.num_boost_round,
                                valid_sets=[train_ds, valid_ds], valid_names=["train", "valid"], callbacks=callbacks)
        except lgb.basic.LightGBMError as exc:
            raise QuarryError(f"LightGBM could not train: {str(exc).strip().splitlines()[0]}",
                              "Check the LightGBM parameters; see "
                              "https://lightgbm.readthedocs.io/en/latest/Parameters.html.") from None
        trained = time.perf_counter()
        best = int(booster.best_iteration or booster.current_iteration())
        metric = next(iter(evals.get("valid", {})), lgb_params.get("metric"))
        curve = {"metric": metric, "train": list(evals.get("train", {}).get(metric, [])),
                 "valid": list(evals.get("valid", {}).get(metric, []))}

        # Baselines: the prior, and a linear model on a sample of the train split
        prior = _Prior(task, y_train, n_classes)
        linear, linear_cols = None, [i for i, k in enumerate(kinds) if k != "categorical"]
        if linear_cols:
            x_sample, y_sample = _baseline_sample(cur, data["train"], labels, config.seed)
            try:
                linear = _Linear(task, x_sample, y_sample, linear_cols, n_classes, config.seed)
            except ValueError as exc:
                notes.append(f"The linear baseline could not be fitted: {exc}")
            if spec.categorical:
                notes.append("The linear baseline uses the non-text features only.")
        else:
            notes.append("No linear baseline: every feature is text.")
        baseline_models = {"prior": prior.predict, **({"linear": linear.predict} if linear else {})}

        def model(x: np.ndarray) -> np.ndarray:
            return booster.predict(x, num_iteration=best)

        on_test = rows["test"] > 0
        valid_models = {"model": model} if on_test else {"model": model, **baseline_models}
        valid_scores = _evaluate(data["valid"].chunks(labels), valid_models, task, n_classes)
        test_scores = (_evaluate(_stream(cur, selects["test"], params, spec, labels),
                                 {"model": model, **baseline_models}, task, n_classes) if on_test else {})
        if not on_test:
            notes.append("There is no test split: the baselines are scored on the valid split.")
        scored = test_scores if on_test else valid_scores
        gain = booster.feature_importance("gain", iteration=best)
        split_counts_ = booster.feature_importance("split", iteration=best)
        order = sorted(range(len(names)), key=lambda i: (-gain[i], names[i]))
        final_params = {**lgb_params, "device_type": device}
        timings = {"load_s": loaded - started, "train_s": trained - loaded}
        cv = None
        if config.cv_folds:
            data.clear()  # the main model's matrices: cross-validation reads the rows again, with their folds
            if config.split.kind == "time":
                notes.append("The cross-validation folds are drawn at random, not by time: a fold's model also "
                             "learns from rows later than the ones it is scored on.")
            cv_started = time.perf_counter()
            select = (f"SELECT {spec.select_sql()}, {label_sql(config.target, task)} AS __y, {FOLD_COLUMN} "
                      f"FROM ({fold_sql(query, config.split, config.target, config.cv_folds, config.seed)})")
            cv = _cross_validate(cur, select, params, spec, labels, rows["train"] + rows["valid"], config,
                                 task, n_classes, lgb_params, lgb_names, cats, best, should_stop)
            timings["cv_s"] = time.perf_counter() - cv_started
        return TrainResult(
            dataset=config.dataset, target=config.target, task=task, classes=classes, features=names,
            feature_kinds=kinds, categorical=dict(spec.categories), excluded=excluded, params=final_params,
            leakage=[leak.to_json() for leak in leaks], leakage_checked=checked,
            num_boost_round=config.num_boost_round, best_iteration=best, curve=curve,
            metrics={"valid": valid_scores["model"], "test": test_scores.get("model", {})},
            baselines={name: scored[name] for name in baseline_models},
            importance={"feature": [names[i] for i in order], "gain": [float(gain[i]) for i in order],
                        "split": [int(split_counts_[i]) for i in order]},
            device={"requested": config.device, "used": device, "reason": reason},
            data_path="sequence" if sequence else "memory", rows=dict(rows), split=config.split.to_json(),
            timings={**timings, "total_s": time.perf_counter() - started},
            notes=notes, model_text=booster.model_to_string(num_iteration=best), cv=cv, booster=booster)
    finally:
        cur.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _balanced_weight(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-row weights n / (classes * class rows) for class codes y (absent classes weigh nothing)."""
    codes = y.astype(np.int64)
    per_class = np.bincount(codes, minlength=n_classes).astype(float)
    w = np.where(per_class > 0, len(y) / (n_classes * np.maximum(per_class, 1)), 0.0)
    return w[codes]


# ----------------------------------------------------------------------------------------------
# Cross-validation


def _check_cv_budget(rows: int, features: int, budget_mb: float) -> None:
    """Cross-validation holds the train and valid rows as float64 in memory: refuse when over the budget."""
    need_mb = rows * features * 8 / 2**20
    if need_mb > budget_mb:
        raise QuarryError(f"Cross-validation needs the train and valid rows in memory: {rows:,} rows x {features} "
                          f"features take {need_mb:,.1f} MB, over the {budget_mb:g} MB memory budget.",
                          f"Raise memory_budget_mb to {math.ceil(need_mb):,} or more, or set cv_folds to 0 "
                          "(training alone reads data over the budget from Parquet).")


def _cv_cancelled(fold: int, folds: int, rounds: int) -> Cancelled:
    return Cancelled(f"Cross-validation was cancelled in fold {fold} of {folds}.",
                     "Start it again when you want a model.", iteration=rounds)


def _cross_validate(cur: duckdb.DuckDBPyConnection, select: str, params: dict, spec: FeatureSpec, labels: Labels,
                    n: int, config: TrainConfig, task: str, n_classes: int, lgb_params: dict, lgb_names: list[str],
                    cats: list[str], rounds: int, should_stop: Callable[[], bool] | None) -> dict:
    """k models, each trained `rounds` rounds on k - 1 folds of `select`'s rows and scored on the other one.

    `select` gives the features, ``__y`` and the fold of the train and valid rows (n of them); they
    are read once into memory and each fold's rows are taken from there. No progress is reported
    (the folds' rounds are not the main model's curve); should_stop is asked before each fold and
    before each of its boosting rounds. ``Cancelled.iteration`` is then the main model's rounds.
    """
    k = config.cv_folds
    stop = should_stop or (lambda: False)
    try:
        data = _read_memory(cur, select, params, spec, labels, n, should_stop, with_fold=True)
    except Cancelled:
        raise _cv_cancelled(1, k, rounds) from None
    sizes = np.bincount(data.fold, minlength=k)
    if not sizes.all():
        empty = int(np.flatnonzero(sizes == 0)[0]) + 1
        raise QuarryError(f"Fold {empty} of {k} has no rows: there are too few "
                          f"{'groups' if config.split.kind == 'group' else 'rows'} for {k} folds.",
                          "Use fewer folds.")
    per_fold: list[dict] = []
    for f in range(k):
        if stop():
            raise _cv_cancelled(f + 1, k, rounds)
        held = data.fold == f
        y_fit = data.y[~held]
        weight = (_balanced_weight(y_fit, n_classes)
                  if config.class_weight == "balanced" and task == "multiclass" else None)
        ds = lgb.Dataset(data.x[~held], label=y_fit, weight=weight, feature_name=lgb_names,
                         categorical_feature=cats or "auto", free_raw_data=True)
        callbacks = [_Cancel(stop, functools.partial(_cv_cancelled, f + 1, k, rounds))]
        try:
            model = lgb.train(lgb_params, ds, num_boost_round=rounds, callbacks=callbacks)
        except lgb.basic.LightGBMError as exc:
            raise QuarryError(f"LightGBM could not train cross-validation fold {f + 1} of {k}: "
                              f"{str(exc).strip().splitlines()[0]}",
                              "Use fewer folds, or check the LightGBM parameters.") from None
        per_fold.append(metrics(task, data.y[held], model.predict(data.x[held]), n_classes))
        del ds, model
    mean, std = {}, {}
    for name in per_fold[0]:
        values = [m[name] for m in per_fold if m.get(name) is not None]
        mean[name] = float(np.mean(values)) if values else None
        std[name] = float(np.std(values)) if values else None
    return {"folds": k, "rounds": rounds, "rows": [int(s) for s in sizes], "per_fold": per_fold,
            "mean": mean, "std": std}


def _baseline_sample(cur: duckdb.DuckDBPyConnection, split: _Split, labels: Labels,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to BASELINE_ROWS rows of the train split, drawn at random (seeded)."""
    n = len(split.y)
    if split.x is not None:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=min(n, BASELINE_ROWS), replace=False))
        return split.x[idx], split.y[idx]
    try:
        table = cur.sql(f"SELECT * FROM read_parquet({quote_literal(str(split.seq.path))}) "
                        f"USING SAMPLE reservoir({BASELINE_ROWS} ROWS) REPEATABLE ({int(seed)})").to_arrow_table()
    except duckdb.Error as exc:
        raise translate(exc, "Sampling the train split for the linear baseline") from None
    return split.seq.spec.matrix(table), labels(table.column("__y"))
