"""Hostile names: user text shown through Streamlit's Markdown (and Plotly's HTML subset) shows as written.

A dataset whose column names, category values, target, run name and tags are Markdown, HTML and
Streamlit syntax (images that would fetch a beacon, links, raw HTML, colours, icons, emoji, maths)
is registered, trained on, and every page is opened on it. Every string Streamlit renders as Markdown
(bodies, captions, alerts, headings, toasts, labels, help texts, table cells) is rendered with a
CommonMark renderer: no image, link or HTML may come out, and no hostile name may stand unescaped in it.
core.fmt.md, the one escaping function, is checked on its own against the same renderer.
"""
from __future__ import annotations

import html
import json
import re

import numpy as np
import pyarrow as pa
import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from core import jobs
from core.data import catalog as cat
from core.data import engine
from core.fmt import chart_text, md
from core.model import runs
from tests.conftest import REPO, until, write_parquet

APP = str(REPO / "app.py")
BEACON = "http://127.0.0.1:9999"
DATASET = "__hostile__"  # catalog.NAME_RE allows letters, digits and _ only: still strong emphasis in Markdown
IMG_COL = f"a` ![x]({BEACON}/beacon.png) `b"
CAT_COL = "**bold** <img src=x onerror=alert(1)> :red[x] :material/home: [link](http://evil)"
NUM_COL = "1. _it_ ~~s~~ $x$ :smile: <b>t</b> | www.evil.com"
TARGET = f"# y :red[t] ![t]({BEACON}/t.png)"
CAT_VALUES = ["<img src=v onerror=alert(2)>", "[v](http://evil) :red[v] **v**", f"![v]({BEACON}/v.png)"]
RUN_NAME = f"run ![r]({BEACON}/r.png) :red[r] <i>r</i>"
RUN_TAGS = ["**t**", "<img src=y>"]
NEW_COL = f"renamed ![y]({BEACON}/y.png)"
MISSING_COL = f"nope ![q]({BEACON}/q.png)"
HOSTILE = [DATASET, IMG_COL, CAT_COL, NUM_COL, TARGET, *CAT_VALUES, RUN_NAME, *RUN_TAGS, NEW_COL, MISSING_COL]
# Streamlit syntax that the renderer below does not know: it must not stand in Markdown text (code spans are literal)
STREAMLIT_SYNTAX = (":red[", ":smile:", "$x$")
SUBMIT = "FormSubmitter:train_form-Start training"

RENDER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)")
TEMPLATE_TAGS = {"p", "strong", "code"}  # what the pages' own Markdown makes
PLAIN = {"text", "code", "json", "exception", "arrow_data_frame", "dataframe", "plotly_chart", "empty", "space",
         "divider"}  # elements whose text Streamlit does not render as Markdown (or that the test treats apart)


# ----------------------------------------------------------------------------------------------
# The escaping function on its own

NASTY = [
    IMG_COL, CAT_COL, NUM_COL, TARGET, *CAT_VALUES, RUN_NAME, DATASET, "user_id", "snake_case_name", "a_", "_a",
    "é_é", "1. one", "1) one", "2024.5", "# h", "## h ##", "item #3", "- item", "+ item", "* item", "> quote",
    "=", "===", "---", "- - -", "***", "___", "    indented code", "\tindented", "trailing  ", " ", "", "a\\",
    "\\", "\\*", "`", "``x``", "a ``` b", "|a|b|", "a | b", "www.evil.com", "WWW.EVIL.COM", "a@b.com",
    "mailto:a@b.com", "http://x.y", "<http://x.y>", "&amp; &lt; &#60;", "[^1]", "[ ] task", "$x$", "$$x$$",
    "~~s~~", "~s~", ":smile:", ":+1:", "12:30:45", ":material/home:", ":streamlit:", ":red[x]", ":help[h]",
    "a:red", "x{y}", "(a)", "f(x) = [1]", "a -> b", "a <- b", "a <-> b", "a -- b", "a >= b", "a <= b", "a ~= b",
    "<script>alert(1)</script>", "<!-- c -->", "<a href='x'>y</a>", "ünïcødé", "quo\"te", "it's", "50%", "%{x}",
]


def rendered_text(source: str, tags: frozenset[str] = frozenset({"p"})) -> str:
    """What a reader sees of Markdown `source` (making no tags but `tags`): rendered, tags dropped, entities decoded."""
    out = RENDER.render(source)
    assert not {name for _, name in TAG.findall(out)} - tags, (source, out)
    return html.unescape(re.sub(r"<[^>]+>", "", out)).removesuffix("\n")


@pytest.mark.parametrize("text", NASTY)
def test_md_renders_as_exactly_the_text(text):
    assert rendered_text(md(text)).replace("\u2060", "") == text


