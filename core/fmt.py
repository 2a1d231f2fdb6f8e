"""Values for people and for JSON: sizes and durations as printed, results as JSON documents, user text made
safe to show in Markdown (md) and in Plotly labels (chart_text)."""
from __future__ import annotations

import html
import math
import re
import string
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path


def jsonable(value: object) -> object:
    """A JSON-ready copy: times as ISO text, decimals as floats, NaN and +-Inf as null (JSON has no
    spelling for them), tuples as lists, keys as text, bytes as hex; anything else as its text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def significant(value: float) -> str:
    """A number to 4 significant digits, without exponents for everyday magnitudes: 1,025,000 not 1.025e+06."""
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e15 or abs(value) < 1e-4):
        return f"{value:.4g}"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:,.4g}"


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KB' (powers of 1024)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


def human_seconds(s: float) -> str:
    """0.0123 -> '12 ms', 3.2 -> '3.2 s', 125 -> '2 min 5 s'."""
    if s < 1:
        return f"{s * 1000:,.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {int(s % 60)} s"


# ----------------------------------------------------------------------------------------------
# User text in what Streamlit renders as Markdown, and in Plotly's labels (a subset of HTML)

_WORD_JOINER = "\u2060"  # invisible, neither \w nor \s: splits ':name:' and '->' for Streamlit's text plugins
_ALWAYS = frozenset("\\`*[]<~$|&@#")  # can start or end a construct anywhere in a line
_PUNCTUATION = frozenset(string.punctuation)
_SHORTCODE = re.compile(r":(?=[\w+-]+:|material/)")
_SYMBOL = re.compile(r"<->|->|<-|--|>=|<=|~=")
_LINE_END = re.compile(r"\r\n|\r|\n")
_LIST_MARKER = re.compile(r"\d+[.)]")
_WWW = re.compile(r"www\.", re.IGNORECASE)
_EDGE_SPACE = {" ": "&#32;", "\t": "&#9;"}


def md(text: object, *, code: bool = False) -> str:
    r"""User text (a name, a value, a path, a message) for anything Streamlit renders as Markdown: it shows as
    written, on one line, never as a link, image, HTML, emphasis, heading, list, table, maths, colour, emoji or icon.

    Streamlit renders Markdown in st.markdown, st.caption, alerts, headings, st.toast, st.table cells, metric
    labels and values, progress texts and every label and help text (buttons, widgets, expanders, tabs, page
    links); st.dataframe cells, st.code and selectbox options are plain. User text goes into the former only
    through this function, which backslash-escapes (CommonMark: an escaped ASCII punctuation character is
    literal text) the characters that can start or end a construct where they stand:

    - everywhere: ``\ ` * [ ] < ~ $ | & @ #`` -- code spans, emphasis, links and images, raw HTML and
      autolinks, strikethrough, maths, table cells, entities, e-mail autolinks, heading closers;
    - ``_`` unless it stands between two letters or digits (``user_id``: there it cannot open or close emphasis);
    - ``:`` before a letter (``:red[...]``, ``:help``: Streamlit's directives), a ``/`` (``http://``) or at the end;
    - ``!`` at the end (an image is ``![``; ``[`` is always escaped);
    - the first character if it is ASCII punctuation, the ``.`` or ``)`` of a leading ``1.``/``1)``, and the
      dot of ``www.``: ``- + = # > 1.`` only mean something at the start of a line, ``(`` after a ``]``, and
      GFM links bare ``www.`` addresses. ``( ) { } > + - = !`` elsewhere are left as they are: nothing they
      could belong to can start once the above are escaped;
    - line breaks become spaces (a new line could start a heading, a list or a table row); leading and trailing
      spaces and tabs become character references (four would start a code block, two at the end a line break,
      and Markdown would drop them);
    - Streamlit's plugins also work on the text after parsing, where escapes are gone: a word joiner (U+2060,
      invisible) goes after a colon that starts ``:name:`` or ``:material/`` (emoji, icons, the logo) and inside
      ``->``, ``<-``, ``<->``, ``--``, ``>=``, ``<=``, ``~=`` (typographic arrows).

    With ``code=True`` the text is shown as inline code instead, which is literal: line breaks become spaces and
    it is fenced by one more backtick than its longest run of backticks, padded by a space on each side
    (CommonMark strips exactly one), so nothing inside ends the span early.
    """
    s = _LINE_END.sub(" ", str(text))
    if code and s.strip():
        s = s.replace(":material/", ":" + _WORD_JOINER + "material/")  # Streamlit rewrites that before parsing
        fence = "`" * (max(map(len, re.findall("`+", s)), default=0) + 1)
        return f"{fence} {s} {fence}"
    s = _SYMBOL.sub(lambda m: m[0][0] + _WORD_JOINER + m[0][1:], _SHORTCODE.sub(":" + _WORD_JOINER, s))
    body = s.strip(" \t")
    lead = s[:len(s) - len(s.lstrip(" \t"))]
    trail = s[len(s.rstrip(" \t")):] if body else ""
    marked = {m.end() - 1 for m in _WWW.finditer(body)}
    if marker := _LIST_MARKER.match(body):
        marked.add(marker.end() - 1)
    out = [_EDGE_SPACE[ch] for ch in lead]
    last = len(body) - 1
    for i, ch in enumerate(body):
        after = body[i + 1] if i < last else ""
        if (ch in _ALWAYS or i in marked or (i == 0 and ch in _PUNCTUATION)
                or (ch == "_" and not (0 < i < last and body[i - 1].isalnum() and after.isalnum()))
                or (ch == ":" and (not after or after == "/" or after.isascii() and after.isalpha()))
                or (ch == "!" and not after)):
            out.append("\\")
        out.append(ch)
    out.extend(_EDGE_SPACE[ch] for ch in trail)
    return "".join(out)


def chart_text(text: object) -> str:
    """User text for a Plotly title, axis title, tick, legend or hover label: Plotly renders a subset of HTML
    there (<a href>, <b>, <span style>), so & < > are written as entities and show as themselves; a word joiner
    splits ``%{`` so that text put into a hover template is not read as a placeholder."""
    return html.escape(str(text), quote=False).replace("%{", "%" + _WORD_JOINER + "{")


def shown(value: object, most: int = 40) -> str:
    """A value for a message: its repr, cut short (an id typed into a URL may be a megabyte long)."""
    text = repr(value)
    return text if len(text) <= most else text[:most] + "…"
