"""Pages through Streamlit's AppTest: widgets set by key, assertions on exactly what a user sees."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.data import catalog as cat
from core.data import engine
from tests.conftest import REPO, sample_table, write_parquet

APP = str(REPO / "app.py")


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def captions(at: AppTest) -> str:
    return "\n".join(texts(at.caption))


@pytest.fixture
def with_sample(settings, sample):
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), str(sample), name="sample")
    con.close()
    return sample


def test_home_without_data_says_what_to_do(settings):
    at = open_page()
    assert at.title[0].value == "Quarry"
    assert "No dataset yet" in at.info[0].value
    assert "No datasets yet: register one on the Data page." in texts(at.sidebar.caption)


def test_home_shows_the_active_dataset(settings, with_sample):
    at = open_page()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Dataset": "sample", "Rows": "1,000", "Columns": "10", "On disk": metrics["On disk"]}
    assert at.sidebar.selectbox(key="sidebar_dataset").value == "sample"


def test_data_register_preview_filter_sort_page(settings, sample):
    at = open_page("data")
    assert "No dataset yet" in at.info[0].value
    at.text_input(key="data_path").input("sample.parquet").run()
    at.button(key="data_register").click().run()
    assert texts(at.success) == ["Registered 'sample'. It is now the active dataset."]
    assert {m.label: m.value for m in at.metric}["Rows"] == "1,000"
    assert "Rows 1–50 of 1,000 · page 1 of 20" in captions(at)
    # AppTest drops the entrypoint's sidebar after switch_page; the browser test checks the picker itself.
    assert at.session_state["dataset"] == "sample"

    at.text_input(key="data_where").input('"ünïcødé" > 5').run()
    expected = sum(1 for i in range(1000) if (i * 7 + 2) % 13 > 5)
    assert f"Rows 1–50 of {expected:,}" in captions(at)
    at.selectbox(key="data_sort").set_value("id").run()
    at.toggle(key="data_desc").set_value(True).run()
    at.number_input(key="data_page").set_value(2).run()
    frame = at.dataframe[0].value
    ids = [i for i in range(999, -1, -1) if (i * 7 + 2) % 13 > 5]
    assert list(frame["id"]) == ids[50:100]
    assert f"Rows 51–100 of {expected:,} · page 2" in captions(at)
    at.multiselect(key="data_columns").set_value(["select", "has space"]).run()
    assert list(at.dataframe[0].value.columns) == ["select", "has space"]


def test_data_bad_filter_and_bad_files_keep_the_app_working(settings, root, with_sample):
    (root / "bad.parquet").write_text("id,amount\n1,2\n")
    at = open_page("data")
    at.text_input(key="data_where").input("nope > 1").run()
    assert 'Referenced column "nope" not found' in at.error[0].value
    at.text_input(key="data_where").input("").run()
    assert not at.error and "Rows 1–50 of 1,000" in captions(at)

    for path, words in [("bad.parquet", "bad.parquet is not a Parquet file"),
                        ("nowhere.parquet", "No file or folder at nowhere.parquet"),
                        ("/etc/passwd", "/etc/passwd is outside the data roots")]:
        at.text_input(key="data_path").input(path).run()
        at.button(key="data_register").click().run()
        assert not at.exception
        assert words in at.error[0].value, path
        assert "Rows 1–50 of 1,000" in captions(at)  # the page keeps serving the dataset
    assert cat.Catalog(settings).names() == ["sample"]


def test_data_zero_rows_and_schema(settings, root):
    write_parquet(root / "none.parquet", sample_table(5).slice(0, 0))
    at = open_page("data")
    at.text_input(key="data_path").input("none.parquet").run()
    at.button(key="data_register").click().run()
    assert "This dataset has 0 rows" in at.warning[0].value
    assert "No rows match." in captions(at)
    schema = at.dataframe[1].value
    assert list(schema["column"])[:3] == ["id", "amount", "country"]


def test_data_browse_and_remove(settings, root, sample):
    write_parquet(root / "sales" / "year=2024" / "part.parquet", sample_table(4))
    at = open_page("data")
    at.selectbox(key="data_browse").set_value(str(root / "sales")).run()
    at.button(key="data_register_browse").click().run()
    assert texts(at.success) == ["Registered 'sales'. It is now the active dataset."]
    assert any("Partition **year**: 1 values (2024)" in c for c in texts(at.caption))
    at.button(key="data_remove").click().run()
    assert texts(at.success) == ["Removed 'sales' (its files are untouched)."]
    assert (root / "sales" / "year=2024" / "part.parquet").exists()
    assert cat.Catalog(settings).names() == []


def test_active_dataset_comes_from_the_url(settings, root, with_sample):
    write_parquet(root / "small.parquet", sample_table(7))
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), str(root / "small.parquet"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["dataset"] = "small"  # a shared link: ?dataset=small
    at.run()
    picker = at.sidebar.selectbox(key="sidebar_dataset")
    assert (picker.options, picker.value) == (["sample", "small"], "small")
    assert {m.label: m.value for m in at.metric}["Rows"] == "7"
    at.switch_page("pages/data.py").run()
    assert at.subheader[0].value == "small"


def test_sql_run_page_refuse_and_save(settings, with_sample):
    at = open_page("sql")
    assert at.text_area(key="sql_query").value.startswith("SELECT *\nFROM sample")
    at.button(key="sql_run").click().run()
    assert "Rows 1–50 of 1,000 · page 1 of 20" in captions(at)

    at.text_area(key="sql_query").input("SELECT id FROM sample WHERE id % 2 = 0 ORDER BY id").run()
    at.button(key="sql_run").click().run()
    at.number_input(key="sql_page").set_value(3).run()
    assert list(at.dataframe[0].value["id"]) == list(range(200, 300, 2))
    assert "Rows 101–150 of 500 · page 3 of 10" in captions(at)

    at.text_input(key="sql_save_name").input("evens").run()
    at.button(key="sql_save").click().run()
    assert texts(at.success) == ["Saved 500 rows as dataset 'evens'."]
    assert "evens" in cat.Catalog(settings).names()
    assert at.session_state["dataset"] == "evens"

    at.text_area(key="sql_query").input("DROP VIEW sample").run()
    at.button(key="sql_run").click().run()
    assert at.error[0].value == "DROP statements are not allowed here: this one drops objects."
    at.text_area(key="sql_query").input("SELECT * FROM read_text('/etc/passwd')").run()
    at.button(key="sql_run").click().run()
    assert "read_text() reads files directly" in at.error[0].value
    copy = "WITH x AS (COPY (SELECT 1) TO 'victim.parquet' (FORMAT parquet)) SELECT 1"
    at.text_area(key="sql_query").input(copy).run()
    at.button(key="sql_run").click().run()
    assert "copies data to a file" in at.error[0].value


def test_sql_time_limit_is_reported(settings, with_sample, monkeypatch):
    monkeypatch.setenv("QUARRY_SQL_TIME_LIMIT_S", "0.3")
    at = open_page("sql")
    at.text_area(key="sql_query").input("SELECT count(*) FROM range(1000000000000)").run()
    at.button(key="sql_run").click().run()
    assert at.error[0].value == "The query ran longer than the 0.3 s time limit and was stopped."


def test_sql_download_limit_is_explained(settings, with_sample, monkeypatch):
    monkeypatch.setenv("QUARRY_DOWNLOAD_MAX_ROWS", "10")
    at = open_page("sql")
    at.button(key="sql_run").click().run()
    assert "more than the 10-row download limit" in captions(at)


def test_password_gate(settings, with_sample, monkeypatch):
    monkeypatch.setenv("QUARRY_PASSWORD", "s3cret")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.metric and at.text_input(key="auth_password")
    at.text_input(key="auth_password").input("wrong").run()
    assert at.error[0].value == "Wrong password."
    at.text_input(key="auth_password").input("s3cret").run()
    assert {m.label: m.value for m in at.metric}["Rows"] == "1,000"


def test_bad_setting_is_shown_not_crashed(settings, monkeypatch):
    monkeypatch.setenv("QUARRY_MEMORY_LIMIT", "lots")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "QUARRY_MEMORY_LIMIT must be a size" in at.error[0].value
