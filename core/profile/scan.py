"""Column profiles computed in DuckDB over the full data, reading each column once.

A probe of the first rows and the files' metadata send each column down the cheapest path that
answers everything a profile shows (see ``profile_table``): counted by value (few values, or
integers in a narrow range), a bitmap (integer IDs), two counts (booleans), one GROUP BY on a
logarithmic sketch's buckets (other floats), or aggregate scans (the rest: text and times with many
values, wide-ranged integers). Only aggregates reach Python. Where a path estimates (HyperLogLog
distinct counts, sketch quantiles) the column says so (``ColumnProfile.exact``), and
``exact=True`` makes every figure exact.

Numeric statistics (min, max, mean, std, quantiles, histogram) are over finite values: NaN and
±Inf are counted apart, as they would otherwise swallow the mean and the bounds.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import duckdb
import numpy as np
import pyarrow as pa

from core.data.engine import quote_ident, translate
from core.data.types import FLOAT_TYPES, INTEGER_TYPES, NUMERIC, column_kind  # noqa: F401
from core.fmt import jsonable, significant
from core.profile import bitset, sketch
from core.profile import value_counts as vc

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Up to this many rows, duplicate rows are counted exactly (distinct 64-bit row hashes); above it,
# estimated from one row-hash partition in DUPLICATES_PARTITIONS.
DUPLICATES_HASH_MAX_ROWS = 5_000_000
DUPLICATES_PARTITIONS = 16
# Columns per aggregate query: DuckDB's memory for one query grows with its number of aggregates
# (240 histograms over 3 rows exhausted 1 GB), and Parquet reads only the batch's columns anyway.
BATCH_COLUMNS = 32
TOP_K = 10
BINS = 30
# An integer column with repeats whose values span at most this many is counted by value in a query of its
# own (in DuckDB's perfect hash table up to 2**engine.PERFECT_HASH_BITS values); at most this many pairs come back.
WIDE_RANGE = 1 << 22

TOP_KINDS = ("string", "integer", "decimal", "temporal")  # floats get a histogram; booleans count both values


@dataclass(frozen=True)
class Histogram:
    """Counts per bin between `edges` (len(counts) + 1 edges); values outside are counted apart."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    below: int = 0
    above: int = 0


@dataclass(frozen=True)
class TimeCounts:
    """Rows per period (`unit`: day, week, month or year) between the column's min and max."""

    unit: str
    periods: tuple[str, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class ColumnProfile:
    """One column's statistics; fields that do not apply to its kind are None."""

    name: str
    type: str
    kind: str
    count: int
    missing: int
    missing_pct: float
    distinct: int | None
    min: object = None
    max: object = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] | None = None
    zeros: int | None = None
    negatives: int | None = None
    nan: int | None = None
    pos_inf: int | None = None
    neg_inf: int | None = None
    empty: int | None = None
    length_min: int | None = None
    length_mean: float | None = None
    length_max: int | None = None
    top: tuple[tuple[object, int], ...] = ()
    other: int = 0
    histogram: Histogram | None = None
    over_time: TimeCounts | None = None
    exact: bool = False  # every figure counted exactly (value counts, a bitmap, two counts, or exact mode)


@dataclass(frozen=True)
class Profile:
    """A dataset's profile: totals, then one ColumnProfile per column."""

    table: str
    rows: int
    columns: tuple[ColumnProfile, ...]
    missing_cells: int
    duplicate_rows: int
    exact: bool
    seconds: float
    sample_rows: int | None = None  # None: every figure comes from the full data
    notes: tuple[str, ...] = field(default=())

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)

    def to_json(self) -> dict:
        return jsonable(asdict(self))

    @classmethod
    def from_json(cls, doc: dict) -> Profile:
        """The inverse of to_json (times stay ISO text, as they are shown)."""
        def column(c: dict) -> ColumnProfile:
            hist, times = c.get("histogram"), c.get("over_time")
            return ColumnProfile(**{
                **c, "top": tuple(tuple(t) for t in c.get("top") or ()),
                "histogram": Histogram(**{**hist, "edges": tuple(hist["edges"]), "counts": tuple(hist["counts"])})
                if hist else None,
                "over_time": TimeCounts(**{**times, "periods": tuple(times["periods"]),
                                           "counts": tuple(times["counts"])}) if times else None,
            })

        return cls(**{**doc, "columns": tuple(column(c) for c in doc["columns"]), "notes": tuple(doc["notes"])})


