"""Profile page and `profile` command on small generated data: what a user sees."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.cli.main import main
from core.data import catalog as cat
from core.data import engine
from tests.conftest import REPO, sample_table, write_parquet

APP = str(REPO / "app.py")


@pytest.fixture
def registered(settings, sample):
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), str(sample), name="sample")
    con.close()


def table_with(at: AppTest, column: str):
    """The (last) dataframe on the page that has this column."""
    return next(d.value for d in reversed(at.dataframe) if column in d.value.columns)


def open_profile() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/profile.py").run()
    assert not at.exception, at.exception
    return at


def test_profile_page_runs_on_request_and_shows_columns(settings, registered):
    at = open_profile()
    assert not at.metric  # nothing is computed until asked
    at.button(key="profile_run").click().run()
    metrics = {m.label: m.value for m in at.metric}
    missing = sum(1 for i in range(1000) if i % 17 == 0) + sum(1 for i in range(1000) if i % 11 == 0)
    assert metrics["Rows"] == "1,000" and metrics["Columns"] == "10" and metrics["Duplicate rows"] == "0"
    assert metrics["Missing cells"].startswith(f"{missing:,} (")
    assert "approximate" in " ".join(c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["column"]) == sample_table(1).column_names
    at.text_input(key="profile_search").input("a").run()
    assert set(at.dataframe[0].value["column"]) == {"amount", "has space", "Mixed Case"}


def test_profile_page_column_detail_and_exact_mode(settings, registered):
    at = open_profile()
    at.toggle(key="profile_exact").set_value(True).run()
    at.button(key="profile_run").click().run()
    assert "Exact mode" in " ".join(c.value for c in at.caption)
    at.selectbox(key="profile_column").set_value("country").run()
    t = table_with(at, "statistic")
    facts = dict(zip(t["statistic"], t["value"], strict=True))
    assert facts["Distinct"] == "4" and facts["Missing"] == "91 (9.1%)"
    charts = [e.key for e in at.get("plotly_chart")]
    assert "profile_chart_0" in charts and "profile_chart_1" not in charts  # top values only
    at.selectbox(key="profile_column").set_value("amount").run()
    t = table_with(at, "statistic")
    facts = dict(zip(t["statistic"], t["value"], strict=True))
    assert facts["+Inf"] == "1" and facts["-Inf"] == "1" and "NaN" in facts


def test_profile_page_wide_table_is_paged(settings, root):
    import pyarrow as pa

    wide = pa.table({f"col_{i:04d}": [i, i + 1, None] for i in range(120)})
    write_parquet(root / "wide.parquet", wide)
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), str(root / "wide.parquet"))
    at = open_profile()
    at.button(key="profile_run").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert len(at.dataframe[0].value) == 25
    at.number_input(key="profile_page").set_value(5).run()
    assert list(at.dataframe[0].value["column"]) == [f"col_{i:04d}" for i in range(100, 120)]


def test_profile_cli(capsys, settings, sample):
    assert main(["profile", str(sample), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rows"] == 1000 and [c["name"] for c in doc["columns"]][:2] == ["id", "amount"]
    assert main(["profile", str(sample), "--exact"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sample: 1,000 rows x 10 columns") and "ünïcødé" in out
    assert main(["profile", "missing.parquet"]) == 2
    capsys.readouterr()
    assert main(["datasets", "register", str(sample), "--name", "kept"]) == 0
    assert main(["profile", "kept"]) == 0 and main(["profile", "kept", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["kept"] is True


def test_profiles_are_kept_until_the_files_change(settings, root):
    from core.profile import store as profile_store

    path = write_parquet(root / "t.parquet", sample_table(300))
    con = engine.connect(settings)
    catalog = cat.Catalog(settings)
    d = cat.register(con, catalog, str(path), name="t")
    first, kept = profile_store.load_or_profile(con, d, settings)
    assert not kept and first.rows == 300
    again, kept = profile_store.load_or_profile(con, d, settings)
    assert kept and again.to_json() == first.to_json()  # the same profile, read back from the workspace
    assert again.column("amount").histogram == first.column("amount").histogram
    exact, kept = profile_store.load_or_profile(con, d, settings, exact=True)
    assert not kept and exact.exact  # other options: another profile
    write_parquet(path, sample_table(500))  # the file changes: profiled again
    changed, kept = profile_store.load_or_profile(con, d, settings)
    assert not kept and changed.rows == 500
    stored = profile_store.profile_path(settings, d, False)
    stored.write_text("{ damaged")
    repaired, kept = profile_store.load_or_profile(con, d, settings)
    assert not kept and repaired.rows == 500 and json.loads(stored.read_text())["profile"]["rows"] == 500


def test_profile_page_reopens_a_kept_profile_without_asking(settings, registered):
    at = open_profile()
    at.button(key="profile_run").click().run()
    assert {m.label: m.value for m in at.metric}["Rows"] == "1,000"
    fresh = open_profile()  # another browser session, later
    assert {m.label: m.value for m in fresh.metric}["Rows"] == "1,000"
    assert "reopened from the workspace" in " ".join(c.value for c in fresh.caption)


def test_profile_page_alerts_missing_patterns_and_downloads(settings, registered):
    at = open_profile()
    at.button(key="profile_run").click().run()
    assert not at.exception and not at.error
    alerts = table_with(at, "alert")
    found = set(zip(alerts["alert"], alerts["column"], strict=True))
    assert {("id_like", "id"), ("non_finite", "amount")} <= found
    assert any(t.label == f"Alerts ({len(alerts)})" for t in at.tabs)
    patterns = table_with(at, "missing together")
    together = dict(zip(patterns["missing together"], patterns["rows"], strict=True))
    both = sum(1 for i in range(1000) if i % 11 == 0 and (i % 17 == 0 or i % 29 == 0))  # NaN counts as missing
    assert together["amount, country"] == both
    assert {"profile_download_json", "profile_download_html"} <= {b.key for b in at.get("download_button")}
    at.selectbox(key="profile_column").set_value("id").run()
    assert any("likely an ID" in w.value for w in at.warning)  # the column's alerts sit beside its facts


def test_profile_page_target_ranks_features_and_breaks_the_target_down(settings, registered):
    at = open_profile()
    at.button(key="profile_run").click().run()
    at.selectbox(key="profile_target").set_value("country").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Task: multiclass" in c.value for c in at.caption)
    keys = {e.key for e in at.get("plotly_chart")}
    assert {"profile_target_chart", "profile_breakdown_chart"} <= keys
    at.selectbox(key="profile_target_feature").set_value("amount").run()
    assert not at.exception and not at.error


def test_an_unusable_target_is_explained_and_the_rest_still_shows(settings, registered):
    at = open_profile()
    at.button(key="profile_run").click().run()
    at.selectbox(key="profile_target").set_value("ts").run()
    assert not at.exception
    assert at.error and "ts" in at.error[0].value
    assert {m.label: m.value for m in at.metric}["Rows"] == "1,000" and table_with(at, "alert") is not None


def test_cancel_keeps_nothing(settings, registered):
    from core.profile import store as profile_store

    con = engine.connect(settings)
    catalog = cat.Catalog(settings)
    cat.sync_views(con, catalog.list())
    d = catalog.get("sample")

    def cancel(done, total, ready):
        raise KeyboardInterrupt  # what Streamlit's rerun does to the running script at its next progress update

    with pytest.raises(KeyboardInterrupt):
        profile_store.load_or_profile(con, d, settings, progress=cancel, refresh=True)
    assert profile_store.load_or_profile(con, d, settings, compute=False) == (None, False)
    assert not list(settings.workspace.glob("profiles/*"))  # not even a partial file
    at = open_profile()
    at.session_state["profile_cancelled"] = True  # what the Cancel button's callback sets
    at.run()
    assert any("cancelled" in w.value for w in at.warning) and not at.metric
    at.run()
    assert not at.warning  # said once
