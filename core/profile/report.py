"""A profile as one self-contained HTML file: opens offline, makes no requests, holds only aggregates.

Charts are inline SVG drawn here (bars, axis labels, a tooltip per bar) rather than Plotly, whose
script alone is ~4 MB. The size is bounded whatever the data: per-column detail stops after
``max_columns`` columns, every list (alerts, table rows, features, patterns, bars) has a cap, and
every piece of text from the data is clipped and escaped. A Content-Security-Policy forbids
scripts and any fetch, as a second guard behind the escaping.

Optional sections are duck-typed (read with getattr), so this module imports no other analysis module:

- alerts (core.alerts.Alert): ``kind``, ``column`` (None for the whole dataset), ``severity``, ``message``
- target (core.target.TargetAnalysis): ``target``, optional ``task``, ``positive``, ``notes``;
  ``features``: objects (or tuples) with ``feature``, ``metric``, ``score``, strongest first
- patterns (core.missingness.MissingPatterns): ``patterns``: (columns missing together, rows) pairs
  or objects with ``columns`` and ``rows``, most rows first; optional ``pattern_count`` (all patterns),
  ``rows`` (the total), ``notes``, and ``columns`` + ``matrix`` (the nullity correlation)
- correlations (core.correlate.Correlations, or a sequence of them): ``columns``, ``matrix`` (None
  where undefined), optional ``method``, ``sample_rows``, ``total_rows``
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from html import escape

from core.errors import QuarryError
from core.fmt import human_seconds, significant
from core.profile.scan import ColumnProfile, Profile, column_facts, summary_rows

ACCENT = "#2F6F73"
MUTED = "#B8C4C8"
# Caps that keep the file small whatever the data.
MAX_TABLE_ROWS = 2000  # rows of the column table (every column's one-line summary)
MAX_ALERTS = 500
MAX_FEATURES = 100
MAX_PATTERNS = 50
MAX_PATTERN_NAMES = 20  # column names listed per missing pattern
MAX_CORR_COLUMNS = 60
MAX_MISSING_BARS = 30
MAX_TIME_BARS = 60  # more periods are merged into runs of consecutive periods
MAX_NAME = 200  # characters of a column name
MAX_VALUE = 80  # characters of a value (top values, min/max)
BAR_LABEL = 20  # characters of a bar's label (the tooltip has up to MAX_VALUE)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2b2f;max-width:1120px;
margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:17px;margin:32px 0 10px;padding-bottom:4px;
border-bottom:1px solid #dde4e6}h3{font-size:15px;margin:18px 0 6px;word-break:break-all}.col h3{margin-top:0}
a{color:#2F6F73}nav a{margin-right:14px}.muted{color:#66767b;font-size:13px}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #eef2f3;
text-align:left;vertical-align:top}th{background:#f6f8f8;font-weight:600}td.n{text-align:right;
font-variant-numeric:tabular-nums}.scroll{overflow-x:auto;max-width:100%}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}.card{border:1px solid #dde4e6;border-radius:6px;
padding:6px 12px;min-width:120px}.card b{display:block;font-size:18px}
.col{border:1px solid #dde4e6;border-radius:6px;padding:12px 14px;margin:12px 0}
.col .body{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.kind{font-weight:400;color:#66767b;font-size:13px;margin-left:6px}
figure{margin:0}figcaption{font-size:12px;color:#66767b;max-width:360px}
svg text{font-size:10px;fill:#55656a}.axis{stroke:#9aa8ac;stroke-width:1}
.sev-high{color:#b42318;font-weight:600}.sev-warn{color:#b54708;font-weight:600}.sev-info{color:#2F6F73}
.bar{display:inline-block;height:10px;background:#2F6F73;vertical-align:middle}
.corr td{text-align:center;min-width:38px;font-variant-numeric:tabular-nums}
.corr th{max-width:120px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
"""
# No script, no fetch of any kind: only the inline styles run.
CSP = "default-src 'none'; style-src 'unsafe-inline'"
SEVERITY = {"high": "sev-high", "critical": "sev-high", "error": "sev-high", "warning": "sev-warn",
            "warn": "sev-warn", "medium": "sev-warn"}