# ----------------------------------------------------------------------------------------------
# Scan 1: one aggregate query for every column


def _top_key(q: str, kind: str) -> str:
    """What top values are counted on: times as text, since Python's datetime drops nanoseconds."""
    return f"{q}::VARCHAR" if kind == "temporal" else q


def _scan1_exprs(i: int, col: str, kind: str, exact: bool) -> list[tuple[str, str]]:
    """(alias, SQL aggregate) pairs for column number i."""
    q = quote_ident(col)
    if kind == "boolean":  # two counts tell everything (cheaper than counting by value: 0.03 s vs 0.08 s at 20M)
        return [(f"c{i}_count", f"count({q})"), (f"c{i}_true", f"count_if({q})")]
    # Aggregates skip NULLs by themselves; only floats need NaN and ±Inf kept out.
    only = f" FILTER (WHERE isfinite({q}))" if kind == "float" else ""
    out = [(f"c{i}_count", f"count({q})"),
           (f"c{i}_distinct", f"count(DISTINCT {q})" if exact else f"approx_count_distinct({q})")]
    if kind in NUMERIC:
        x = f"{q}::DOUBLE" if kind == "decimal" else q
        qs = "[" + ", ".join(str(p) for p in QUANTILES) + "]"
        out += [(f"c{i}_min", f"min({x}){only}"), (f"c{i}_max", f"max({x}){only}"),
                (f"c{i}_mean", f"avg({x}::DOUBLE){only}"), (f"c{i}_std", f"stddev_samp({x}::DOUBLE){only}"),
                (f"c{i}_zeros", f"count_if({q} = 0)"), (f"c{i}_neg", f"count_if({q} < 0)")]
        if exact:  # exact quantiles, then an exact histogram between them in scan 2
            out.append((f"c{i}_q", f"quantile_cont({x}, {qs}){only}"))
        else:  # quantiles and histogram from a logarithmic sketch, in this same scan (core.sketch)
            d = f"{q}::DOUBLE"
            # NOT isfinite first (see _scan2_exprs); ln() must never see zero, a negative, NaN or Inf.
            skip = f"WHEN NOT isfinite({d}) THEN NULL " if kind == "float" else ""
            out.append((f"c{i}_sk", f"histogram(CASE {skip}{sketch.signed_bucket_sql(d)} END)"))
        if kind == "float":
            # NaN = non-finite minus infinities: count_if(isnan(x)) can be answered wrongly from Parquet
            # statistics, which leave NaN out.
            out += [(f"c{i}_nonfinite", f"count_if(NOT isfinite({q}))"),
                    (f"c{i}_pinf", f"count_if({q} = 'inf'::DOUBLE)"), (f"c{i}_ninf", f"count_if({q} = '-inf'::DOUBLE)")]
    elif kind == "string":
        out += [(f"c{i}_empty", f"count_if({q} = '')"), (f"c{i}_lmin", f"min(length({q}))"),
                (f"c{i}_lmean", f"avg(length({q}))"), (f"c{i}_lmax", f"max(length({q}))"),
                (f"c{i}_min", f"min({q})"), (f"c{i}_max", f"max({q})")]
    elif kind == "temporal":
        out += [(f"c{i}_min", f"min({q})"), (f"c{i}_max", f"max({q})")]
    if kind == "temporal":  # rows per day, rolled up to weeks, months or years in Python
        out.append((f"c{i}_days", f"histogram(date_trunc('day', {q})::DATE)"))
    return out


def _time_unit(lo: object, hi: object) -> str:
    days = (hi - lo).days if hasattr(hi - lo, "days") else 0
    return "day" if days <= 120 else "week" if days <= 3 * 365 else "month" if days <= 30 * 365 else "year"


def _bins(lo: float, hi: float, kind: str) -> tuple[float, float, int]:
    """(lower bound, bin width, number of bins): whole-number bins for narrow integer ranges."""
    if kind == "integer" and hi - lo + 1 <= BINS:
        return lo - 0.5, 1.0, int(hi - lo + 1)
    if hi <= lo:
        return lo - 0.5, 1.0, 1
    return lo, (hi - lo) / BINS, BINS


