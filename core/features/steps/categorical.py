"""Categorical steps: one-hot, frequency, ordinal, target and hash encodings, and grouping rare categories.

Categorical columns are string, boolean and integer columns. Fitted kinds learn their category lists
with aggregate SQL over the training rows (only the top categories come back to Python, never a
column), and keep at most a capped number of them in the recipe's JSON. Category lists ride in the
query as bound lists; a step that looks values up joins its input to them (a hash join), which does
not keep the input's row order: a recipe's output is a set of rows (ID columns identify them).

What each kind does with a category it never saw in training (or one beyond its cap) and with a
missing value (NULL):

============== ======================================================= =======================================
kind           unseen / beyond the cap                                 missing
============== ======================================================= =======================================
one_hot        1 in ``<col>=other``, 0 in every kept category column   1 in ``<col>=missing`` (when asked for),
                                                                       otherwise 0 in every column
frequency      count 0 (share 0): "never seen, or rarer than the cap"  the number (share) of training rows
                                                                       where the column was missing
ordinal        -1                                                      NULL
target_encode  the prior: the target's mean over all training rows     missing is a category of its own: the
               (in training form, over the other folds)                smoothed mean of rows where it was
                                                                       missing (the prior when there were none)
hash_encode    no fitting: every value has a bucket                    NULL
group_rare     the 'other' label (a value never seen is rare)          stays missing
============== ======================================================= =======================================

Names: one-hot columns are ``<col>=<value>`` plus ``<col>=other`` and ``<col>=missing``; when two names
would be equal ignoring case (DuckDB names are case-insensitive) — say a kept category is itself called
'other' — the later one gets a number: ``<col>=other (2)``. Other kinds add ``<col>_count`` /
``<col>_share``, ``<col>_code``, ``<col>_<target>_mean`` and ``<col>_hash`` where the column was, and
drop the original unless asked to keep it; group_rare rewrites the column in place.

Target encoding of training rows is out-of-fold: a row's fold is a stable hash (md5) of the fold key
column, or of the whole row when there is none, and each training row gets the smoothed mean of the
*other* folds, ``(sum_other + m * prior_other) / (count_other + m)``, so its own target never leaks
into its feature. Rows that share a fold key (a customer) share a fold. Applied to other rows
(``training=False``), every row gets the smoothed mean over all training rows. Hashes use md5 (not
DuckDB's ``hash()``, which may change between versions) so that buckets and folds are the same in
any DuckDB version and can be reproduced outside it: ``int.from_bytes(md5(text)[8:16], 'little') % n``.
"""
from __future__ import annotations

from core.data.engine import quote_ident as q
from core.features.recipe import Context, Kind, Param, fit_rows, kind

CATEGORICAL = ("string", "boolean", "integer")
TARGETS = ("integer", "float", "decimal", "boolean")
MAX_ONE_HOT = 1000  # columns per encoded column: more than this is a job for hash or target encoding
CAP = 100_000  # categories remembered per column by default
ROW, FOLD, KEY, VALUE = "__quarry_row", "__quarry_fold", "__quarry_key", "__quarry_value"


# ----------------------------------------------------------------------------------------------
# Shared helpers


def _top(con, input_sql: str, bound: dict, col: str, limit: int) -> list[tuple]:
    """The `limit` most frequent non-missing values of `col` with their counts (ties: by value)."""
    sql = (f"SELECT {q(col)} AS v, count(*) AS n FROM ({input_sql}) AS fit_input WHERE {q(col)} IS NOT NULL "
           f"GROUP BY 1 ORDER BY n DESC, v LIMIT {int(limit)}")
    return con.sql(sql, params=bound or None).fetchall()


def _column_counts(con, ctx: Context, input_sql: str, bound: dict, limit: int) -> dict:
    """Per column: its top categories and counts, rows missing, and about how many distinct values it has."""
    cols = ctx.params["columns"]
    select = ["count(*) AS rows"] + [f"count(*) - count({q(c)}) AS {q('missing ' + c)}, "
                                     f"approx_count_distinct({q(c)}) AS {q('distinct ' + c)}" for c in cols]
    totals = fit_rows(con, input_sql, bound, ", ".join(select))
    out = {"rows": int(totals["rows"]), "columns": {}}
    for c in cols:
        top = _top(con, input_sql, bound, c, limit)
        out["columns"][c] = {"categories": [v for v, _ in top], "counts": [int(n) for _, n in top],
                             "missing": int(totals["missing " + c]), "distinct": int(totals["distinct " + c])}
    return out