@pytest.mark.parametrize("text", [t for t in NASTY if t.strip()])
@pytest.mark.parametrize("where", ["**{}**", "{} after", "before {}", "- {}", "1. {}", "# {}", "x\n{}", "{}\n\nx"])
def test_md_in_a_template_makes_no_element_of_its_own(text, where):
    """Wherever a page puts it (bold, a list item, a heading, a line of its own), md(text) adds no element."""
    out = RENDER.render(where.format(md(text)))
    assert TAG.findall(out) == TAG.findall(RENDER.render(where.format("word"))), (text, where, out)
    assert html.unescape(re.sub(r"<[^>]+>", "", out)).replace("\u2060", "").count(text) == 1, (text, where, out)


@pytest.mark.parametrize("text", NASTY)
def test_md_as_code_renders_as_exactly_the_text(text):
    out = RENDER.render(md(text, code=True))
    got = html.unescape(re.sub(r"<[^>]+>", "", out)).removesuffix("\n").replace("\u2060", "")
    assert got == text
    if text.strip():
        assert out.startswith("<p><code>") and out.count("<code>") == 1


@pytest.mark.parametrize("text", NASTY)
def test_md_leaves_nothing_for_streamlits_own_plugins(text):
    """Streamlit's plugins run on the parsed text (escapes resolved) or on the raw source; neither sees a trigger."""
    source, shown = md(text), rendered_text(md(text))
    assert ":material/" not in source and ":streamlit:" not in shown  # raw-source rewrite; the logo
    assert not re.search(r":[\w+-]+:", shown)  # emoji shortcodes (remark-emoji), icons
    assert not re.search(r"(?<!\\):[A-Za-z]", source)  # a directive: :red[..], :help, :small
    assert not re.search(r"(^|\s)(<->|->|<-|--|>=|<=|~=)(\s|$)", shown)  # typographic arrows
    assert not re.search(r"(?i)(?<!\\)www\.|(?<!\\)://|(?<!\\)@", source)  # GFM autolink literals
    assert not re.search(r"(?<!\\)[$~|`*\[\]<&]", source.replace("&#32;", "").replace("&#9;", ""))


def test_md_keeps_everyday_text_readable():
    for text in ("sample", "user_id", "has space", "Got 1 (expected 2).", "12:30", "a-b", "/etc/passwd", "x = 3"):
        assert md(text) == text or md(text) == "\\" + text


def test_chart_text_is_plain_in_plotly_labels():
    assert chart_text("<b>x</b> & %{y}") == "&lt;b&gt;x&lt;/b&gt; &amp; %\u2060{y}"


# ----------------------------------------------------------------------------------------------
# Every page, on a hostile dataset and run


def hostile_table(rows: int = 2000) -> pa.Table:
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(size=rows), rng.uniform(0, 10, size=rows)
    cat_ = rng.choice(CAT_VALUES, size=rows)
    logit = 1.5 * x1 - 0.3 * x2 + 1.0 * (cat_ == CAT_VALUES[0]) + 1.0
    y = rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))
    return pa.table({IMG_COL: x1, CAT_COL: cat_.tolist(), NUM_COL: x2, TARGET: pa.array(y.tolist(), pa.bool_())})


def open_page(page: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def markdown_sources(at: AppTest) -> list[tuple[str, str]]:
    """(where, source) of every string on the page that Streamlit renders as Markdown."""
    found = []
    for root in (at.main, at.sidebar):
        for node in root:
            kind, proto = node.type, node.proto
            if kind in PLAIN or proto is None:
                continue
            if kind == "table":
                frame = node.value
                found += [(kind, str(v)) for v in [*frame.columns, *frame.to_numpy().ravel()]]
                continue
            for field in ("body", "label", "help", "delta", "text"):
                if field in proto.DESCRIPTOR.fields_by_name and isinstance(getattr(proto, field), str):
                    found.append((f"{kind}.{field}", getattr(proto, field)))
    return [(where, text) for where, text in found if text]


def chart_strings(at: AppTest) -> list[str]:
    """Every string in every Plotly figure on the page (titles, ticks, legends, hover and data labels)."""
    out = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                if k != "template":
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for chart in at.get("plotly_chart"):
        walk(json.loads(chart.proto.spec))
    return out


def assert_safe(at: AppTest, page: str) -> int:
    """No image, link or HTML from a hostile name on the page, in Markdown or in a chart; how many were checked."""
    sources = markdown_sources(at)
    for where, source in sources:
        out = RENDER.render(source)
        made = {name.lower() for _, name in TAG.findall(out)}
        assert made <= TEMPLATE_TAGS, (page, where, source, out)
        outside_code = source
        for name in HOSTILE:  # a name in inline code is shown as written: md(name, code=True) is that span
            outside_code = outside_code.replace(md(name, code=True), "")
        for name in HOSTILE:  # shown escaped, or not at all (md(name) may hold the name after a first backslash)
            assert md(name) == name or name not in outside_code.replace(md(name), ""), (page, where, name, source)
        assert ":material/" not in source, (page, where, source)  # rewritten before parsing, code spans too
        for syntax in STREAMLIT_SYNTAX:
            assert syntax not in outside_code, (page, where, source)
    for text in chart_strings(at):
        assert not re.search(r"<(?!br>|/?extra>)", text), (page, text)
    return len(sources)


@pytest.fixture
def hostile(settings, root):
    path = write_parquet(root / "hostile.parquet", hostile_table())
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), str(path), name=DATASET)
    con.close()
    yield
    for job in jobs.list_jobs(settings):
        if job.state == "running":
            jobs.cancel(settings, job.job_id)