def histogram_plan(kind: str, quantiles: list | None, lo_value: float, hi_value: float
                   ) -> tuple[float, float, float, float, int]:
    """(lo, hi, start, width, bins): histogram bounds between p1 and p99 (min and max when those coincide)."""
    lo, hi = (float(quantiles[0]), float(quantiles[-1])) if quantiles else (lo_value, hi_value)
    if hi <= lo:
        lo, hi = lo_value, hi_value
    if kind == "integer":  # exact quantiles interpolate (p1 = 1.01): integer bounds are whole numbers
        lo, hi = float(math.floor(lo)), float(math.ceil(hi))
    return (lo, hi, *_bins(lo, hi, kind))


def _scan2_exprs(i: int, col: str, kind: str, s1: dict, plans: dict) -> list[tuple[str, str]]:
    """Exact mode: the histogram of column i between its exact p1 and p99 from scan 1."""
    if kind not in NUMERIC or s1.get(f"c{i}_min") is None or f"c{i}_q" not in s1:
        return []
    lo, hi, start, width, n = histogram_plan(kind, s1[f"c{i}_q"], float(s1[f"c{i}_min"]), float(s1[f"c{i}_max"]))
    x = f"{quote_ident(col)}::DOUBLE"
    # NOT isfinite first: DuckDB may drop the other tests using Parquet statistics (which leave
    # NaN out), and NaN must never reach the INTEGER cast.
    bucket = (f"CASE WHEN NOT isfinite({x}) THEN NULL WHEN {x} < {lo!r} THEN -1 WHEN {x} > {hi!r} THEN {n} "
              f"ELSE least(floor(({x} - {start!r}) / {width!r})::INTEGER, {n - 1}) END")
    plans[i] = (start, width, n)
    return [(f"c{i}_hist", f"histogram({bucket}) FILTER (WHERE isfinite({x}))")]


def _top_values(cur: duckdb.DuckDBPyConnection, src: str, col: str, kind: str) -> list[tuple[object, int]]:
    """The TOP_K most frequent values of one column with their exact counts (a grouped count of that column)."""
    key = _top_key(quote_ident(col), kind)
    return [(v, int(n)) for v, n in cur.sql(
        f"SELECT v, count(*) AS n FROM (SELECT {key} AS v FROM {src}) WHERE v IS NOT NULL GROUP BY v "
        f"ORDER BY n DESC, v::VARCHAR LIMIT {TOP_K}").fetchall()]


def _aggregate(cur: duckdb.DuckDBPyConnection, src: str, exprs: list[tuple[str, str]],
               params: list | None = None) -> dict:
    """Run one aggregate query; {alias: value}."""
    if not exprs:
        return {}
    rel = cur.sql("SELECT " + ", ".join(f"{e} AS {a}" for a, e in exprs) + f" FROM {src}", params=params or None)
    return dict(zip(rel.columns, rel.fetchall()[0], strict=True))


APPROX_NOTE = ("Columns with few values, integers in a narrow range and integer IDs are counted exactly; for the "
               "others, distinct counts are approximate (HyperLogLog) and quantiles come from a logarithmic sketch "
               "(within 1 % of the value at that rank), their histograms laid over it.")
EXACT_NOTE = "Exact mode: distinct counts, quantiles and duplicate rows are exact."


def _exactness(exact: bool) -> str:
    return EXACT_NOTE if exact else APPROX_NOTE


def _no_repeats(cur: duckdb.DuckDBPyConnection, src: str, col: str, total: int) -> bool:
    """Whether `col` holds no NULL and no repeated value (in one row-hash partition above the hash limit):
    then no two rows can be equal, and there are no duplicate rows to count."""
    q = quote_ident(col)
    where = f" WHERE hash({q}) % {DUPLICATES_PARTITIONS} = 0" if total > DUPLICATES_HASH_MAX_ROWS else ""
    sql = f"SELECT count(*), count({q}), count(DISTINCT {q}) FROM {src}{where}"
    rows, values, distinct = cur.sql(sql).fetchall()[0]
    return rows == values == distinct


