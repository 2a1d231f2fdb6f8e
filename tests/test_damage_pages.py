"""Pages when the workspace is damaged: a catalog.json Quarry cannot use, a dataset whose files are gone.

Each is a clear message on the page concerned (never Streamlit's error box), and the rest keeps working.
"""
from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from core.data import catalog as cat
from core.data import engine
from tests.conftest import REPO, sample_table, write_parquet
from tests.eval_support import make_run

APP = str(REPO / "app.py")
PAGES = ["home", "data", "profile", "features", "train", "runs", "evaluate", "explain", "score", "sql"]
GONE = "The files of dataset 'gone' are gone: No file or folder at {path}"


def plain(text: str) -> str:
    """Text as a person reads it: pages escape Markdown in names and paths (core.fmt.md)."""
    return re.sub(r"\\(.)", r"\1", text).replace("\u2060", "")


def errors(at: AppTest) -> list[str]:
    return [plain(e.value) for e in at.main.error]


def opened(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, (page, at.exception)
    return at


@pytest.mark.parametrize(("damage", "words"), [
    ("folder", "is a folder, not a file."),
    ("cut short", "is damaged (not valid JSON: "),
    ("a list", "is damaged (it holds a list, not an object with a 'datasets' list)."),
])
def test_a_damaged_catalog_is_said_in_the_sidebar_and_on_every_page(settings, damage, words):
    settings.workspace.mkdir(parents=True, exist_ok=True)
    path = settings.workspace / "catalog.json"
    content = {"folder": None, "cut short": b'{"version": 1, "datasets": [{"na', "a list": b"[]"}[damage]
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    expected = f"The catalog file {path} {words}"
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert plain(at.sidebar.error[0].value).startswith(expected)
    assert "Quarry has not changed it" in plain("\n".join(c.value for c in at.sidebar.caption))
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        assert any(e.startswith(expected) for e in errors(at)), (page, errors(at))
    assert path.is_dir() if content is None else path.read_bytes() == content


@pytest.fixture
def gone(settings, root, sample):
    """Two datasets: 'sample', healthy, and 'gone', whose file was deleted after it was registered."""
    path = write_parquet(root / "gone.parquet", sample_table(5))
    con = engine.connect(settings)
    catalog = cat.Catalog(settings)
    cat.register(con, catalog, str(sample), name="sample")
    cat.register(con, catalog, str(path), name="gone")
    con.close()
    path.unlink()
    return path


@pytest.mark.parametrize("page", ["home", "data", "profile", "features", "train"])
def test_a_dataset_whose_files_are_gone_is_said_on_its_pages(settings, gone, page):
    at = opened(page, dataset="gone")
    assert any(e.startswith(GONE.format(path=gone)) for e in errors(at)), errors(at)


def test_the_data_page_removes_a_dataset_whose_files_are_gone(settings, gone):
    at = opened("data", dataset="gone")
    at.button(key="data_remove").click().run()
    assert [s.value for s in at.success] == ["Removed 'gone' (its files are untouched)."]
    assert cat.Catalog(settings).names() == ["sample"]


@pytest.mark.parametrize(("page", "shows"), [
    ("home", lambda at: {m.label: m.value for m in at.metric}["Rows"] == "1,000"),
    ("data", lambda at: {m.label: m.value for m in at.metric}["Rows"] == "1,000"),
    ("profile", lambda at: at.markdown[0].value == "**sample** · 1,000 rows × 10 columns"),
    ("features", lambda at: at.selectbox(key="features_kind_None").options),
    ("train", lambda at: "ts" in at.selectbox(key="train_target").options),
    ("runs", lambda at: True),
    ("evaluate", lambda at: True),
    ("explain", lambda at: True),
])
def test_every_other_page_keeps_working_with_a_healthy_dataset(settings, gone, page, shows):
    at = opened(page, dataset="sample")
    assert errors(at) == []
    assert shows(at)


def test_the_sql_page_lists_a_broken_dataset_as_unavailable_and_queries_the_others(settings, gone):
    for active in ("sample", "gone"):
        at = opened("sql", dataset=active)
        assert errors(at) == []
        tables = [m.value for m in at.markdown]
        assert "**gone** — unavailable" in tables
        assert any(t.startswith("**sample** — ") and "bigint" in t for t in tables)
        assert any(plain(c.value).startswith(GONE.format(path=gone)) for c in at.caption)
    at.text_area(key="sql_query").input("SELECT * FROM sample").run()
    at.button(key="sql_run").click().run()
    assert "Rows 1–50 of 1,000 · page 1 of 20" in "\n".join(c.value for c in at.caption)
    at.text_area(key="sql_query").input("SELECT * FROM gone").run()
    at.button(key="sql_run").click().run()
    assert not at.exception and errors(at)  # said, not crashed


def test_the_score_page_says_a_dataset_is_gone_and_scores_the_others(settings, root, gone):
    run = make_run(settings, root, "binary", rows=600, rounds=5)
    at = opened("score", dataset="gone", run=run.run_id)
    assert any(e.startswith(GONE.format(path=gone)) for e in errors(at)), errors(at)
    at.selectbox(key="score_dataset").set_value("binary").run()
    assert not at.exception and errors(at) == []
    assert any(plain(c.value).startswith("600 rows of binary") for c in at.caption)
