"""Numeric steps against naive NumPy references: fitted on one table, applied to another with values beyond
the fitted range (so a step that recomputed its statistics at apply time would fail), on columns with NULL,
NaN and ±Inf and names with spaces, quotes and unicode; snapshots of the SQL; errors naming the step."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

import core.features.steps  # noqa: F401  (registers the kinds before Recipe.fitted looks them up)
from core.features import recipe as R
from tests.recipe_support import run, snapshot, table

F, N, D, M, S = 'spend "usd"', "ünïts sold", "price €", "Mixed Case", "select"  # float, int, decimal, mode, text
NUMERIC = [F, N, D]
KINDS = ("impute", "clip", "transform", "scale", "bin")


def _data(seed: int, n: int, spread: float, extremes: bool) -> pa.Table:
    """Generated columns: F (normal, with NULL/NaN/±Inf), N (BIGINT), D (DECIMAL), M (rounded float), S (text)."""
    rng = np.random.default_rng(seed)
    pick = rng.random((5, n))
    f = [None if p < 0.05 else math.nan if p < 0.08 else math.inf if p < 0.09 else -math.inf if p < 0.10
         else float(v) for p, v in zip(pick[0], rng.normal(50, 10 * spread, n), strict=True)]
    i = [None if p < 0.05 else int(v) for p, v in zip(pick[1], rng.integers(-50 * spread, 100 * spread, n),
                                                      strict=True)]
    d = [None if p < 0.05 else Decimal(f"{v:.2f}") for p, v in zip(pick[2], rng.uniform(0, 100 * spread, n),
                                                                   strict=True)]
    m = [None if p < 0.05 else math.nan if p < 0.10 else math.inf if p < 0.12 else float(round(v))
         for p, v in zip(pick[3], rng.normal(0, 1, n), strict=True)]
    s = [None if p < 0.05 else str(v) for p, v in zip(pick[4], rng.choice(["a", "b", "c"], n, p=[.6, .3, .1]),
                                                      strict=True)]
    if extremes:  # far beyond anything in the training rows
        f[:2], i[:2], d[:2] = [1e6, -1e6], [10**6, -(10**6)], [Decimal("99999.99"), Decimal("-99999.99")]
    return pa.table({F: pa.array(f, pa.float64()), N: pa.array(i, pa.int64()), D: pa.array(d, pa.decimal128(10, 2)),
                     M: pa.array(m, pa.float64()), S: pa.array(s, pa.string())})


@pytest.fixture
def data(con):
    train, serve = _data(1, 600, 1, False), _data(2, 400, 3, True)
    table(con, "train", train)
    table(con, "serve", serve)
    return train, serve


# ----------------------------------------------------------------------------------------------
# Reference helpers: a column as (float values, null mask)


def col(t: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    arr = t[name].combine_chunks()
    null = arr.is_null().to_numpy(zero_copy_only=False)
    values = np.array([0.0 if v is None else float(v) for v in arr.to_pylist()])
    return values, null


def same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray], what: str) -> None:
    (g, gn), (w, wn) = got, want
    assert (gn == wn).all(), f"{what}: missing values differ at rows {np.flatnonzero(gn != wn)[:10]}"
    np.testing.assert_allclose(g[~gn], w[~wn], rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=what)


def finite(c: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    x, null = c
    return x[~null & np.isfinite(x)]


def ref_clip(train, serve, *, quantiles=None, lower=None, upper=None):
    if quantiles:
        lower, upper = np.quantile(finite(train), quantiles)
    x, null = serve
    return np.clip(x, -np.inf if lower is None else lower, np.inf if upper is None else upper), null


def ref_transform(train, serve, *, exponent=None):
    x, null = serve
    with np.errstate(invalid="ignore"):
        y = np.sign(x) * (np.log1p(np.abs(x)) if exponent is None else np.abs(x) ** exponent)
    return np.where(np.isnan(x), np.nan, y), null


def ref_scale(train, serve, *, method):
    fin = finite(train)
    centre, spread = (fin.mean(), fin.std()) if method == "standard" else (fin.min(), fin.max() - fin.min())
    x, null = serve
    with np.errstate(invalid="ignore"):
        y = (x - centre) / spread if spread else np.zeros_like(x)
    return np.where(np.isfinite(x), y, x), null


def ref_edges(train, method: str, bins: int) -> list[float]:
    fin = finite(train)
    if method == "quantile":
        raw = list(np.quantile(fin, [k / bins for k in range(bins + 1)]))
    else:
        lo, hi = float(fin.min()), float(fin.max())
        raw = [lo + k * (hi - lo) / bins for k in range(bins)] + [hi]
    return sorted(set(raw))


def ref_bin(train, serve, *, method, bins):
    inner = ref_edges(train, method, bins)[1:-1]
    x, null = serve
    return np.searchsorted(inner, x, side="right").astype(float), null | np.isnan(x)


# ----------------------------------------------------------------------------------------------
# clip, transform, scale, bin against their references

CASES = [  # (snapshot name, params, reference, columns)
    ("clip_quantile", {"columns": NUMERIC},
     lambda t, s: ref_clip(t, s, quantiles=[0.01, 0.99]), NUMERIC),
    ("clip_quantile_narrow", {"columns": [F, N], "lower_quantile": 0.2, "upper_quantile": 0.7},
     lambda t, s: ref_clip(t, s, quantiles=[0.2, 0.7]), [F, N]),
    ("clip_quantile_whole_range", {"columns": [F], "lower_quantile": 0.0, "upper_quantile": 1.0},
     lambda t, s: ref_clip(t, s, quantiles=[0.0, 1.0]), [F]),
    ("clip_fixed", {"columns": NUMERIC, "method": "fixed", "lower": 40.0, "upper": 60.5},
     lambda t, s: ref_clip(t, s, lower=40.0, upper=60.5), NUMERIC),
    ("clip_fixed_lower_only", {"columns": [F], "method": "fixed", "lower": 0},
     lambda t, s: ref_clip(t, s, lower=0.0), [F]),
    ("transform_log1p", {"columns": NUMERIC}, ref_transform, NUMERIC),
    ("transform_sqrt", {"columns": NUMERIC, "function": "power"},
     lambda t, s: ref_transform(t, s, exponent=0.5), NUMERIC),
    ("transform_cube", {"columns": [F, N], "function": "power", "exponent": 3},
     lambda t, s: ref_transform(t, s, exponent=3.0), [F, N]),
    ("scale_standard", {"columns": NUMERIC}, lambda t, s: ref_scale(t, s, method="standard"), NUMERIC),
    ("scale_minmax", {"columns": NUMERIC, "method": "minmax"}, lambda t, s: ref_scale(t, s, method="minmax"), NUMERIC),
    ("bin_quantile", {"columns": NUMERIC, "bins": 5}, lambda t, s: ref_bin(t, s, method="quantile", bins=5), NUMERIC),
    ("bin_quantile_many", {"columns": [F, N]}, lambda t, s: ref_bin(t, s, method="quantile", bins=10), [F, N]),
    ("bin_width", {"columns": NUMERIC, "method": "width", "bins": 4},
     lambda t, s: ref_bin(t, s, method="width", bins=4), NUMERIC),
    ("bin_width_replace", {"columns": [F], "method": "width", "bins": 3, "replace": True},
     lambda t, s: ref_bin(t, s, method="width", bins=3), [F]),
]


@pytest.mark.parametrize(("name", "params", "reference", "cols"), CASES, ids=[c[0] for c in CASES])
def test_step_matches_reference_on_new_data(con, data, name, params, reference, cols):
    train, serve = data
    kind = name.split("_")[0]
    out, compiled, recipe = run(con, [R.Step(kind, params)], "serve", fit_on="train")
    new_column = kind == "bin" and not params.get("replace")
    for c in cols:
        same(col(out, f"{c}_bin" if new_column else c), reference(col(train, c), col(serve, c)), f"{name}: {c}")
    # the other columns pass through untouched, in order, and new columns come last
    untouched = [c for c in serve.column_names if c not in cols or new_column]
    for c in untouched:
        if c != S:
            same(col(out, c), col(serve, c), f"{name}: untouched {c}")
    assert out[S].to_pylist() == serve[S].to_pylist()
    assert out.column_names == serve.column_names + ([f"{c}_bin" for c in cols] if new_column else [])
    types = {c.name: c.type for c in compiled.columns}
    assert all(types[f"{c}_bin" if new_column else c] == ("INTEGER" if kind == "bin" else "DOUBLE") for c in cols)
    assert recipe.fitted and (recipe.steps[0].fitted is None) == (kind == "transform")
    snapshot(f"numeric_{name}", compiled.sql)


def test_serve_data_goes_beyond_the_training_range(data):
    train, serve = data
    for c in NUMERIC:
        assert finite(col(serve, c)).min() < finite(col(train, c)).min()
        assert finite(col(serve, c)).max() > finite(col(train, c)).max()


def test_statistics_come_from_the_training_rows_only(con, data):
    train, serve = data
    _, _, on_train = run(con, [R.Step("scale", {"columns": [F]})], "serve", fit_on="train")
    _, _, on_serve = run(con, [R.Step("scale", {"columns": [F]})], "serve")
    fitted = on_train.steps[0].fitted["columns"][F]
    assert fitted == pytest.approx({"mean": finite(col(train, F)).mean(), "std": finite(col(train, F)).std()})
    assert on_serve.steps[0].fitted["columns"][F]["std"] > 2 * fitted["std"]
    assert on_train.fitted_on == {"dataset": "train", "where": None}


def test_bin_edges_are_fitted_and_deduplicated(con):
    table(con, "lumpy", pa.table({"x": [0.0] * 50 + [1.0, 2.0, 3.0, 4.0, 5.0] + [None, math.nan, math.inf]}))
    out, _, recipe = run(con, [R.Step("bin", {"columns": ["x"], "bins": 4})], "lumpy")
    assert recipe.steps[0].fitted == {"method": "quantile", "bins": 4, "columns": {"x": {"edges": [0.0, 5.0]}}}
    assert out["x_bin"].to_pylist() == [0] * 55 + [None, None, 0]  # one bin left; NaN is missing, +Inf the last bin


def test_degenerate_training_columns(con):
    table(con, "flat", pa.table({"k": [7.0] * 5 + [None], "z": [math.nan, None, math.inf, -math.inf, math.nan, None]}))
    table(con, "new", pa.table({"k": [1.0, 7.0, 20.0, None, math.nan, math.inf],
                                "z": [1.0, -2.0, None, math.nan, 3.0, 4.0]}))
    cols = {"columns": ["k", "z"]}
    for method in ("standard", "minmax"):  # no spread: finite values become 0, missing stays missing, ±Inf stay
        out, _, _ = run(con, [R.Step("scale", {**cols, "method": method})], "new", fit_on="flat")
        same(col(out, "k"), (np.array([0, 0, 0, 0, np.nan, np.inf]), np.array([0, 0, 0, 1, 0, 0], bool)), method)
        same(col(out, "z"), (np.array([0, 0, 0, np.nan, 0, 0]), np.array([0, 0, 1, 0, 0, 0], bool)), method)
    out, _, recipe = run(con, [R.Step("clip", cols)], "new", fit_on="flat")
    assert recipe.steps[0].fitted["columns"] == {"k": {"lower": 7.0, "upper": 7.0}, "z": {"lower": None, "upper": None}}
    assert out["z"].to_pylist()[:3] == [1.0, -2.0, None]  # no finite training values: no bounds
    assert out["k"].to_pylist()[:4] == [7.0, 7.0, 7.0, None]
    for method in ("quantile", "width"):
        out, _, _ = run(con, [R.Step("bin", {**cols, "method": method})], "new", fit_on="flat")
        assert out["k_bin"].to_pylist() == [0, 0, 0, None, None, 0]
        assert out["z_bin"].to_pylist() == [0, 0, None, None, 0, 0]


# ----------------------------------------------------------------------------------------------
# impute: every strategy against a reference


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _cast_like(value: object, arrow_type: pa.DataType) -> object:
    if pa.types.is_integer(arrow_type):  # DuckDB rounds half away from zero when casting to an integer
        return int(math.copysign(math.floor(abs(value) + 0.5), value))
    return value


def ref_fill(train: pa.Table, c: str, strategy: str, constant: object) -> object:
    if strategy == "constant":
        return constant
    if strategy == "mode":
        values = [v for v in train[c].to_pylist() if not _missing(v)]
        (top, n), (_, second) = Counter(values).most_common(2)
        assert n > second, "the reference needs a single most common value"
        return top
    fin = finite(col(train, c))
    return float(fin.mean() if strategy == "mean" else np.median(fin))


IMPUTE = [  # (strategy, columns, constant)
    ("mean", [F, N, M], None),
    ("median", [F, N, M], None),
    ("mode", [M, S], None),
    ("constant", [F, N, M], -1),
    ("constant", [S], "unknown"),
]


@pytest.mark.parametrize("indicator", [False, True])
@pytest.mark.parametrize(("strategy", "cols", "constant"), IMPUTE, ids=[f"{s}_{c[0]}" for s, c, _ in IMPUTE])
def test_impute_matches_reference_on_new_data(con, data, strategy, cols, constant, indicator):
    train, serve = data
    params = {"columns": cols, "strategy": strategy, "indicator": indicator, "value": constant}
    out, compiled, recipe = run(con, [R.Step("impute", params)], "serve", fit_on="train")
    for c in cols:
        fitted = ref_fill(train, c, strategy, constant)
        fill = _cast_like(fitted, serve[c].type)
        want = [fill if _missing(v) else v for v in serve[c].to_pylist()]
        got = out[c].to_pylist()
        if c == S:
            assert got == want
        else:
            same(col(out, c), (np.array(want, float), np.zeros(len(want), bool)), f"impute {strategy}: {c}")
        assert recipe.steps[0].fitted["values"][c] == pytest.approx(fitted)
        if indicator:  # NaN counts as missing
            assert out[f"{c}_was_missing"].to_pylist() == [_missing(v) for v in serve[c].to_pylist()]
    assert out.column_names == serve.column_names + ([f"{c}_was_missing" for c in cols] if indicator else [])
    assert {c.name: c.type for c in compiled.columns}[cols[0]] == con.sql("SELECT * FROM serve").types[
        serve.column_names.index(cols[0])]
    snapshot(f"numeric_impute_{strategy}_{len(cols)}{'_indicator' if indicator else ''}", compiled.sql)


def test_impute_ignores_infinities_in_the_mean(con):
    table(con, "inf", pa.table({"x": [1.0, 3.0, math.inf, -math.inf, None, math.nan]}))
    out, _, recipe = run(con, [R.Step("impute", {"columns": ["x"], "strategy": "mean"})], "inf")
    assert recipe.steps[0].fitted == {"values": {"x": 2.0}}
    assert out["x"].to_pylist() == [1.0, 3.0, math.inf, -math.inf, 2.0, 2.0]


# ----------------------------------------------------------------------------------------------
# Descriptions, errors, JSON round trip


def test_descriptions_show_the_fitted_numbers(con, data):
    steps = [R.Step("clip", {"columns": [F]}), R.Step("scale", {"columns": [N]}),
             R.Step("bin", {"columns": [D], "bins": 3}), R.Step("transform", {"columns": [M], "function": "power",
                                                                               "exponent": 2})]
    _, compiled, recipe = run(con, steps, "serve", fit_on="train")
    text = [s.description for s in compiled.steps]
    clip, scale, edges = (recipe.steps[0].fitted["columns"][F], recipe.steps[1].fitted["columns"][N],
                          recipe.steps[2].fitted["columns"][D]["edges"])
    assert text[0] == (f"clip {F} to [{clip['lower']:.6g}, {clip['upper']:.6g}] "
                       "(the 0.01 and 0.99 quantiles of the training rows)")
    assert text[1] == (f"standardise with the training rows' mean and standard deviation: "
                       f"({N} − {scale['mean']:.6g}) / {scale['std']:.6g}")
    assert text[2] == (f"quantile bin numbers as <column>_bin: {D} into 3 bin(s) at {edges[1]:.6g}, {edges[2]:.6g} "
                       f"(training range {edges[0]:.6g} to {edges[3]:.6g}); values beyond the training range go to "
                       "the first or last bin")
    assert text[3] == f"sign(x)·|x|^2 for {M}"


def error(con, steps: list[R.Step], fitted: bool = False) -> str:
    with pytest.raises(R.RecipeError) as info:
        if fitted:
            R.compile_recipe(con, R.Recipe(steps=tuple(steps)), R.source_sql("serve"))
        else:
            run(con, steps, "serve", fit_on="train")
    return str(info.value)


@pytest.mark.parametrize(("step", "message"), [
    (R.Step("scale", {"columns": [S]}, name="norm"),
     f"Step 1 'norm' (scale): Columns needs integer or float or decimal columns; {S!r} is VARCHAR."),
    (R.Step("clip", {"columns": [F], "upper_quantile": 1.5}),
     "Step 1 (clip): Upper quantile (for 'quantile') must be in [0, 1]. Got 1.5."),
    (R.Step("clip", {"columns": [F], "lower_quantile": -0.1}),
     "Step 1 (clip): Lower quantile (for 'quantile') must be in [0, 1]. Got -0.1."),
    (R.Step("clip", {"columns": [F], "lower_quantile": 0.9, "upper_quantile": 0.1}),
     "Step 1 (clip): the lower quantile (0.9) is above the upper one (0.1)."),
    (R.Step("clip", {"columns": [F], "method": "fixed"}),
     "Step 1 (clip): the 'fixed' method needs a Lower bound, an Upper bound or both."),
    (R.Step("clip", {"columns": [F], "method": "fixed", "lower": 5, "upper": 1}),
     "Step 1 (clip): the lower bound (5.0) is above the upper one (1.0)."),
    (R.Step("clip", {"columns": [F], "method": "sideways"}),
     "Step 1 (clip): Bounds from must be one of quantile, fixed. Got 'sideways'."),
    (R.Step("scale", {"columns": [F], "with_mean": True}), "Step 1 (scale): unknown parameter(s) with_mean."),
    (R.Step("bin", {"columns": ["nope"]}),
     "Step 1 (bin): Columns names the column 'nope', which does not exist at this step."),
    (R.Step("bin", {"columns": [F], "bins": 1}), "Step 1 (bin): Number of bins must be in [2, 100]. Got 1."),
    (R.Step("bin", {"columns": [F], "bins": 2.5}), "Step 1 (bin): Number of bins must be a whole number. Got 2.5."),
    (R.Step("transform", {"columns": [F], "function": "power", "exponent": 0}),
     "Step 1 (transform): Exponent must be greater than 0. Got 0.0."),
    (R.Step("transform", {"columns": [S]}),
     f"Step 1 (transform): Columns needs integer or float or decimal columns; {S!r} is VARCHAR."),
    (R.Step("impute", {"columns": [S], "strategy": "mean"}),
     f"Step 1 (impute): the mean needs numeric columns; {S!r} is VARCHAR."),
    (R.Step("impute", {"columns": [F], "strategy": "constant"}),
     "Step 1 (impute): the 'constant' strategy needs a Constant."),
])
def test_bad_parameters_name_the_step(con, data, step, message):
    assert error(con, [step]).startswith(message)


def test_bin_refuses_to_overwrite_a_column(con, data):
    steps = [R.Step("expression", {"name": f"{F}_bin", "expression": "1"}), R.Step("bin", {"columns": [F]})]
    assert error(con, steps).startswith(f"Step 2 (bin): a column named {F + '_bin'!r} already exists.")


def test_stale_fitted_values_are_refused(con, data):
    _, _, recipe = run(con, [R.Step("scale", {"columns": [F]}), R.Step("bin", {"columns": [N], "bins": 4}),
                             R.Step("clip", {"columns": [D]})], "serve", fit_on="train")
    scale, binned, clip = recipe.steps
    edits = [
        (replace(scale, params={"columns": [F], "method": "minmax"}), "method changed"),
        (replace(scale, params={"columns": [F, N]}), f"column {N!r} was added"),
        (replace(binned, params={"columns": [N], "bins": 5}), "bins changed"),
        (replace(clip, params={"columns": [D], "upper_quantile": 0.9}), "range changed"),
    ]
    for step, what in edits:
        assert error(con, [step], fitted=True) == (f"Step 1 ({step.kind}): its fitted values are out of date ({what} "
                                                   "since it was fitted). (Fit the recipe again on the training data.)")


def _rows(t: pa.Table) -> dict:
    """The table as plain lists, NaN written 'NaN' so that equal tables compare equal."""
    return {c: ["NaN" if isinstance(v, float) and math.isnan(v) else v for v in t[c].to_pylist()]
            for c in t.column_names}


def test_recipe_json_round_trip_keeps_fitted_values(con, data):
    steps = [R.Step("impute", {"columns": [F], "strategy": "median", "indicator": True}, name="fill"),
             R.Step("impute", {"columns": [D], "strategy": "mode"}),
             R.Step("clip", {"columns": [F, N], "lower_quantile": 0.05}),
             R.Step("transform", {"columns": [D]}),
             R.Step("scale", {"columns": [F], "method": "minmax"}),
             R.Step("bin", {"columns": [N], "method": "width", "bins": 6})]
    out, compiled, recipe = run(con, steps, "serve", fit_on="train")
    loaded = R.loads(recipe.dumps())
    assert loaded == recipe
    assert [s.fitted for s in loaded.steps] == [s.fitted for s in recipe.steps]
    # each step was fitted on the output of the steps before it: the bins span the clipped range
    edges, clipped = loaded.steps[5].fitted["columns"][N]["edges"], loaded.steps[2].fitted["columns"][N]
    assert (edges[0], edges[-1]) == (clipped["lower"], clipped["upper"]) and len(edges) == 7
    again = R.compile_recipe(con, loaded, R.source_sql("serve"))
    assert again.sql == compiled.sql and again.params == compiled.params
    assert _rows(con.sql(again.sql, params=again.params).to_arrow_table()) == _rows(out)
    snapshot("numeric_chain", compiled.sql)


def test_kinds_are_registered_with_readable_forms():
    kinds = R.kinds()
    for name in KINDS:
        k = kinds[name]
        assert k.family == "numeric" and k.help and k.label[0].isupper()
        assert all(p.label and p.label[0].isupper() and p.name != p.label for p in k.params)
        assert (k.fit is None) == (name == "transform")