def _fitted_column(ctx: Context, col: str) -> dict:
    got = (ctx.fitted.get("columns") or {}).get(col)
    if got is None:
        raise ctx.fail(f"it was not fitted for the column {col!r}.", "Fit the recipe again after changing columns.")
    return got


def _free(ctx: Context, names: list[str], dropped: set[str]) -> None:
    """New column names must not clash (ignoring case, as DuckDB does) with the columns that stay."""
    taken = {n.lower() for n in ctx.names if n not in dropped}
    seen: set[str] = set()
    for n in names:
        if n.lower() in taken or n.lower() in seen:
            raise ctx.fail(f"it would make a column named {n!r}, which already exists.",
                           "Rename or drop that column first.")
        seen.add(n.lower())


def _layout(ctx: Context, new: dict[str, list[str]], keep: bool, prefix: str = "") -> str:
    """The input's columns in order; each encoded column is followed (or replaced, unless `keep`) by its new ones."""
    parts = []
    for n in ctx.names:
        if n not in new or keep:
            parts.append(f"{prefix}{q(n)}" + (f" AS {q(n)}" if prefix else ""))
        parts.extend(new.get(n, []))
    return ", ".join(parts)


def _lookup(ctx: Context, j: int, col: str, keys: list, values: list, value_type: str) -> str:
    """A LEFT JOIN of the input (alias i) to bound (key, value) lists: the map m<j> for column `col`."""
    key_type = ctx.column(col).type
    table = (f"SELECT unnest({ctx.bind(keys)}::{key_type}[]) AS {q(KEY)}, "
             f"unnest({ctx.bind(values)}::{value_type}[]) AS {q(VALUE)}")
    return f"\nLEFT JOIN ({table}) AS m{j} ON i.{q(col)} = m{j}.{q(KEY)}"


def _joined(ctx: Context, select: str, joins: list[str], extra: str = "") -> str:
    """The input joined to the maps: a hash join whose build side is the small bound lists.

    Row order is not kept (a join in DuckDB does not keep it). A recipe's output is a set of rows:
    restoring the input order cost a numbered sort per step, which at 20M rows took 10 GiB.
    """
    return f"SELECT {select}\nFROM (SELECT *{extra} FROM {ctx.source}) AS i{''.join(joins)}"


def _some(cols: list[str]) -> str:
    return ", ".join(cols[:6]) + (f" and {len(cols) - 6} more" if len(cols) > 6 else "")


def _stable_hash(text_sql: str, n: int | str) -> str:
    """md5-based bucket in [0, n): the same in every DuckDB version and reproducible outside it."""
    return f"((md5_number({text_sql}) >> 64)::UBIGINT % {n})::BIGINT"


# ----------------------------------------------------------------------------------------------
# one_hot


def _fit_one_hot(con, ctx: Context, input_sql: str, bound: dict) -> dict:
    return _column_counts(con, ctx, input_sql, bound, ctx.params["k"])


def _one_hot_names(col: str, categories: list, missing: bool) -> tuple[str, str, list[str]]:
    """Names for the other and missing columns and one per category; case-insensitive clashes get a number."""
    used: set[str] = set()

    def name(label: str) -> str:
        base = out = f"{col}={label}"
        n = 1
        while out.lower() in used:
            n += 1
            out = f"{base} ({n})"
        used.add(out.lower())
        return out

    other = name("other")
    miss = name("missing") if missing else ""
    return other, miss, [name(_text(v)) for v in categories]


