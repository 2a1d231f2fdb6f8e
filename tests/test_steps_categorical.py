"""Categorical steps against naive pandas/hashlib references: fitted on one table, applied to another that has
categories the first never had, NULLs, values with quotes and names with spaces, quotes and unicode;
out-of-fold target encoding checked row by row; snapshots of the SQL; errors naming the step."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import core.features.steps  # noqa: F401  (registers the kinds before Recipe.fitted looks them up)
from core.data.engine import quote_ident as q
from core.features import recipe as R
from tests.recipe_support import run, snapshot, table

C, N, B, Y, T, K = 'cïty "name"', "n it's", "flag", "y", "amount €", "customer"  # text, int, bool, targets, key
CATS = ["Paris", "paris", "other", "O'Brien", 'say "hi"', "Zürich", "", "a,b", "rare1", "rare2"]
WEIGHTS = [30, 5, 6, 10, 8, 12, 4, 3, 1, 1]
KINDS = ("one_hot", "frequency", "ordinal", "target_encode", "hash_encode", "group_rare")


def _data(seed: int, n: int, serving: bool) -> pa.Table:
    """Text C (weighted categories, 8% NULL; serving rows add unseen ones), int N, bool B, 0/1 Y, float T, key K."""
    rng = np.random.default_rng(seed)
    pool = CATS + (["Atlantis", "El Dorado"] if serving else [])
    weights = np.array(WEIGHTS + ([6, 6] if serving else []), float)
    c = [None if p < 0.08 else str(v) for p, v in zip(rng.random(n), rng.choice(pool, n, p=weights / weights.sum()),
                                                       strict=True)]
    ints = rng.integers(0, 8 if not serving else 12, n)  # 8..11 never occur in training
    nn = [None if p < 0.05 else int(v) for p, v in zip(rng.random(n), ints, strict=True)]
    b = [None if p < 0.1 else bool(v) for p, v in zip(rng.random(n), rng.integers(0, 2, n), strict=True)]
    base = {v: i / len(CATS) for i, v in enumerate(CATS)}
    y = [int(rng.random() < 0.2 + 0.6 * base.get(v, 0.5)) for v in c]
    t = [None if p < 0.05 else float(v) for p, v in zip(rng.random(n), rng.normal(100, 30, n), strict=True)]
    return pa.table({"id": pa.array(range(n), pa.int64()), C: pa.array(c, pa.string()), N: pa.array(nn, pa.int64()),
                     B: pa.array(b, pa.bool_()), Y: pa.array(y, pa.int64()), T: pa.array(t, pa.float64()),
                     K: pa.array([int(v) for v in rng.integers(0, n // 4, n)], pa.int64())})


@pytest.fixture
def data(con):
    train, serve = _data(1, 800, False), _data(2, 500, True)
    table(con, "train", train)
    table(con, "serve", serve)
    return frame(train), frame(serve)


def frame(t: pa.Table) -> pd.DataFrame:
    """pandas with nullable dtypes, so integer columns with missing values stay integers."""
    return t.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype(),
                                     pa.bool_(): pd.BooleanDtype(), pa.string(): pd.StringDtype()}.get)


def values(s: pd.Series) -> list:
    """A column as Python values, None for missing."""
    return [None if pd.isna(v) else _py(v) for v in s.astype(object)]


def top(train: pd.DataFrame, col: str, limit: int) -> list[tuple]:
    """(value, count) of the most frequent non-missing values; ties by value."""
    counts = train[col].dropna().value_counts()
    return sorted(((_py(v), int(n)) for v, n in counts.items()), key=lambda vn: (-vn[1], vn[0]))[:limit]


def _py(v):
    return v.item() if hasattr(v, "item") else v


def text(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def rows(out: pa.Table) -> pd.DataFrame:
    return frame(out)


def check_passthrough(out: pd.DataFrame, serve: pd.DataFrame, cols: list[str]) -> None:
    for c in cols:
        assert values(out[c]) == values(serve[c]), c


# ----------------------------------------------------------------------------------------------
# one_hot


def names_ref(col: str, labels: list[str]) -> list[str]:
    out, used = [], set()
    for label in labels:
        base = name = f"{col}={label}"
        i = 1
        while name.lower() in used:
            i += 1
            name = f"{base} ({i})"
        used.add(name.lower())
        out.append(name)
    return out


@pytest.mark.parametrize(("col", "k", "missing", "keep"), [(C, 10, True, False), (C, 3, False, True),
                                                           (N, 4, True, False), (B, 1, True, False)])
def test_one_hot_matches_reference(con, data, col, k, missing, keep):
    train, serve = data
    out, compiled, recipe = run(con, [R.Step("one_hot", {"columns": [col], "k": k, "missing": missing,
                                                         "keep": keep})], "serve", fit_on="train")
    got = rows(out)
    kept = [v for v, _ in top(train, col, k)]
    labels = ["other"] + (["missing"] if missing else []) + [text(v) for v in kept]
    named = names_ref(col, labels)
    other, miss, cat_names = named[0], named[1] if missing else None, named[(2 if missing else 1):]
    if col == C and k == 10:
        assert f"{C}=paris (2)" in cat_names and f"{C}=other (2)" in cat_names  # clashes are numbered
    expect_cols = [n for n in train.columns if n != col or keep]
    at = list(train.columns).index(col) + (1 if keep else 0)
    expect_cols[at:at] = [*cat_names, other] + ([miss] if missing else [])
    assert list(got.columns) == expect_cols
    serve_values = values(serve[col])
    for v, name in zip(kept, cat_names, strict=True):
        assert list(got[name]) == [int(x is not None and x == v) for x in serve_values], name
    assert list(got[other]) == [int(x is not None and x not in kept) for x in serve_values]
    if missing:
        assert list(got[miss]) == [int(x is None) for x in serve_values]
    if col == C:
        assert got.loc[serve[C] == "Atlantis", other].eq(1).all()  # unseen → other
    check_passthrough(got, serve, [c for c in serve.columns if c != col or keep])
    assert recipe.steps[0].fitted["columns"][col]["categories"] == kept


# ----------------------------------------------------------------------------------------------
# frequency


@pytest.mark.parametrize(("col", "measure", "cap"), [(C, "count", 100_000), (C, "share", 4), (N, "count", 3)])
def test_frequency_matches_reference(con, data, col, measure, cap):
    train, serve = data
    out, _, _ = run(con, [R.Step("frequency", {"columns": [col], "measure": measure, "max_categories": cap,
                                               "keep": True})], "serve", fit_on="train")
    counts = dict(top(train, col, cap))
    missing = sum(v is None for v in values(train[col]))
    scale = len(train) if measure == "share" else 1
    want = [(missing if v is None else counts.get(v, 0)) / scale for v in values(serve[col])]
    got = rows(out)[f"{col}_{measure}"]
    np.testing.assert_allclose(got.to_numpy(float), want, rtol=1e-12)
    assert values(rows(out)[col]) == values(serve[col])
    if col == C:
        assert (got[serve[C] == "Atlantis"] == 0).all()


# ----------------------------------------------------------------------------------------------
# ordinal


@pytest.mark.parametrize(("col", "order", "cap"), [(C, "frequency", 100_000), (C, "alphabetical", 6),
                                                   (N, "alphabetical", 100_000), (B, "frequency", 100_000)])
def test_ordinal_matches_reference(con, data, col, order, cap):
    train, serve = data
    out, _, _ = run(con, [R.Step("ordinal", {"columns": [col], "order": order, "max_categories": cap})],
                    "serve", fit_on="train")
    kept = [v for v, _ in top(train, col, cap)]
    if order == "alphabetical":  # DuckDB orders text by code point, as Python does
        kept = sorted(kept)
    code = {v: i for i, v in enumerate(kept)}
    want = [None if v is None else code.get(v, -1) for v in values(serve[col])]
    got = rows(out)
    assert values(got[f"{col}_code"]) == want
    assert col not in got.columns
    if col == C and cap == 100_000:
        assert -1 in want  # the serving rows really have unseen categories


# ----------------------------------------------------------------------------------------------
# hash_encode


def md5_bucket(text_value: str, n: int) -> int:
    return int.from_bytes(hashlib.md5(text_value.encode()).digest()[8:16], "little") % n


@pytest.mark.parametrize(("col", "buckets"), [(C, 16), (N, 3), (B, 1000)])
def test_hash_encode_matches_md5(con, data, col, buckets):
    _, serve = data
    out, _, recipe = run(con, [R.Step("hash_encode", {"columns": [col], "buckets": buckets})], "serve")
    assert recipe.steps[0].fitted is None  # stateless: nothing to fit
    want = [None if v is None else md5_bucket(text(v), buckets) for v in values(serve[col])]
    assert values(rows(out)[f"{col}_hash"]) == want


# ----------------------------------------------------------------------------------------------
# group_rare


@pytest.mark.parametrize(("col", "share", "k"), [(C, 0.05, None), (C, 0.0, 3), (N, 0.13, None)])
def test_group_rare_matches_reference(con, data, col, share, k):
    train, serve = data
    out, _, _ = run(con, [R.Step("group_rare", {"columns": [col], "min_share": share, "k": k,
                                                "other": "(rest)"})], "serve", fit_on="train")
    kept = {v for v, n in top(train, col, k or 10**9) if n / len(train) >= share}
    want = [None if v is None else (text(v) if v in kept else "(rest)") for v in values(serve[col])]
    assert values(rows(out)[col]) == want
    assert 0 < len(kept) < train[col].nunique()


# ----------------------------------------------------------------------------------------------
# target_encode


def smoothed(rows_: pd.DataFrame, col: str, target: str, m: float) -> tuple[dict, float | None, float]:
    """{category: smoothed mean} over `rows_` (rows with a target), the missing category's value, and the prior."""
    rows_ = rows_[rows_[target].notna()]
    y = rows_[target].astype(float)
    prior = y.mean()
    by = pd.DataFrame({"c": values(rows_[col]), "y": y.to_numpy()})
    stats = {(None if pd.isna(c) else _py(c)): (g.y.sum(), len(g)) for c, g in by.groupby("c", dropna=False)}
    enc = {c: (s + m * prior) / (n + m) if n + m else prior for c, (s, n) in stats.items()}
    return enc, enc.get(None, prior), prior