def _duplicates(cur: duckdb.DuckDBPyConnection, src: str, cols_all: str, total: int,
                exact: bool, unique: str | None = None) -> tuple[int, int, str]:
    """(rows, duplicate rows, the note that says how they were counted).

    `unique` names a column that looked unique in the first rows: when it has no repeated value, no
    two rows are equal, which is far cheaper to check than hashing every column of every row.
    """
    if not exact and unique is not None and _no_repeats(cur, src, unique, total):
        part = f" (in one row-hash partition in {DUPLICATES_PARTITIONS})" if total > DUPLICATES_HASH_MAX_ROWS else ""
        return total, 0, APPROX_NOTE + f" No duplicate rows: no two rows share a value of {unique}{part}."
    if exact:
        head = _aggregate(cur, src, [("rows", "count(*)"), ("distinct_rows", f"count(DISTINCT ({cols_all},))")])
        return int(head["rows"]), int(head["rows"]) - int(head["distinct_rows"] or 0), EXACT_NOTE
    if total <= DUPLICATES_HASH_MAX_ROWS:
        head = _aggregate(cur, src, [("rows", "count(*)"), ("distinct_rows", f"count(DISTINCT hash({cols_all}))")])
        return int(head["rows"]), int(head["rows"]) - int(head["distinct_rows"] or 0), \
            APPROX_NOTE + " Duplicate rows are counted by row hash."
    # Every copy of a row has the same hash, so the rows of one hash partition hold whole groups of
    # copies: their duplicate share, counted exactly, estimates the table's without bias.
    # (A WHERE, not an aggregate FILTER: DuckDB then hashes only the partition's rows into the set.)
    head = cur.sql(f"SELECT count(*), count(DISTINCT h) FROM (SELECT hash({cols_all}) AS h FROM {src}) "
                   f"WHERE h % {DUPLICATES_PARTITIONS} = 0").fetchall()[0]
    part_rows, part_distinct = (int(v or 0) for v in head)
    share = (part_rows - part_distinct) / part_rows if part_rows else 0.0
    return total, round(share * total), (APPROX_NOTE + " Duplicate rows are estimated from the rows of one "
                                       f"row-hash partition in {DUPLICATES_PARTITIONS} (copies share a hash).")


Progress = Callable[[int, int, tuple["ColumnProfile", ...]], None]


def _batches(positions: list[int]) -> list[list[int]]:
    return [positions[b:b + BATCH_COLUMNS] for b in range(0, len(positions), BATCH_COLUMNS)]