def _text(value: object) -> str:
    """A category as text, the way DuckDB casts it to VARCHAR (booleans are true/false)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _one_hot(ctx: Context) -> tuple[str, str]:
    p, new, texts = ctx.params, {}, []
    for col in p["columns"]:
        fitted, c, typ = _fitted_column(ctx, col), q(col), ctx.column(col).type
        cats = fitted["categories"]
        other, miss, names = _one_hot_names(col, cats, p["missing"])
        values = [f"{ctx.bind(v)}::{typ}" for v in cats]
        exprs = [f"CASE WHEN {c} = {v} THEN 1 ELSE 0 END AS {q(n)}" for v, n in zip(values, names, strict=True)]
        kept = f" OR {c} IN ({', '.join(values)})" if values else ""
        exprs.append(f"CASE WHEN {c} IS NULL{kept} THEN 0 ELSE 1 END AS {q(other)}")
        if p["missing"]:
            exprs.append(f"CASE WHEN {c} IS NULL THEN 1 ELSE 0 END AS {q(miss)}")
        _free(ctx, names + [other] + ([miss] if miss else []), set() if p["keep"] else {col})
        new[col] = exprs
        texts.append(f"{col} → a column for each of its {len(cats)} most frequent categories (of "
                     f"~{fitted['distinct']}), the rest and unseen ones → {other}"
                     + (f", missing → {miss}" if miss else ""))
    drop = "" if p["keep"] else f"; drop {_some(p['columns'])}"
    return f"SELECT {_layout(ctx, new, p['keep'])} FROM {ctx.source}", "one-hot encode " + "; ".join(texts) + drop


# ----------------------------------------------------------------------------------------------
# frequency


def _fit_frequency(con, ctx: Context, input_sql: str, bound: dict) -> dict:
    return _column_counts(con, ctx, input_sql, bound, ctx.params["max_categories"])


def _frequency(ctx: Context) -> tuple[str, str]:
    p, new, joins = ctx.params, {}, []
    share = p["measure"] == "share"
    rows = max(int(ctx.fitted.get("rows") or 0), 1)
    for j, col in enumerate(p["columns"]):
        fitted = _fitted_column(ctx, col)
        name = f"{col}_{p['measure']}"
        values = [n / rows for n in fitted["counts"]] if share else fitted["counts"]
        missing = fitted["missing"] / rows if share else fitted["missing"]
        typ = "DOUBLE" if share else "BIGINT"
        joins.append(_lookup(ctx, j, col, fitted["categories"], values, typ))
        new[col] = [f"CASE WHEN i.{q(col)} IS NULL THEN {ctx.bind(missing)}::{typ} "
                    f"ELSE coalesce(m{j}.{q(VALUE)}, 0) END AS {q(name)}"]
        _free(ctx, [name], set() if p["keep"] else {col})
    what = "share of training rows" if share else "number of training rows"
    cap, names = f"{p['max_categories']:,}", ", ".join(f"{c}_{p['measure']}" for c in p["columns"][:6])
    return (_joined(ctx, _layout(ctx, new, p["keep"], "i."), joins),
            f"{names} = the {what} with the same "
            f"{_some(p['columns'])} value (0 for categories unseen or beyond the {cap} most frequent; missing "
            f"counts as a category)" + ("" if p["keep"] else f"; drop {_some(p['columns'])}"))


# ----------------------------------------------------------------------------------------------
# ordinal


def _fit_ordinal(con, ctx: Context, input_sql: str, bound: dict) -> dict:
    out = _column_counts(con, ctx, input_sql, bound, ctx.params["max_categories"])
    if ctx.params["order"] == "alphabetical":
        for col in out["columns"].values():  # sort by DuckDB, so codes follow its collation, not Python's
            pairs = con.sql("SELECT list(v ORDER BY v), list(n ORDER BY v) FROM "
                            "(SELECT unnest($v) AS v, unnest($n) AS n)",
                            params={"v": col["categories"], "n": col["counts"]}).fetchall()[0]
            col["categories"], col["counts"] = list(pairs[0] or []), list(pairs[1] or [])
    return out


def _ordinal(ctx: Context) -> tuple[str, str]:
    p, new, joins = ctx.params, {}, []
    for j, col in enumerate(p["columns"]):
        cats = _fitted_column(ctx, col)["categories"]
        name = f"{col}_code"
        joins.append(_lookup(ctx, j, col, cats, list(range(len(cats))), "INTEGER"))
        new[col] = [f"CASE WHEN i.{q(col)} IS NULL THEN NULL ELSE coalesce(m{j}.{q(VALUE)}, -1) END AS {q(name)}"]
        _free(ctx, [name], set() if p["keep"] else {col})
    order = "most frequent first" if p["order"] == "frequency" else "in alphabetical (or numeric) order"
    return (_joined(ctx, _layout(ctx, new, p["keep"], "i."), joins),
            f"number the categories of {_some(p['columns'])} 0, 1, 2… {order} in the training rows; "
            "unseen → -1, missing stays missing" + ("" if p["keep"] else f"; drop {_some(p['columns'])}"))


# ----------------------------------------------------------------------------------------------
# target_encode


def _fold(ctx: Context, folds: int, key: str | None) -> str:
    """Each row's fold in [0, folds): a stable hash of the fold key, or of the whole input row."""
    text = (f"coalesce({q(key)}::VARCHAR, '')" if key
            else f"row({', '.join(q(n) for n in ctx.names)})::VARCHAR")
    return _stable_hash(text, folds)