@pytest.mark.parametrize(("col", "target", "m"), [(C, Y, 10.0), (N, T, 0.0), (B, Y, 3.0)])
def test_target_encode_applied_is_full_smoothed_mean(con, data, col, target, m):
    train, serve = data
    out, _, recipe = run(con, [R.Step("target_encode", {"columns": [col], "target": target, "m": m})],
                         "serve", fit_on="train")
    enc, missing, prior = smoothed(train, col, target, m)
    want = [missing if v is None else enc.get(v, prior) for v in values(serve[col])]
    np.testing.assert_allclose(rows(out)[f"{col}_{target}_mean"].to_numpy(float), want, rtol=1e-9)
    assert recipe.steps[0].fitted["prior"] == pytest.approx(prior)


def folds_by_key(train: pd.DataFrame, key: str, k: int) -> np.ndarray:
    """Fold of each row from hashlib alone: md5 of the key's text."""
    return np.array([md5_bucket("" if v is None else text(v), k) for v in values(train[key])])


def folds_by_row(con, k: int) -> np.ndarray:
    """Fold of each row from the row's text as DuckDB writes it, hashed with hashlib."""
    cols = ", ".join(q(c) for c in _train_columns(con))
    texts = [t for (t,) in con.sql(f"SELECT row({cols})::VARCHAR FROM train").fetchall()]
    return np.array([md5_bucket(t, k) for t in texts])