def profile_table(con: duckdb.DuckDBPyConnection, table: str, *, exact: bool = False,
                  progress: Progress | None = None) -> Profile:
    """Profile every column of a registered dataset over its full data.

    A probe of the first rows and the files' metadata sort the columns into these paths, each exact
    where it can be and each reading a column once:

    - few distinct values: counted by value, all such columns in one query (core.value_counts);
    - integers with repeats in a narrow range (up to ``WIDE_RANGE`` values): counted by value, one
      query each, in DuckDB's perfect hash table;
    - integers with one value per row (IDs) in a range ``core.bitset`` covers: one bitmap each;
    - booleans: two counts, in the aggregate scan below;
    - floats with many values: one GROUP BY on their quantile sketch's bucket (core.sketch);
    - the rest: aggregate scans (counts, extremes, moments, distinct, a quantile sketch), then an
      exact grouped count of their top values.

    Every query handles at most ``BATCH_COLUMNS`` columns and reads only those from Parquet, so a wide
    table costs no more I/O and the aggregate state (and memory) stays bounded however many columns
    there are.

    Parameters
    ----------
    table
        A registered dataset (a view name).
    exact
        Exact distinct counts, quantiles and duplicate rows (slower: they hold every value).
    progress
        Called as ``progress(done, total, ready)`` after each query, in units of column-scans;
        ``ready`` holds the columns finished so far, so a page can show them while the rest runs.
        Raising from it (a cancel) stops the profile.
    """
    started = time.perf_counter()
    cur = con.cursor()
    ready: dict[int, ColumnProfile] = {}
    try:
        schema = [(n, t) for n, t, *_ in cur.execute(f"DESCRIBE {quote_ident(table)}").fetchall()]
        kinds = [column_kind(t) for _, t in schema]
        src = quote_ident(table)
        rows = int(cur.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0])  # Parquet metadata: cheap
        plan = _plan(cur, src, schema, kinds)
        general = [i for i in range(len(schema)) if i not in plan.by_value | plan.wide | set(plan.dense)]
        per_general = 2 if exact else 1
        steps, done = len(schema) + (per_general - 1) * len(general), 0

        def report(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, steps, tuple(ready[i] for i in sorted(ready)))

        def from_counts(batch: list[int], max_values: int) -> list[int]:
            """Profile `batch` by value; the columns that held too many values are returned."""
            moved: list[int] = []
            while batch:
                counted, over = vc.count_values(cur, src, [schema[i][0] for i in batch], max_values)
                if not over:
                    break
                moved += [batch[j] for j in over]  # the first rows misled: those take the general path
                batch = [i for i in batch if i not in moved]
            for j, i in enumerate(batch):
                ready[i] = _column_from_counts(schema[i][0], schema[i][1], kinds[i], rows, *counted[j])
            report(len(batch))
            return moved

        for batch in _batches(sorted(plan.by_value)):
            general += from_counts(batch, vc.MAX_VALUES)
        for i in sorted(plan.wide):  # a range of at most WIDE_RANGE values bounds what comes back
            general += from_counts([i], WIDE_RANGE)
        without_repeats = []
        for batch in _batches(sorted(plan.dense)):
            bitmaps = _aggregate(cur, src, [e for i in batch for e in (
                (f"c{i}_count", f"count({quote_ident(schema[i][0])})"),
                (f"c{i}_bits", bitset.aggregate_sql(schema[i][0], *plan.dense[i])))])
            for i in batch:
                bits = bitset.Bitmap(bitmaps[f"c{i}_bits"], *plan.dense[i])
                if bits.count < bitmaps[f"c{i}_count"]:  # a value repeats after all
                    general.append(i)
                    continue
                ready[i] = _column_from_bitmap(schema[i][0], schema[i][1], rows, bits)
                if bits.count == rows:
                    without_repeats.append(schema[i][0])
            report(len(batch) - sum(i in general for i in batch))
        general = sorted(set(general))
        steps = len(schema) + (per_general - 1) * len(general)
        floats = [] if exact else [i for i in general if kinds[i] == "float"]
        general = [i for i in general if i not in floats]
        for batch in _batches(floats):  # one GROUP BY on the sketch's buckets per column
            for j, stats in sketch.bucket_stats(cur, src, [schema[i][0] for i in batch]).items():
                i = batch[j]
                ready[i] = _column_from_buckets(schema[i][0], schema[i][1], rows, stats)
            report(len(batch))
        s1: dict = {}
        for batch in _batches(general):  # counts, extremes, moments, distinct; sketches or exact quantiles
            s1.update(_aggregate(cur, src, [e for i in batch for e in _scan1_exprs(i, schema[i][0], kinds[i], exact)]))
            for i in batch:
                # A column that looked unique per row gets top values only if the full count says otherwise.
                if kinds[i] in TOP_KINDS and s1[f"c{i}_count"] and (
                        i not in plan.unique or (s1[f"c{i}_distinct"] or 0) < vc.UNIQUE_SHARE * s1[f"c{i}_count"]):
                    s1[f"c{i}_top"] = _top_values(cur, src, schema[i][0], kinds[i])
                if not exact:
                    ready[i] = _column(i, schema[i][0], schema[i][1], kinds[i], rows, s1, {}, None, exact)
            report(len(batch))
        plans: dict = {}
        for batch in _batches(general) if exact else ():  # exact histograms between exact quantiles
            s2 = _aggregate(cur, src, [e for i in batch for e in _scan2_exprs(i, schema[i][0], kinds[i], s1, plans)])
            for i in batch:
                ready[i] = _column(i, schema[i][0], schema[i][1], kinds[i], rows, s1, s2, plans.get(i), exact)
            report(len(batch))
        if without_repeats:
            duplicates, note = 0, _exactness(exact) + (f" No duplicate rows: every row has a value of "
                                                       f"{without_repeats[0]} of its own.")
        else:
            ids = sorted((i for i in plan.unique if i not in plan.dense), key=lambda i: (kinds[i] != "integer", i))
            cols_all = ", ".join(quote_ident(n) for n, _ in schema)
            rows, duplicates, note = _duplicates(cur, src, cols_all, rows, exact, schema[ids[0]][0] if ids else None)
    except duckdb.Error as exc:
        raise translate(exc, f"Profiling {table!r}") from None
    finally:
        cur.close()

    columns = tuple(ready[i] for i in range(len(schema)))
    return Profile(table=table, rows=rows, columns=columns, missing_cells=sum(c.missing for c in columns),
                   duplicate_rows=duplicates, exact=exact, seconds=time.perf_counter() - started, notes=(note,))