def _check_target(ctx: Context) -> None:
    p = ctx.params
    if p["target"] in p["columns"]:
        raise ctx.fail(f"the target {p['target']!r} cannot also be a column to encode.", "Remove it from Columns.")


def _fit_target_encode(con, ctx: Context, input_sql: str, bound: dict) -> dict:
    _check_target(ctx)
    p, k = ctx.params, ctx.params["folds"]
    y = f"{q(p['target'])}::DOUBLE"
    src = f"(SELECT *, {_fold(ctx, k, p['fold_key'])} AS {q(FOLD)} FROM ({input_sql}) AS fit_input)"

    def per_fold(agg: str, cond: str = "TRUE") -> str:
        return "[" + ", ".join(f"coalesce({agg} FILTER (WHERE {q(FOLD)} = {f} AND {cond}), 0)"
                               for f in range(k)) + "]"

    totals = [f"{per_fold(f'sum({y})')} AS sums", f"{per_fold(f'count({y})')} AS counts"]
    for c in p["columns"]:
        totals += [f"{per_fold(f'sum({y})', f'{q(c)} IS NULL')} AS {q('missing sums ' + c)}",
                   f"{per_fold(f'count({y})', f'{q(c)} IS NULL')} AS {q('missing counts ' + c)}",
                   f"approx_count_distinct({q(c)}) AS {q('distinct ' + c)}"]
    rel = con.sql(f"SELECT {', '.join(totals)} FROM {src} AS t WHERE {q(p['target'])} IS NOT NULL",
                  params=bound or None)
    got = dict(zip(rel.columns, rel.fetchall()[0], strict=True))
    rows = int(sum(got["counts"]))
    if not rows:
        raise ctx.fail(f"the target {p['target']!r} has no values in the training rows.", "Pick another target.")
    out = {"rows": rows, "prior": sum(got["sums"]) / rows, "folds": k,
           "fold_key": p["fold_key"], "target": p["target"], "fold_sums": got["sums"],
           "fold_counts": [int(n) for n in got["counts"]], "columns": {}}
    for c in p["columns"]:
        # the most frequent categories (among rows with a target), with their per-fold sums and counts
        sql = (f"SELECT {q(c)} AS v, {per_fold(f'sum({y})')} AS s, {per_fold('count(*)')} AS n FROM {src} AS t "
               f"WHERE {q(c)} IS NOT NULL AND {q(p['target'])} IS NOT NULL "
               f"GROUP BY 1 ORDER BY count(*) DESC, v LIMIT {int(p['max_categories'])}")
        top = con.sql(sql, params=bound or None).fetchall()
        out["columns"][c] = {"categories": [v for v, _, _ in top], "sums": [list(s) for _, s, _ in top],
                             "counts": [[int(x) for x in n] for _, _, n in top],
                             "missing_sums": got["missing sums " + c],
                             "missing_counts": [int(x) for x in got["missing counts " + c]],
                             "distinct": int(got["distinct " + c])}
    return out


def _smooth(total: float, count: int, m: float, prior: float) -> float:
    """(sum + m * prior) / (count + m); the prior when there is nothing to average."""
    return (total + m * prior) / (count + m) if count + m > 0 else prior