def _train_columns(con) -> list[str]:
    return [r[0] for r in con.sql("DESCRIBE train").fetchall()]


def out_of_fold_ref(train: pd.DataFrame, fold: np.ndarray, col: str, target: str, m: float) -> list[float]:
    """Each row: the smoothed mean of its category over the rows of the OTHER folds, toward their mean."""
    want = []
    cache = {f: smoothed(train[fold != f], col, target, m) for f in set(fold)}
    for v, f in zip(values(train[col]), fold, strict=True):
        enc, missing, prior = cache[f]
        want.append(missing if v is None else enc.get(v, prior))
    return want


@pytest.mark.parametrize(("col", "target", "key", "k"), [(C, Y, K, 5), (C, T, None, 3), (N, Y, None, 5)])
def test_target_encode_training_rows_are_out_of_fold(con, data, col, target, key, k):
    train, _ = data
    step = R.Step("target_encode", {"columns": [col], "target": target, "folds": k, "fold_key": key, "m": 10})
    out, compiled, recipe = run(con, [step], "train", training=True)
    fold = folds_by_key(train, key, k) if key else folds_by_row(con, k)
    assert len(set(fold)) == k
    fitted = recipe.steps[0].fitted
    assert fitted["fold_counts"] == [int(((fold == f) & train[target].notna()).sum()) for f in range(k)]
    want = out_of_fold_ref(train, fold, col, target, 10.0)
    np.testing.assert_allclose(rows(out)[f"{col}_{target}_mean"].to_numpy(float), want, rtol=1e-9)
    assert values(rows(out)["id"]) == list(range(len(train)))
    # the same fitted recipe applied outside training: the full-data smoothed mean
    applied = R.compile_recipe(con, recipe, R.source_sql("train"))
    full = frame(con.sql(applied.sql, params=applied.params).to_arrow_table())
    enc, missing, prior = smoothed(train, col, target, 10.0)
    np.testing.assert_allclose(full[f"{col}_{target}_mean"].to_numpy(float),
                               [missing if v is None else enc.get(v, prior) for v in values(train[col])], rtol=1e-9)
    assert not np.allclose(full[f"{col}_{target}_mean"].to_numpy(float), want)