def profile_html(profile: Profile, *, dataset: str, alerts: Iterable = (), target: object = None,
                 patterns: object = None, correlations: object = None, max_columns: int = 200) -> str:
    """A profile as one self-contained HTML document of bounded size.

    Parameters
    ----------
    profile
        The profile to report (``core.profile.profile_table``).
    dataset
        The name shown in the title.
    alerts, target, patterns, correlations
        Optional sections, duck-typed (see the module docstring); left out when empty or None.
    max_columns
        Columns that get a detail section (facts and a chart), in table order; the report says how
        many were left out. The one-line column table lists up to ``MAX_TABLE_ROWS`` columns.

    Returns
    -------
    str
        The HTML text: no scripts, no external references; every text from the data is escaped.
    """
    if not isinstance(max_columns, int) or max_columns < 0:
        raise QuarryError(f"max_columns must be an integer >= 0. Got {max_columns!r}.",
                          "Pass how many columns should get a detail section, e.g. 200.")
    alerts = list(alerts or ())
    detailed = min(max_columns, len(profile.columns))
    anchors = {}  # column name -> anchor id, for the columns with a detail section
    for i, c in enumerate(profile.columns[:detailed]):
        anchors.setdefault(c.name, f"col-{i}")

    sections = [("overview", "Overview", _overview(profile, dataset))]
    if alerts:
        sections.append(("alerts", f"Alerts ({len(alerts):,})", _alerts(alerts, anchors)))
    sections.append(("columns", "Columns", _column_table(profile, anchors)))
    missing = _missing_chart(profile)
    if missing:
        sections.append(("missing", "Missing values", missing))
    if target is not None:
        sections.append(("target", "Target analysis", _target(target, anchors)))
    if patterns is not None:
        sections.append(("patterns", "Missing patterns", _patterns(patterns, profile.rows)))
    if correlations is not None:
        sections.append(("correlations", "Correlations", _correlations(correlations)))
    sections.append(("details", "Column details", _details(profile, alerts, detailed)))

    nav = "".join(f'<a href="#{sid}">{escape(title)}</a>' for sid, title, _ in sections if sid != "overview")
    body = "".join(f'<section id="{sid}">' + (f"<h2>{escape(title)}</h2>" if sid != "overview" else "") + html
                   + "</section>" for sid, title, html in sections)
    title = f"Profile of {_clip(dataset, MAX_NAME)}"
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><nav>{nav}</nav></header>{body}"
            f'<footer class="muted"><p>Generated by Quarry on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}. '
            "Aggregates only: this file holds no rows of the data.</p></footer></body></html>\n")


# ----------------------------------------------------------------------------------------------
# Text


def _clip(value: object, limit: int) -> str:
    """The value as text, at most `limit` characters (an ellipsis marks a cut)."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _e(value: object, limit: int = MAX_VALUE) -> str:
    """Clipped and escaped, for element text and attribute values alike."""
    return escape(_clip(value, limit), quote=True)


def _px(x: float) -> str:
    """A coordinate with one decimal at most: '12', '12.5'."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _attr(obj: object, *names: str) -> object:
    """The first of `names` that `obj` has and that is not None."""
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _percent(share: object) -> str:
    """A fraction as a percentage; '<0.1%' rather than '0.0%' for a small share that is not zero."""
    if not isinstance(share, (int, float)) or not math.isfinite(share):
        return ""
    return "<0.1%" if 0 < share < 0.0005 else f"{100 * share:.1f}%"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _column_ref(name: object, anchors: dict[str, str]) -> str:
    """A column name, linked to its detail section when it has one."""
    if name is None or name == "":
        return '<span class="muted">(dataset)</span>'
    anchor = anchors.get(name) if isinstance(name, str) else None
    return f'<a href="#{anchor}">{_e(name, MAX_NAME)}</a>' if anchor else _e(name, MAX_NAME)