def test_every_page_shows_hostile_names_as_text(settings, hostile):
    checked = {}

    at = open_page()
    checked["home"] = assert_safe(at, "home")
    at = open_page("data")
    checked["data"] = assert_safe(at, "data")

    at = open_page("sql")
    checked["sql"] = assert_safe(at, "sql")
    tables = next(m.value for m in at.markdown if m.value.startswith(f"**{md(DATASET)}**"))
    shown = rendered_text(tables, frozenset(TEMPLATE_TAGS))
    assert DATASET in shown and IMG_COL in shown.replace("\u2060", "") and CAT_COL in shown.replace("\u2060", "")
    at.text_area(key="sql_query").input(f'SELECT "{MISSING_COL}" FROM {DATASET}').run()
    at.button(key="sql_run").click().run()
    assert at.error, "the query names a column that is not there"
    checked["sql error"] = assert_safe(at, "sql error")

    at = open_page("profile")
    at.button(key="profile_run").click().run()
    at.selectbox(key="profile_target").set_value(TARGET).run()
    at.selectbox(key="profile_column").set_value(CAT_COL).run()
    assert not at.exception, at.exception
    checked["profile"] = assert_safe(at, "profile")
    assert chart_text(CAT_VALUES[0]) in chart_strings(at)  # the column's top values, as text

    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["features_steps"] = [{"kind": "rename", "params": {"column": IMG_COL, "to": NEW_COL}, "name": ""},
                                          {"kind": "drop", "params": {"columns": [NUM_COL]}, "name": ""}]
    at.run()
    at.switch_page("pages/features.py").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    checked["features"] = assert_safe(at, "features")

    at = open_page("train")
    at.text_area(key="train_params").set_value(f"num_leaves=![p]({BEACON}/p.png)")
    at.selectbox(key="train_target").set_value(TARGET)
    at.button(key=SUBMIT).click().run()
    assert at.error, "the extra parameter is not a number"
    checked["train error"] = assert_safe(at, "train error")
    at.text_area(key="train_params").set_value("")
    at.selectbox(key="train_target").set_value(TARGET)
    at.number_input(key="train_rounds").set_value(20)
    at.number_input(key="train_early").set_value(0)
    at.text_input(key="train_name").set_value(RUN_NAME)
    at.button(key=SUBMIT).click().run()
    job_id = at.session_state["train_job"]
    job = until(lambda: (j := jobs.get(settings, job_id)).state != "running" and j, timeout=240)
    assert job.state == "done", job.error
    at = open_page("train", job=job_id)
    checked["train"] = assert_safe(at, "train")
    run_id = job.result["run_id"]
    runs.tag_run(settings, run_id, add=RUN_TAGS)

    at = open_page("runs", run=run_id)
    checked["runs"] = assert_safe(at, "runs")
    at = open_page("evaluate", run=run_id)
    at.selectbox(key="eval_slice_column").set_value(CAT_COL).run()
    at.selectbox(key="eval_fair_column").set_value(CAT_COL).run()
    assert not at.exception, at.exception
    checked["evaluate"] = assert_safe(at, "evaluate")
    assert chart_text(CAT_VALUES[0]) in chart_strings(at)  # the slices by the hostile column, as text
    at = open_page("explain", run=run_id)
    at.button(key="expl_go").click().run()
    at.selectbox(key="expl_dep_feature").set_value(CAT_COL).run()
    at.selectbox(key="expl_pdp_feature").set_value(CAT_COL).run()
    assert not at.exception, at.exception
    checked["explain"] = assert_safe(at, "explain")
    at = open_page("score", run=run_id)
    at.button(key="score_go").click().run()
    assert at.success, [e.value for e in at.error]
    checked["score"] = assert_safe(at, "score")

    assert all(checked.values()), checked  # every page had Markdown to check