def test_target_encode_does_not_leak_a_rows_own_target(con, data):
    """Encode the row id itself (one row per category) with no smoothing: in training form each row sees
    only the other folds, so it gets their prior — never its own target, which the applied form returns."""
    train, _ = data
    step = R.Step("target_encode", {"columns": ["id"], "target": Y, "m": 0.0, "fold_key": K, "keep": True})
    out, _, recipe = run(con, [step], "train", training=True)
    got = rows(out)["id_y_mean"].to_numpy(float)
    fold = folds_by_key(train, K, 5)
    priors = {f: train.loc[fold != f, Y].mean() for f in range(5)}
    np.testing.assert_allclose(got, [priors[f] for f in fold], rtol=1e-12)
    applied = R.compile_recipe(con, recipe, R.source_sql("train"))
    own = frame(con.sql(applied.sql, params=applied.params).to_arrow_table())["id_y_mean"]
    assert own.tolist() == train[Y].astype(float).tolist()


# ----------------------------------------------------------------------------------------------
# Order, round trip, snapshots


def test_lookup_steps_keep_every_row_once(con):
    """Joins may reorder rows (a recipe's output is a set of rows), but every row comes out once, correctly."""
    con.sql(f"CREATE TABLE big AS SELECT i AS id, 'c' || (i * 7919 % 3000)::VARCHAR AS {q(C)}, "
            f"(i % 3 = 0)::INTEGER AS y FROM range(300000) r(i)")
    steps = [R.Step("frequency", {"columns": [C], "keep": True}), R.Step("ordinal", {"columns": [C], "keep": True}),
             R.Step("group_rare", {"columns": [C], "min_share": 0.0003}),
             R.Step("target_encode", {"columns": [C], "target": "y"})]
    counts = con.sql(f"SELECT {q(C)}, count(*) FROM big GROUP BY 1").fetchall()
    for training in (False, True):
        out, _, _ = run(con, steps, "big", training=training)
        order = np.argsort(out["id"].to_numpy())
        assert (out["id"].to_numpy()[order] == np.arange(300000)).all(), f"rows lost or doubled ({training=})"
        by_category = dict(counts)
        ids, got = out["id"].to_numpy(), out[f"{C}_count"].to_numpy()
        want = np.array([by_category[f"c{i * 7919 % 3000}"] for i in ids.tolist()])
        assert (got == want).all()  # each row got its own category's count, wherever it sits