# ----------------------------------------------------------------------------------------------
# SVG charts: fixed size, one <title> tooltip per bar


W, H = 360, 150
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 8, 22


def _vbars(bars: Sequence[tuple[int, str]], ticks: Sequence[tuple[float, str]], label: str) -> str:
    """Vertical bars of (height, tooltip); `ticks` are (fraction of the width, text) x-axis labels."""
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    top = max((n for n, _ in bars), default=0) or 1
    bw = pw / max(len(bars), 1)
    gap = 1 if bw > 3 else 0
    rects = []
    for k, (n, tip) in enumerate(bars):
        h = ph * n / top
        if n and h < 1:
            h = 1  # a bar that exists stays visible
        rects.append(f'<rect x="{_px(LEFT + k * bw)}" y="{_px(TOP + ph - h)}" width="{_px(max(bw - gap, 0.5))}" '
                     f'height="{_px(h)}"><title>{_e(tip, 2 * MAX_VALUE)}</title></rect>')
    base = TOP + ph
    labels = [f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{top:,}</text>',
              f'<text x="{LEFT - 4}" y="{base}" text-anchor="end">0</text>',
              f'<text x="10" y="{_px(TOP + ph / 2)}" text-anchor="middle" '
              f'transform="rotate(-90 10 {_px(TOP + ph / 2)})">rows</text>']
    for frac, text in ticks:
        anchor = "start" if frac <= 0 else "end" if frac >= 1 else "middle"
        labels.append(f'<text x="{_px(LEFT + frac * pw)}" y="{base + 14}" text-anchor="{anchor}">'
                      f"{_e(text, 24)}</text>")
    return (f'<svg width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{_e(label, MAX_NAME)}">'
            f'<g fill="{ACCENT}">{"".join(rects)}</g>'
            f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{W - RIGHT}" y2="{base}"/>{"".join(labels)}</svg>')


def _hbars(rows: Sequence[tuple[str, float, str, str, bool]], label: str) -> str:
    """Horizontal bars of (label, value, value text, tooltip, muted), one per line."""
    label_w, text_w, row_h = 132, 62, 18
    bar_w = W - label_w - text_w
    top = max((v for _, v, *_ in rows), default=0) or 1
    parts = []
    for k, (name, value, shown, tip, muted) in enumerate(rows):
        y = 4 + k * row_h
        w = max(bar_w * value / top, 1 if value else 0)
        fill = f' fill="{MUTED}"' if muted else ""
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_e(name, BAR_LABEL)}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{_px(w)}" height="{row_h - 5}"{fill}>'
                     f"<title>{_e(tip, 2 * MAX_VALUE)}</title></rect>"
                     f'<text x="{_px(label_w + w + 4)}" y="{y + 12}">{_e(shown, 24)}</text>')
    h = 8 + row_h * len(rows)
    return (f'<svg width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="{_e(label, MAX_NAME)}">'
            f'<g fill="{ACCENT}">{"".join(parts)}</g></svg>')


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