def _target_encode(ctx: Context) -> tuple[str, str]:
    _check_target(ctx)
    p, f = ctx.params, ctx.fitted
    if (f.get("folds"), f.get("fold_key"), f.get("target")) != (p["folds"], p["fold_key"], p["target"]):
        raise ctx.fail("its target, folds or fold key changed since it was fitted.", "Fit the recipe again.")
    m, k, prior = p["m"], f["folds"], f["prior"]
    # out-of-fold prior per fold: the target's mean over the other folds
    total, rows = sum(f["fold_sums"]), sum(f["fold_counts"])
    oof_prior = [_mean(total - f["fold_sums"][i], rows - f["fold_counts"][i], prior) for i in range(k)]
    new, joins, target = {}, [], p["target"]
    fold = f"i.{q(FOLD)} + 1"
    for j, col in enumerate(p["columns"]):
        fc = _fitted_column(ctx, col)
        name = f"{col}_{target}_mean"
        if ctx.training:  # each row: the smoothed mean of the other folds
            values = [_out_of_fold(s, n, m, oof_prior) for s, n in zip(fc["sums"], fc["counts"], strict=True)]
            missing = _out_of_fold(fc["missing_sums"], fc["missing_counts"], m, oof_prior)
            joins.append(_lookup(ctx, j, col, fc["categories"], values, "DOUBLE[]"))
            expr = (f"CASE WHEN i.{q(col)} IS NULL THEN ({ctx.bind(missing)}::DOUBLE[])[{fold}] "
                    f"ELSE coalesce(m{j}.{q(VALUE)}[{fold}], ({ctx.bind(oof_prior)}::DOUBLE[])[{fold}]) END")
        else:
            values = [_smooth(sum(s), sum(n), m, prior) for s, n in zip(fc["sums"], fc["counts"], strict=True)]
            missing = _smooth(sum(fc["missing_sums"]), sum(fc["missing_counts"]), m, prior)
            joins.append(_lookup(ctx, j, col, fc["categories"], values, "DOUBLE"))
            expr = (f"CASE WHEN i.{q(col)} IS NULL THEN {ctx.bind(missing)}::DOUBLE "
                    f"ELSE coalesce(m{j}.{q(VALUE)}, {ctx.bind(prior)}::DOUBLE) END")
        new[col] = [f"{expr} AS {q(name)}"]
        _free(ctx, [name], set() if p["keep"] else {col})
    extra = f", {_fold(ctx, k, p['fold_key'])} AS {q(FOLD)}" if ctx.training else ""
    how = (f"out of fold: each training row gets the mean over the other {k - 1} of {k} folds (by "
           f"{p['fold_key'] or 'a hash of the row'}), so its own target does not leak"
           if ctx.training else "the mean over all training rows")
    names = ", ".join(f"{c}_{target}_mean" for c in p["columns"][:6])
    return (_joined(ctx, _layout(ctx, new, p["keep"], "i."), joins, extra),
            f"{names} = the mean of {target} per category, smoothed toward the overall mean {_num(prior)} with "
            f"m = {_num(m)}; {how}; unseen categories → the overall mean, missing is a category"
            + ("" if p["keep"] else f"; drop {_some(p['columns'])}"))


def _mean(total: float, count: int, fallback: float) -> float:
    return total / count if count else fallback


def _out_of_fold(sums: list[float], counts: list[int], m: float, oof_prior: list) -> list:
    """Per fold f: the smoothed mean of the category over the folds other than f."""
    s, n = sum(sums), sum(counts)
    return [_smooth(s - sums[f], n - counts[f], m, oof_prior[f]) for f in range(len(sums))]


def _num(x: float) -> str:
    return f"{x:.4g}"


# ----------------------------------------------------------------------------------------------
# hash_encode


def _hash_encode(ctx: Context) -> tuple[str, str]:
    p, new = ctx.params, {}
    for col in p["columns"]:
        name = f"{col}_hash"
        new[col] = [f"{_stable_hash(f'{q(col)}::VARCHAR', ctx.bind(p['buckets']))} AS {q(name)}"]
        _free(ctx, [name], set() if p["keep"] else {col})
    return (f"SELECT {_layout(ctx, new, p['keep'])} FROM {ctx.source}",
            f"{', '.join(c + '_hash' for c in p['columns'][:6])} = a hash of {_some(p['columns'])} into "
            f"{p['buckets']:,} buckets (0…{p['buckets'] - 1}; missing stays missing)"
            + ("" if p["keep"] else f"; drop {_some(p['columns'])}"))


# ----------------------------------------------------------------------------------------------
# group_rare


def _fit_group_rare(con, ctx: Context, input_sql: str, bound: dict) -> dict:
    p = ctx.params
    limit = min(p["k"] or CAP, CAP)
    out = _column_counts(con, ctx, input_sql, bound, limit)
    floor = p["min_share"] * out["rows"]
    for col in out["columns"].values():
        keep = [i for i, n in enumerate(col["counts"]) if n >= floor]
        col["categories"] = [col["categories"][i] for i in keep]
        col["counts"] = [col["counts"][i] for i in keep]
    return out