def test_fitted_recipe_round_trips_through_json(con, data):
    steps = [R.Step("group_rare", {"columns": [C], "min_share": 0.02}),
             R.Step("one_hot", {"columns": [C, B], "k": 5}),
             R.Step("frequency", {"columns": [N], "measure": "share", "keep": True}),
             R.Step("target_encode", {"columns": [N], "target": Y, "fold_key": K})]
    out, compiled, recipe = run(con, steps, "serve", fit_on="train")
    again = R.loads(recipe.dumps())
    assert json.loads(again.dumps()) == json.loads(recipe.dumps())
    compiled2 = R.compile_recipe(con, again, R.source_sql("serve"))
    assert compiled2.sql == compiled.sql
    assert con.sql(compiled2.sql, params=compiled2.params).to_arrow_table().equals(out)
    inline = con.sql(compiled.inline()).to_arrow_table()
    assert inline.to_pylist() == out.to_pylist()


SNAP = {"one_hot": {"k": 3}, "frequency": {"measure": "share"}, "ordinal": {"order": "alphabetical"},
        "target_encode": {"target": Y, "fold_key": K}, "hash_encode": {"buckets": 64},
        "group_rare": {"min_share": 0.05}}


@pytest.mark.parametrize("kind", KINDS)
def test_compiled_sql_snapshot(con, data, kind):
    _, compiled, recipe = run(con, [R.Step(kind, {"columns": [C], **SNAP[kind]})], "serve", fit_on="train")
    snapshot(f"categorical_{kind}", compiled.sql)
    if kind == "target_encode":
        training = R.compile_recipe(con, recipe, R.source_sql("train"), training=True)
        snapshot("categorical_target_encode_training", training.sql)
    assert compiled.steps[0].description


# ----------------------------------------------------------------------------------------------
# Errors name the step


@pytest.mark.parametrize(("kind", "params", "match"), [
    ("one_hot", {"columns": ["nope"]}, "does not exist"),
    ("one_hot", {"columns": [C], "k": 0}, "must be in"),
    ("one_hot", {"columns": [C], "top": 3}, "unknown parameter"),
    ("one_hot", {"columns": [T]}, "needs string or boolean or integer"),
    ("frequency", {"columns": [C], "measure": "percent"}, "must be one of"),
    ("ordinal", {"columns": [C], "max_categories": 0}, "must be in"),
    ("target_encode", {"columns": [C]}, "Target column is required"),
    ("target_encode", {"columns": [C], "target": "missing col"}, "does not exist"),
    ("target_encode", {"columns": [C, Y], "target": Y}, "cannot also be a column"),
    ("target_encode", {"columns": [C], "target": Y, "folds": 1}, "must be in"),
    ("target_encode", {"columns": [C], "target": C}, "needs integer or float"),
    ("hash_encode", {"columns": [C], "buckets": 1}, "must be in"),
    ("group_rare", {"columns": [C], "k": 0}, "must be in"),
    ("group_rare", {"columns": [C], "min_share": 2}, "must be in"),
])
def test_bad_params_name_the_step(con, data, kind, params, match):
    step = R.Step(kind, params, name="enc")
    with pytest.raises(R.RecipeError, match=match) as info:
        run(con, [R.Step("select", {"columns": ["id", C, N, B, Y, T, K]}), step], "serve", fit_on="train")
    assert f"Step 2 'enc' ({kind})" in str(info.value)


def test_new_column_clashing_with_an_existing_one_is_an_error(con, data):
    con.sql(f"CREATE TABLE clash AS SELECT *, 1 AS {q(C + '_COUNT')} FROM serve")
    with pytest.raises(R.RecipeError, match="already exists") as info:
        run(con, [R.Step("frequency", {"columns": [C]})], "clash", fit_on="train")
    assert "Step 1 (frequency)" in str(info.value)


def test_target_encode_must_be_refitted_when_its_folds_change(con, data):
    _, _, recipe = run(con, [R.Step("target_encode", {"columns": [C], "target": Y})], "serve", fit_on="train")
    changed = recipe.with_steps([R.Step("target_encode", {"columns": [C], "target": Y, "folds": 4},
                                        fitted=recipe.steps[0].fitted)])
    with pytest.raises(R.RecipeError, match="Fit the recipe again|changed since it was fitted"):
        R.compile_recipe(con, changed, R.source_sql("serve"), training=True)