def histogram_svg(col: ColumnProfile) -> str | None:
    """Bins between the robust bounds; values outside them are counted in the caption."""
    h = col.histogram
    if h is None or not h.counts:
        return None
    pairs = list(zip(h.edges[:-1], h.edges[1:], strict=True))
    unit = all(b - a == 1 and (a + 0.5).is_integer() for a, b in pairs)  # one whole number per bin
    bars = [(n, f"{significant(a + 0.5)}: {n:,} rows" if unit else f"{significant(a)} to {significant(b)}: {n:,} rows")
            for (a, b), n in zip(pairs, h.counts, strict=True)]
    if unit:
        ticks = [(0.5 / len(pairs), significant(h.edges[0] + 0.5)),
                 (1 - 0.5 / len(pairs), significant(h.edges[-1] - 0.5))]
        ticks = ticks[:1] if len(pairs) == 1 else ticks
    else:
        ticks = [(0, significant(h.edges[0])), (0.5, significant(h.edges[len(h.edges) // 2])),
                 (1, significant(h.edges[-1]))]
    outside = []
    if h.below:
        outside.append(f"{h.below:,} below {significant(h.edges[0])}")
    if h.above:
        outside.append(f"{h.above:,} above {significant(h.edges[-1])}")
    caption = "Distribution (rows per bin)" + (f"; not shown: {', '.join(outside)}" if outside else "")
    return _figure(_vbars(bars, ticks, f"Distribution of {col.name}"), escape(caption))


def top_values_svg(col: ColumnProfile) -> str | None:
    """The most frequent values, with the rest as '(other values)'; none when every value is unique."""
    if not col.top or col.top[0][1] <= 1:
        return None
    total = col.count or 1
    rows = []
    for value, n in col.top:
        text = "(empty)" if value == "" else str(value)
        rows.append((text, n, f"{n:,}", f"{_clip(text, MAX_VALUE)}: {n:,} rows ({100 * n / total:.1f}%)", False))
    if col.other:
        rows.append(("(other values)", col.other, f"{col.other:,}",
                     f"other values: {col.other:,} rows ({100 * col.other / total:.1f}%)", True))
    return _figure(_hbars(rows, f"Most frequent values of {col.name}"), "Most frequent values (rows)")


def over_time_svg(col: ColumnProfile) -> str | None:
    """Rows per period; runs of consecutive periods are merged past MAX_TIME_BARS bars."""
    t = col.over_time
    if t is None or not t.counts:
        return None
    size = math.ceil(len(t.counts) / MAX_TIME_BARS)
    groups = [(t.periods[k], t.periods[min(k + size, len(t.periods)) - 1], sum(t.counts[k:k + size]))
              for k in range(0, len(t.counts), size)]
    bars = [(n, f"{a}: {n:,} rows" if a == b else f"{a} to {b}: {n:,} rows") for a, b, n in groups]
    ticks = [(0, groups[0][0]), (1, groups[-1][1])] if len(groups) > 1 else [(0.5, groups[0][0])]
    per = t.unit if size == 1 else f"{size} {t.unit}s"
    return _figure(_vbars(bars, ticks, f"Rows per {per} of {col.name}"), escape(f"Rows per {per}"))


# ----------------------------------------------------------------------------------------------
# Sections


def _overview(p: Profile, dataset: str) -> str:
    cells = p.rows * len(p.columns)
    missing = f"{p.missing_cells:,}" + (f" ({100 * p.missing_cells / cells:.1f}%)" if cells else "")
    dup = f"{p.duplicate_rows:,}" + (f" ({100 * p.duplicate_rows / p.rows:.1f}%)" if p.rows else "")
    cards = [("Dataset", _clip(dataset, 60)), ("Rows", f"{p.rows:,}"), ("Columns", f"{len(p.columns):,}"),
             ("Missing cells", missing), ("Duplicate rows", dup),
             ("Statistics", "exact" if p.exact else "approximate"), ("Profile time", human_seconds(p.seconds))]
    notes = list(p.notes)
    if p.sample_rows is not None:
        notes.insert(0, f"Computed on a sample of {p.sample_rows:,} rows.")
    else:
        notes.insert(0, "Computed over the full data.")
    return ('<div class="cards">' + "".join(f'<div class="card"><span class="muted">{escape(k)}</span>'
                                           f"<b>{escape(v)}</b></div>" for k, v in cards)
            + "</div>" + "".join(f'<p class="muted">{_e(n, 1000)}</p>' for n in notes))


def _severity(value: object) -> tuple[str, str]:
    """(text, CSS class) of a severity, which may be an Enum or text."""
    text = str(getattr(value, "value", value) or "")
    return text, SEVERITY.get(text.lower(), "sev-info")


def _alert_rows(alerts: Sequence, anchors: dict[str, str], with_column: bool) -> str:
    rows = []
    for a in alerts:
        sev, cls = _severity(getattr(a, "severity", None))
        col = f"<td>{_column_ref(getattr(a, 'column', None), anchors)}</td>" if with_column else ""
        rows.append(f'<tr><td class="{cls}">{_e(sev, 40)}</td><td>{_e(getattr(a, "kind", ""), 60)}</td>{col}'
                    f'<td>{_e(getattr(a, "message", ""), 500)}</td></tr>')
    head = "<tr><th>Severity</th><th>Kind</th>" + ("<th>Column</th>" if with_column else "") + "<th>Message</th></tr>"
    return f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'


def _alerts(alerts: list, anchors: dict[str, str]) -> str:
    shown = alerts[:MAX_ALERTS]
    more = len(alerts) - len(shown)
    return _alert_rows(shown, anchors, True) + (f'<p class="muted">{_plural(more, "more alert")} not shown.</p>'
                                                if more else "")


def _column_table(p: Profile, anchors: dict[str, str]) -> str:
    rows = summary_rows(p)
    n = min(len(p.columns), MAX_TABLE_ROWS)
    right = {"missing %", "distinct"}
    head = "".join(f"<th>{escape(k)}</th>" for k in rows)
    lines = []
    for i in range(n):
        cells = [f"<td>{_column_ref(rows['column'][i], anchors)}</td>"]
        cells += [f'<td class="n">{_e(v[i])}</td>' if k in right else f"<td>{_e(v[i])}</td>"
                  for k, v in rows.items() if k != "column"]
        lines.append(f"<tr>{''.join(cells)}</tr>")
    more = len(p.columns) - n
    tail = f'<p class="muted">The first {n:,} of {len(p.columns):,} columns are listed.</p>' if more else ""
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(lines)}</table></div>{tail}'


def _missing_chart(p: Profile) -> str:
    cols = sorted((c for c in p.columns if c.missing), key=lambda c: -c.missing)[:MAX_MISSING_BARS]
    if not cols:
        return ""
    rows = [(c.name, c.missing_pct, f"{c.missing_pct:.1f}%", f"{_clip(c.name, MAX_NAME)}: {c.missing:,} rows "
             f"({c.missing_pct:.1f}%) missing", False) for c in cols]
    with_any = sum(1 for c in p.columns if c.missing)
    caption = (f"Share of rows missing, for the {len(cols)} of {_plural(with_any, 'column')} with any "
               "missing values that miss the most.")
    return _figure(_hbars(rows, "Missing values per column"), escape(caption))


def _target(target: object, anchors: dict[str, str]) -> str:
    name = _attr(target, "target", "column", "name")
    task = _attr(target, "task", "kind")
    features = _attr(target, "features", "ranking")
    if features is None and isinstance(target, Sequence):
        features = target
    features = list(features or ())
    head = ""
    positive = _attr(target, "positive")
    if name is not None:
        head = (f"<p>Target <b>{_column_ref(name, anchors)}</b>" + (f" ({_e(task, 60)})" if task else "")
                + (f"; positive class <b>{_e(positive)}</b>" if positive is not None else "") + "</p>")
    if not features:
        return head + '<p class="muted">No features were ranked.</p>'
    items = []
    for f in features[:MAX_FEATURES]:
        if isinstance(f, tuple):
            feature, metric, score = (list(f) + [None, None, None])[:3]
        else:
            feature, metric, score = getattr(f, "feature", None), getattr(f, "metric", None), getattr(f, "score", None)
        items.append((feature, metric, score))
    finite = [abs(s) for *_, s in items if isinstance(s, (int, float)) and math.isfinite(s)]
    top = max(finite, default=0) or 1
    rows = []
    for rank, (feature, metric, score) in enumerate(items, 1):
        if isinstance(score, (int, float)) and math.isfinite(score):
            shown, bar = f"{score:.4g}", f'<span class="bar" style="width:{_px(120 * abs(score) / top)}px"></span>'
        else:
            shown, bar = ("" if score is None else _clip(score, 24)), ""
        rows.append(f'<tr><td class="n">{rank}</td><td>{_column_ref(feature, anchors)}</td><td>{_e(metric, 60)}</td>'
                    f'<td class="n">{escape(shown)}</td><td>{bar}</td></tr>')
    more = len(features) - len(items)
    notes = _attr(target, "notes", "note")
    notes = [notes] if isinstance(notes, str) else list(notes or ())
    return (head + '<div class="scroll"><table><tr><th>#</th><th>Feature</th><th>Metric</th><th>Score</th><th></th>'
            f'</tr>{"".join(rows)}</table></div>'
            + (f'<p class="muted">{_plural(more, "more feature")} not shown.</p>' if more else "")
            + "".join(f'<p class="muted">{_e(n, 1000)}</p>' for n in notes))


def _patterns(patterns: object, rows: int) -> str:
    items = _attr(patterns, "patterns")
    if items is None and isinstance(patterns, Sequence):
        items = patterns
    items = list(items or ())
    if not items:
        return '<p class="muted">No missing patterns.</p>'
    total = _attr(patterns, "total_rows", "rows")
    total = total if isinstance(total, int) and total > 0 else rows
    lines = []
    for pat in items[:MAX_PATTERNS]:
        if isinstance(pat, tuple):
            cols, count, share = (list(pat) + [None, None, None])[:3]
        else:
            cols, count, share = _attr(pat, "columns", "missing"), _attr(pat, "rows", "count"), _attr(pat, "share")
        cols = [cols] if isinstance(cols, str) else list(cols or ())
        names = ", ".join(_clip(c, 60) for c in cols[:MAX_PATTERN_NAMES])
        if len(cols) > MAX_PATTERN_NAMES:
            names += f" and {len(cols) - MAX_PATTERN_NAMES:,} more"
        if share is None and isinstance(count, int) and total:
            share = count / total
        lines.append(f"<tr><td>{_e(names or '(none missing)', 2000)}</td><td class=\"n\">{len(cols):,}</td>"
                     f'<td class="n">{f"{count:,}" if isinstance(count, int) else _e(count, 24)}</td>'
                     f'<td class="n">{escape(_percent(share))}</td></tr>')
    count = _attr(patterns, "pattern_count")
    more = max(count if isinstance(count, int) else 0, len(items)) - len(lines)
    notes = _attr(patterns, "notes", "note")
    notes = [notes] if isinstance(notes, str) else list(notes or ())
    nullity = ""
    columns, matrix = _attr(patterns, "columns"), _attr(patterns, "matrix")
    if columns and matrix and len(columns) > 1:  # core.missingness: correlation of the missing indicators
        table, dropped = _matrix_table(list(columns), matrix, signed=True)
        nullity = ("<h3>Nullity correlation</h3>" + table + '<p class="muted">How often columns are missing together: '
                   "the correlation of their missing indicators (1: always missing together)."
                   + (f" {_plural(dropped, 'column')} left out." if dropped else "") + "</p>")
    return ('<div class="scroll"><table><tr><th>Columns missing together</th><th>Columns</th><th>Rows</th>'
            f'<th>% of rows</th></tr>{"".join(lines)}</table></div>'
            + (f'<p class="muted">{_plural(more, "more pattern")} not shown.</p>' if more > 0 else "")
            + "".join(f'<p class="muted">{_e(n, 1000)}</p>' for n in notes) + nullity)


METHODS = {"pearson": "Pearson correlation", "spearman": "Spearman rank correlation", "cramers_v": "Cramér's V"}


def _cell_colour(v: float, signed: bool) -> tuple[str, str]:
    """(background, text colour): white to red for +1, to blue for -1; to the accent for Cramér's V."""
    t = min(abs(v), 1.0)
    base = (178, 24, 43) if signed and v >= 0 else (33, 102, 172) if signed else (47, 111, 115)
    background = "#" + "".join(f"{round(255 + (c - 255) * t):02x}" for c in base)
    return background, "#fff" if t > 0.55 else "#1d2b2f"


def _matrix_table(columns: Sequence, matrix: Sequence, signed: bool) -> tuple[str, int]:
    """(a coloured table of a square matrix over its first MAX_CORR_COLUMNS columns, columns left out)."""
    shown = list(columns)[:MAX_CORR_COLUMNS]
    head = "".join(f'<th title="{_e(c, MAX_NAME)}">{_e(c, 16)}</th>' for c in shown)
    lines = []
    for i, name in enumerate(shown):
        cells = []
        for j in range(len(shown)):
            v = matrix[i][j] if i < len(matrix) and j < len(matrix[i]) else None
            if isinstance(v, (int, float)) and math.isfinite(v):
                bg, fg = _cell_colour(v, signed)
                shown = f"{v:.2f}".replace("-0.00", "0.00")
                cells.append(f'<td style="background:{bg};color:{fg}">{shown}</td>')
            else:
                cells.append('<td class="muted">–</td>')
        lines.append(f'<tr><th title="{_e(name, MAX_NAME)}">{_e(name, 24)}</th>{"".join(cells)}</tr>')
    table = f'<div class="scroll"><table class="corr"><tr><th></th>{head}</tr>{"".join(lines)}</table></div>'
    return table, len(columns) - len(shown)


def _correlations(correlations: object) -> str:
    many = correlations if isinstance(correlations, (list, tuple)) else [correlations]
    out = []
    for corr in many:
        method = _attr(corr, "method") or ""
        table, dropped = _matrix_table(list(_attr(corr, "columns") or ()), _attr(corr, "matrix") or (),
                                       signed=method != "cramers_v")
        total, sample = _attr(corr, "total_rows"), _attr(corr, "sample_rows")
        basis = ""
        if isinstance(sample, int) and isinstance(total, int):
            basis = (f"Computed on a random sample of {sample:,} of {total:,} rows." if sample < total
                     else f"Computed on all {total:,} rows.")
        if dropped:
            basis += f" The first {MAX_CORR_COLUMNS} columns are shown; {_plural(dropped, 'column')} left out."
        out.append(f"<h3>{escape(METHODS.get(method, str(method) or 'Correlation'))}</h3>{table}"
                   + (f'<p class="muted">{escape(basis.strip())}</p>' if basis else ""))
    return "".join(out)


def _details(p: Profile, alerts: list, detailed: int) -> str:
    by_column: dict = {}
    for a in alerts[:MAX_ALERTS]:
        column = getattr(a, "column", None)
        if isinstance(column, str):
            by_column.setdefault(column, []).append(a)
    parts = []
    for i, c in enumerate(p.columns[:detailed]):
        facts = "".join(f"<tr><th>{escape(k)}</th><td>{_e(v)}</td></tr>" for k, v in column_facts(c, p.exact))
        charts = [f for f in (histogram_svg(c), top_values_svg(c), over_time_svg(c)) if f]
        if not charts:
            charts = ['<p class="muted">No chart for this column\'s type or values.</p>']
        mine = by_column.get(c.name)
        notes = _alert_rows(mine, {}, False) if mine else ""
        parts.append(f'<div class="col" id="col-{i}"><h3>{_e(c.name, MAX_NAME)}<span class="kind">{_e(c.type, 60)}'
                     f'</span></h3>{notes}<div class="body"><table>{facts}</table>{"".join(charts)}</div></div>')
    left = len(p.columns) - detailed
    if left:
        parts.append(f'<p class="muted">Details are shown for the first {detailed:,} of {len(p.columns):,} columns; '
                     f"{_plural(left, 'column')} left out to keep this report small"
                     + (" (each is in the column table above).</p>" if len(p.columns) <= MAX_TABLE_ROWS else ".</p>"))
    return "".join(parts)