def _group_rare(ctx: Context) -> tuple[str, str]:
    p, joins, replaced, texts = ctx.params, [], {}, []
    other = ctx.bind(p["other"])
    for j, col in enumerate(p["columns"]):
        fitted = _fitted_column(ctx, col)
        joins.append(_lookup(ctx, j, col, fitted["categories"], [True] * len(fitted["categories"]), "BOOLEAN"))
        replaced[col] = (f"CASE WHEN i.{q(col)} IS NULL THEN NULL WHEN m{j}.{q(VALUE)} THEN i.{q(col)}::VARCHAR "
                         f"ELSE {other} END")
        texts.append(f"{col} keeps {len(fitted['categories'])} of ~{fitted['distinct']}")
    select = ", ".join(f"{replaced[n]} AS {q(n)}" if n in replaced else f"i.{q(n)} AS {q(n)}" for n in ctx.names)
    limit = f" (at most {p['k']:,} per column)" if p["k"] else ""
    return (_joined(ctx, select, joins),
            f"replace categories with under {p['min_share']:.4g} of the training rows{limit}, and unseen ones, "
            f"by {p['other']!r}: " + "; ".join(texts) + "; missing stays missing")


# ----------------------------------------------------------------------------------------------
# Registration

COLUMNS = Param("columns", "columns", "Columns to encode", kinds=CATEGORICAL)
KEEP = Param("keep", "bool", "Keep the original column", default=False)
MAX_CATEGORIES = Param("max_categories", "int", "Most categories to remember per column", default=CAP,
                       minimum=1, maximum=1_000_000, help="The most frequent are kept; the rest count as unseen.")

kind(Kind("one_hot", "One-hot encode", "categorical",
          (COLUMNS,
           Param("k", "int", "Categories to keep per column (the most frequent)", default=10, minimum=1,
                 maximum=MAX_ONE_HOT),
           Param("missing", "bool", "Missing values get their own column", default=True),
           Param("keep", "bool", "Keep the original column", default=False)),
          _one_hot, _fit_one_hot,
          help="One 0/1 column per kept category, named column=value, plus column=other for the rest and for "
               "categories never seen in training."))
kind(Kind("frequency", "Frequency encode", "categorical",
          (COLUMNS,
           Param("measure", "choice", "Encode as", default="count", choices=("count", "share"),
                 help="count: training rows with the same category; share: that count / training rows."),
           MAX_CATEGORIES, KEEP),
          _frequency, _fit_frequency,
          help="Categories never seen in training (or beyond the cap) get 0; missing counts as a category."))
kind(Kind("ordinal", "Number the categories", "categorical",
          (COLUMNS,
           Param("order", "choice", "Number them", default="frequency", choices=("frequency", "alphabetical"),
                 help="frequency: the most frequent is 0; alphabetical: in sort order (numbers numerically)."),
           MAX_CATEGORIES, KEEP),
          _ordinal, _fit_ordinal, help="Unseen categories get -1; missing stays missing."))
kind(Kind("target_encode", "Target encode", "categorical",
          (COLUMNS,
           Param("target", "column", "Target column", kinds=TARGETS),
           Param("m", "float", "Smoothing m (rows' worth of the overall mean)", default=10.0, minimum=0),
           Param("folds", "int", "Folds for out-of-fold training values", default=5, minimum=2, maximum=20),
           Param("fold_key", "column", "Rows with the same value share a fold (blank: hash of the whole row)",
                 required=False, help="e.g. a customer id, so one customer's rows never encode each other."),
           Param("max_categories", "int", "Most categories to remember per column", default=10_000, minimum=1,
                 maximum=CAP, help="The most frequent are kept; the rest get the overall mean."),
           KEEP),
          _target_encode, _fit_target_encode,
          help="The smoothed mean of the target per category. Training rows get out-of-fold values so they do "
               "not see their own target."))
kind(Kind("hash_encode", "Hash encode", "categorical",
          (COLUMNS,
           Param("buckets", "int", "Number of buckets", default=1024, minimum=2, maximum=2**31 - 1), KEEP),
          _hash_encode, help="For very many categories: a stable hash of the value, 0 … buckets - 1. Not fitted."))
kind(Kind("group_rare", "Group rare categories", "categorical",
          (COLUMNS,
           Param("min_share", "float", "Group categories below this share of training rows", default=0.01,
                 minimum=0, maximum=1),
           Param("k", "int", "Keep at most this many categories (blank: no limit)", required=False, minimum=1,
                 maximum=CAP),
           Param("other", "text", "Name for the grouped categories", default="other")),
          _group_rare, _fit_group_rare,
          help="Rare and unseen categories become one label; the column becomes text."))