@dataclass(frozen=True)
class Plan:
    """Which path each column takes (positions in the schema); the rest take the general aggregates."""

    by_value: set[int]  # few values: counted by value, together
    wide: set[int]  # integers with repeats in a narrow range: counted by value, one query each
    dense: dict[int, tuple[int, int]]  # integers that look unique, with their extremes: one bitmap each
    unique: set[int]  # columns that look unique per row (dense ones included)


def _plan(cur: duckdb.DuckDBPyConnection, src: str, schema: list[tuple[str, str]], kinds: list[str]) -> Plan:
    """Each column's path, from a probe of the first rows and the extremes in the files' metadata.

    Numbers and text are counted by value when the probe finds few values; booleans take two counts.
    """
    maybe = [i for i, k in enumerate(kinds) if k in NUMERIC + ("string", "temporal")]
    by_value: set[int] = set()
    unique: set[int] = set()
    for batch in _batches(maybe):
        probed, distinct = vc.probe_distinct(cur, src, [schema[i][0] for i in batch])
        for i, d in zip(batch, distinct, strict=True):
            if kinds[i] != "temporal" and vc.few_values(d, probed):
                by_value.add(i)
            elif vc.looks_unique(d, probed):
                unique.add(i)
    integers = [i for i, k in enumerate(kinds) if k == "integer" and i not in by_value]
    bounds = {n: b for batch in _batches(integers)
              for n, b in bitset.metadata_bounds(cur, src, [schema[i][0] for i in batch]).items()}
    ranged = {i: bounds[schema[i][0]] for i in integers if schema[i][0] in bounds}
    dense = {i: (lo, hi) for i, (lo, hi) in ranged.items() if i in unique and bitset.fits(lo, hi)}
    wide = {i for i, (lo, hi) in ranged.items() if i not in unique and hi - lo < WIDE_RANGE}
    return Plan(by_value=by_value, wide=wide, dense=dense, unique=unique)


def _assembled(name: str, duck_type: str, kind: str, rows: int, count: int, exact: bool,
               fields: dict) -> ColumnProfile:
    """A ColumnProfile from its values' count and its other fields; missing follows from the table's rows."""
    missing = rows - count
    return ColumnProfile(name=name, type=duck_type, kind=kind, count=count, missing=missing,
                         missing_pct=100.0 * missing / rows if rows else 0.0, exact=exact, **fields)


def _named_quantiles(qs: list | None) -> dict[str, float] | None:
    """{'p1': …, 'p99': …} for the values of QUANTILES in order."""
    return {f"p{round(p * 100)}": float(v) for p, v in zip(QUANTILES, qs, strict=True)} if qs else None


def _binned(start: float, width: float, n: int, counts: list, below: int, above: int) -> Histogram:
    """A histogram of n bins of `width` from `start`."""
    return Histogram(edges=tuple(start + k * width for k in range(n + 1)), counts=tuple(counts), below=below,
                     above=above)


def _column_from_buckets(name: str, duck_type: str, rows: int, stats: dict) -> ColumnProfile:
    """A float column's profile from its bucket groups (core.sketch.bucket_stats)."""
    positive, negative = stats.pop("positive"), stats.pop("negative")
    count = stats.pop("count")
    fields = {**stats, "distinct": min(stats["distinct"], count)}  # HyperLogLog can overshoot a little
    if fields["min"] is not None:
        fields.update(_from_sketch("float", positive, negative, fields))
    return _assembled(name, duck_type, "float", rows, count, False, fields)


