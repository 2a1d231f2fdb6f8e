"""Date and time steps: calendar parts, days since a fixed date, and cyclical (sin/cos) encodings. None is fitted.

Timestamps with a time zone are read in UTC, so a recipe gives the same parts on every machine whatever its
local time zone; a plain TIMESTAMP or DATE is taken as it is.
"""
from __future__ import annotations

from datetime import UTC, datetime

from core.data.engine import quote_ident as q
from core.features.recipe import Context, Kind, Param, kind

NUMBERS = ("integer", "float", "decimal")
# part: SQL over a column expression. weekday is 0 = Monday ... 6 = Sunday (ISO order).
PARTS = {
    "year": "year({})",
    "month": "month({})",
    "day": "day({})",
    "weekday": "isodow({}) - 1",
    "hour": "hour({})",
    "is_weekend": "isodow({}) >= 6",
    "day_of_year": "dayofyear({})",
    "quarter": "quarter({})",
}
US_PER_DAY = 86_400_000_000


def _moment(ctx: Context, name: str) -> str:
    """The column as a plain timestamp or date; one with a time zone is converted to UTC first."""
    col = ctx.column(name)
    return f"timezone('UTC', {q(name)})" if "TIME ZONE" in col.type.upper() else q(name)


def _added(ctx: Context, names: list[str]) -> None:
    """Fail when a new column's name is already taken (at this step or twice by this step)."""
    taken = set(ctx.names)
    for n in names:
        if n in taken:
            raise ctx.fail(f"it would add the column {n!r}, which already exists.",
                           "Drop or rename the existing column first.")
        taken.add(n)


def _date_parts(ctx: Context) -> tuple[str, str]:
    cols, parts = ctx.params["columns"], ctx.params["parts"]
    if not isinstance(parts, list | tuple) or not parts or not all(isinstance(p, str) for p in parts):
        raise ctx.fail(f"Parts to add must be a list of parts among {', '.join(PARTS)}. Got {parts!r}.",
                       "Pick one or more parts.")
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ctx.fail(f"Parts to add has an unknown part {unknown[0]!r}; parts are {', '.join(PARTS)}.",
                       "Pick from the list.")
    parts = list(dict.fromkeys(parts))
    dates = [c for c in cols if ctx.column(c).type.upper() == "DATE"]
    if "hour" in parts and dates:
        raise ctx.fail(f"the hour needs a timestamp; {dates[0]!r} is a DATE (its hour is always 0).",
                       "Remove 'hour', or cast the column to TIMESTAMP if it really holds times.")
    new = [f"{c}_{p}" for c in cols for p in parts]
    _added(ctx, new)
    exprs = [f"{PARTS[p].format(_moment(ctx, c))} AS {q(f'{c}_{p}')}" for c in cols for p in parts]
    zoned = any("TIME ZONE" in ctx.column(c).type.upper() for c in cols)
    notes = [*(["weekday 0 = Monday ... 6 = Sunday"] if "weekday" in parts else []), *(["in UTC"] if zoned else [])]
    return (f"SELECT *, {', '.join(exprs)} FROM {ctx.source}",
            f"add the {', '.join(parts)} of {', '.join(cols)} as <column>_<part>"
            + (f" ({'; '.join(notes)})" if notes else ""))


def reference_moment(text: str) -> datetime | None:
    """An ISO date or date-time as a naive UTC datetime (an offset is converted to UTC); None if it is not one."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _days_since(ctx: Context) -> tuple[str, str]:
    name, text = ctx.params["column"], ctx.params["reference"]
    moment = reference_moment(text)
    if moment is None:
        raise ctx.fail(f"Reference date must be an ISO date or date-time, e.g. 2024-06-30 or 2024-06-30 12:00. "
                       f"Got {text!r}.", "Write the date as YYYY-MM-DD.")
    new = f"{name}_days_since"
    _added(ctx, [new])
    col = ctx.column(name)
    value = f"{q(name)}::TIMESTAMP" if col.type.upper() == "DATE" else q(name)
    ref = ctx.bind(moment.isoformat(sep=" "))
    # Microseconds since the epoch on both sides: exact, and a time zone column counts in absolute time (UTC).
    expr = f"(epoch_us({ref}::TIMESTAMP) - epoch_us({value})) / {US_PER_DAY}.0"
    return (f"SELECT *, {expr} AS {q(new)} FROM {ctx.source}",
            f"{new} = days from {name} to {text.strip()} (fractions of a day count; negative when {name} is later)")


def _cyclical(ctx: Context) -> tuple[str, str]:
    name, period = ctx.params["column"], ctx.params["period"]
    if period <= 0:
        raise ctx.fail(f"Period must be more than 0. Got {period:g}.", "24 for hours, 7 for weekdays, 12 for months.")
    new = [f"{name}_sin", f"{name}_cos"]
    _added(ctx, new)
    angle = f"2 * pi() * {q(name)}::DOUBLE / {ctx.bind(float(period))}"
    return (f"SELECT *, sin({angle}) AS {q(new[0])}, cos({angle}) AS {q(new[1])} FROM {ctx.source}",
            f"{new[0]}, {new[1]} = sin and cos of 2π·{name}/{period:g} (values {period:g} apart encode the same)")


kind(Kind("date_parts", "Date parts", "temporal",
          (Param("columns", "columns", "Date or timestamp columns", kinds=("temporal",)),
           Param("parts", "value", "Parts to add", default=("year", "month", "weekday"), choices=tuple(PARTS),
                 help="One new column <column>_<part> each. weekday: 0 = Monday ... 6 = Sunday.")),
          _date_parts,
          help="Calendar parts of dates and timestamps. Timestamps with a time zone are read in UTC."))
kind(Kind("days_since", "Days since a date", "temporal",
          (Param("column", "column", "Date or timestamp column", kinds=("temporal",)),
           Param("reference", "text", "Reference date (YYYY-MM-DD)",
                 help="A fixed date, so the recipe gives the same values next month; e.g. the end of the "
                      "training period.")),
          _days_since,
          help="Adds <column>_days_since: days from the column to the reference date (positive when the "
               "column is earlier), with fractions of a day for timestamps."))
kind(Kind("cyclical", "Cyclical encoding (sin/cos)", "temporal",
          (Param("column", "column", "Numeric column", kinds=NUMBERS,
                 help="e.g. an hour, weekday or month made by a Date parts step."),
           Param("period", "float", "Period", help="24 for an hour of day, 7 for a weekday, 12 for a month, "
                                                   "365.25 for a day of the year.")),
          _cyclical,
          help="Adds <column>_sin and <column>_cos so that the end of a cycle sits next to its start "
               "(23:00 next to 00:00, December next to January)."))