def _column_from_bitmap(name: str, duck_type: str, rows: int, bits: bitset.Bitmap) -> ColumnProfile:
    """An integer column's profile from the bitmap of its values, each occurring once: every figure exact."""
    stats = bits.stats(QUANTILES)
    qs = stats.pop("quantiles")
    fields: dict = {**stats, "quantiles": _named_quantiles(qs)}
    if qs:
        lo, hi, start, width, n = histogram_plan("integer", qs, stats["min"], stats["max"])
        fields["histogram"] = _binned(start, width, n, *bits.histogram(lo, hi, start, width, n))
    return _assembled(name, duck_type, "integer", rows, fields.pop("count"), True, fields)


def _column_from_counts(name: str, duck_type: str, kind: str, rows: int, values: pa.Array,
                        counts: np.ndarray) -> ColumnProfile:
    """A column's profile from the count of each of its values (core.value_counts): every figure exact."""
    fields: dict = {}
    if kind in NUMERIC:
        stats = vc.numeric_stats(values, counts, kind, QUANTILES)
        finite = stats.pop("finite", None)
        qs = stats.pop("quantiles")
        fields.update(stats, quantiles=_named_quantiles(qs))
        if kind == "integer" and stats["min"] is not None:
            fields.update(min=int(stats["min"]), max=int(stats["max"]))
        if finite is not None:
            lo, hi, start, width, n = histogram_plan(kind, qs, stats["min"], stats["max"])
            fields["histogram"] = _binned(start, width, n, *vc.histogram_counts(*finite, lo, hi, start, width, n))
    else:  # text: numbers and text are the kinds counted by value
        fields.update(vc.string_stats(values, counts))
    count = fields.pop("count")
    if kind != "float":
        top = vc.top_values(values, counts, TOP_K)
        fields["top"] = tuple((jsonable(v), n) for v, n in top)
        fields["other"] = count - sum(n for _, n in top)
    return _assembled(name, duck_type, kind, rows, count, True, fields)


def _column(i: int, name: str, duck_type: str, kind: str, rows: int, s1: dict, s2: dict,
            plan: object, exact: bool) -> ColumnProfile:
    """Assemble one column's profile from the two scans' results."""
    g = lambda key: s1.get(f"c{i}_{key}")  # noqa: E731
    count = int(g("count") or 0)
    # HyperLogLog can overshoot a little: never more distinct values than values.
    fields: dict = {"distinct": min(int(g("distinct")), count) if g("distinct") is not None else None}
    if kind in NUMERIC:
        qs = g("q")
        bound = (lambda v: None if v is None else int(v)) if kind == "integer" else _num
        fields.update(min=bound(g("min")), max=bound(g("max")), mean=_num(g("mean")), std=_num(g("std")),
                      quantiles=_named_quantiles(qs), zeros=int(g("zeros") or 0), negatives=int(g("neg") or 0))
        if kind == "float":
            pinf, ninf = int(g("pinf") or 0), int(g("ninf") or 0)
            fields.update(nan=int(g("nonfinite") or 0) - pinf - ninf, pos_inf=pinf, neg_inf=ninf)
        if f"c{i}_sk" in s1 and fields["min"] is not None:
            fields.update(_from_sketch(kind, *sketch.split_signed(g("sk") or {}), fields))
        hist = s2.get(f"c{i}_hist")
        if hist is not None and plan is not None:
            start, width, n = plan
            fields["histogram"] = _binned(start, width, n, [int(hist.get(k, 0)) for k in range(n)],
                                          int(hist.get(-1, 0)), int(hist.get(n, 0)))
    elif kind == "string":
        fields.update(empty=int(g("empty") or 0), length_min=g("lmin"), length_max=g("lmax"),
                      length_mean=_num(g("lmean")), min=g("min"), max=g("max"))
    elif kind == "temporal":
        fields.update(min=g("min"), max=g("max"))
    top = g("top")
    if kind == "boolean":
        top = [(v, n) for v, n in ((False, count - int(g("true") or 0)), (True, int(g("true") or 0))) if n]
        fields.update(distinct=len(top), min=top[0][0] if top else None, max=top[-1][0] if top else None)
    if g("days"):
        fields["over_time"] = _over_time(g("days"), _time_unit(g("min"), g("max")))
    if top:
        ranked = sorted(top, key=lambda kv: (-kv[1], str(kv[0])))
        # Times were counted as DuckDB text ('2013-01-01 05:00:00'): shown in ISO form like every other time.
        iso = (lambda v: v.replace(" ", "T", 1)) if kind == "temporal" else jsonable
        fields["top"] = tuple((iso(v), int(n)) for v, n in ranked)
        fields["other"] = count - sum(n for _, n in ranked)
    return _assembled(name, duck_type, kind, rows, count, exact or kind == "boolean", fields)


def _over_time(days: dict, unit: str) -> TimeCounts:
    """Rows per day rolled up to `unit`; periods start on a Monday, the 1st of a month or 1 January."""
    start = {"day": lambda d: d, "week": lambda d: d - timedelta(days=d.weekday()),
             "month": lambda d: d.replace(day=1), "year": lambda d: d.replace(month=1, day=1)}[unit]
    totals: dict = {}
    for day, n in days.items():
        totals[start(day)] = totals.get(start(day), 0) + int(n)
    keys = sorted(totals)
    return TimeCounts(unit=unit, periods=tuple(k.isoformat() for k in keys), counts=tuple(totals[k] for k in keys))


def _from_sketch(kind: str, positive: dict, negative: dict, fields: dict) -> dict:
    """Quantiles and histogram of a column from its logarithmic bucket counts (core.sketch)."""
    lowest, highest = float(fields["min"]), float(fields["max"])
    qs = sketch.quantiles(positive, negative, fields["zeros"], QUANTILES, lowest, highest)
    if qs is None:
        return {}
    lo, hi, start, width, n = histogram_plan(kind, qs, lowest, highest)
    edges = [start + k * width for k in range(n + 1)]
    return {"quantiles": _named_quantiles(qs),
            "histogram": _binned(start, width, n, *sketch.histogram(positive, negative, fields["zeros"],
                                                                    [lo, *edges[1:-1], hi], lowest, highest))}


def _num(value: object) -> float | None:
    return None if value is None else float(value)


def short(value: object) -> str:
    """A value for a table cell: numbers to 4 significant digits, text cut at 24 characters."""
    text = "" if value is None else (significant(value) if isinstance(value, float) else str(value))
    return text if len(text) <= 24 else text[:23] + "…"


def summary_rows(p: Profile) -> dict[str, list]:
    """One line per column, as text columns for a table: the overview of a profile."""
    return column_rows(p.columns)


def column_rows(cols: tuple[ColumnProfile, ...]) -> dict[str, list]:
    """One line per column (of a profile, or of the columns finished so far)."""
    return {
        "column": [c.name for c in cols],
        "type": [c.type for c in cols],
        "missing %": [f"{c.missing_pct:.1f}" for c in cols],
        "distinct": [f"{c.distinct:,}" if c.distinct is not None else "" for c in cols],
        "min": [short(c.min) for c in cols],
        "max": [short(c.max) for c in cols],
        "mean": [short(c.mean) for c in cols],
        "top value": [f"{short(c.top[0][0])} ({c.top[0][1]:,})" if c.top else "" for c in cols],
    }


def column_facts(c: ColumnProfile, exact: bool) -> list[tuple[str, str]]:
    """A column's statistics as (label, text) lines for a detail view; '~' marks an estimate."""
    approx = "" if exact or c.exact else "~"
    facts = [("Type", f"{c.type} ({c.kind})"), ("Values", f"{c.count:,}"),
             ("Missing", f"{c.missing:,} ({c.missing_pct:.1f}%)")]
    if c.distinct is not None:
        facts.append(("Distinct", f"{approx}{c.distinct:,}"))
    for label, value in (("Min", c.min), ("Max", c.max), ("Mean", c.mean), ("Std", c.std)):
        if value is not None:
            facts.append((label, short(value)))
    for k, v in (c.quantiles or {}).items():
        facts.append((k if k != "p50" else "p50 (median)", f"{approx}{significant(v)}"))
    for label, value in (("Zeros", c.zeros), ("Negatives", c.negatives), ("NaN", c.nan), ("+Inf", c.pos_inf),
                         ("-Inf", c.neg_inf), ("Empty strings", c.empty)):
        if value:
            facts.append((label, f"{value:,}"))
    if c.length_min is not None:
        facts.append(("Length", f"{c.length_min}–{c.length_max} (mean {c.length_mean:.1f})"))
    return facts
