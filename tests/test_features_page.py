"""Features page and `features` commands on small generated data: what a user sees and gets."""
from __future__ import annotations

import json

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from core.cli.main import main
from core.data import catalog as cat
from core.data import engine
from core.features import store as recipe_store
from core.fmt import md
from tests.conftest import REPO

APP = str(REPO / "app.py")
SUBMIT = "FormSubmitter:features_form_{kind}_{editing}-{label}"


@pytest.fixture
def registered(settings, sample):
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), str(sample), name="sample")
    con.close()


def open_features() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/features.py").run()
    assert not at.exception, at.exception
    return at


def add_step(at: AppTest, kind: str, **values) -> AppTest:
    at.selectbox(key="features_kind_None").set_value(kind).run()
    for name, value in values.items():
        key = f"features_{kind}_{name}"
        widget = next(w for w in (*at.multiselect, *at.selectbox, *at.text_input, *at.text_area, *at.checkbox)
                      if w.key == key)
        widget.set_value(value)
    at.button(key=SUBMIT.format(kind=kind, editing=None, label="Add step")).click().run()
    assert not at.exception, at.exception
    return at


def titles(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**") and ". " in m.value[:8]]


def test_add_steps_preview_and_sql(settings, registered):
    at = open_features()
    add_step(at, "impute", columns=["amount"], strategy="median", indicator=True)
    add_step(at, "arithmetic", left="amount", op="ratio", right="id", name="per_id")
    assert not at.error, [e.value for e in at.error]
    assert [t.split(" — ")[0] for t in titles(at)] == ["**1. Fill missing values**", "**2. Combine two columns**"]
    assert "amount → " in titles(at)[0] and "(the median of the training rows)" in titles(at)[0]
    summary = next(d.value for d in at.dataframe if "what" in d.value.columns)
    assert dict(zip(summary["column"], summary["what"], strict=True)) == {
        "amount": "input of a step", "id": "input of a step", "amount_was_missing": "new", "per_id": "new"}
    assert summary.set_index("column").loc["amount", "missing"] == 0  # filled
    whole = at.code[-1].value
    assert whole.startswith('WITH s0 AS (SELECT * FROM "sample")') and "nullif" in whole and "$p" not in whole
    assert any("1,000 rows in → 1,000 rows out" in c.value for c in at.caption)


def test_reorder_edit_and_remove(settings, registered):
    at = open_features()
    add_step(at, "impute", columns=["amount"], strategy="mean")
    add_step(at, "drop", columns=["amount"])
    at.button(key="features_up_1").click().run()  # drop before impute: impute's column is gone
    assert at.error and "Step 2" in at.error[0].value and "'amount'" in at.error[0].value
    at.button(key="features_down_0").click().run()
    assert not at.error
    at.button(key="features_edit_0").click().run()
    at.selectbox(key="features_impute_strategy").set_value("constant")
    at.text_input(key="features_impute_value").set_value("0")
    at.button(key=SUBMIT.format(kind="impute", editing=0, label="Update step")).click().run()
    assert "amount → 0" in titles(at)[0]
    at.button(key="features_remove_1").click().run()
    assert len(titles(at)) == 1


def test_save_load_and_write_a_dataset(settings, registered):
    at = open_features()
    add_step(at, "expression", name="double", expression="amount * 2")
    at.text_input(key="features_save_name").set_value("doubling")
    at.button(key="features_save").click().run()
    assert recipe_store.names(settings) == ["doubling"]
    fresh = open_features()  # another session
    fresh.selectbox(key="features_load_name").set_value("doubling").run()
    fresh.button(key="features_load").click().run()
    assert titles(fresh) and md("double = amount * 2") in titles(fresh)[0]  # the SQL shown as text, * escaped
    fresh.text_input(key="features_out_name").set_value("sample_doubled")
    fresh.button(key="features_write").click().run()
    assert not fresh.error and fresh.success, [e.value for e in fresh.error]
    con = engine.connect(settings)
    cat.sync_views(con, cat.Catalog(settings).list())
    got = con.sql("SELECT count(*), sum(double) = 2 * sum(amount) FILTER (WHERE isfinite(amount)) "
                  "FROM sample_doubled WHERE isfinite(double)").fetchall()[0]
    assert got == (1000 - sum(1 for i in range(1000) if i % 17 == 0 or (i % 29 == 0) or i in (1, 2)), True)


def test_features_cli_show_fit_apply(capsys, settings, sample, root, tmp_path):
    recipe_file = root / "r.json"
    recipe_file.write_text(json.dumps({"format": "quarry.recipe", "version": 1, "name": "r", "steps": [
        {"kind": "impute", "params": {"columns": ["amount"], "strategy": "mean"}},
        {"kind": "filter", "params": {"column": "country", "op": "=", "value": "DE"}}]}))
    assert main(["datasets", "register", str(sample), "--name", "s"]) == 0
    assert main(["features", "show", str(recipe_file), "--dataset", "s"]) == 0
    out = capsys.readouterr().out
    assert "Step 1 (impute): fill missing values: amount" in out and "WHERE \"country\" = 'DE'" in out
    assert main(["features", "fit", str(recipe_file), "s", "--where", "id < 500", "--save", "half"]) == 0
    kept = recipe_store.load(settings, "half")
    assert kept.fitted and kept.fitted_on == {"dataset": "s", "where": "id < 500"}
    out_file = tmp_path / "out.parquet"  # outside the data roots: streamed from Python
    assert main(["features", "apply", "half", "s", "--out", str(out_file), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out.splitlines()[-1])
    de = duckdb.sql(f"SELECT count(*) FROM '{sample}' WHERE country = 'DE'").fetchall()[0][0]
    assert doc["rows"] == de == duckdb.sql(f"SELECT count(*) FROM '{out_file}'").fetchall()[0][0]
    mean = duckdb.sql(f"SELECT avg(amount) FROM '{sample}' WHERE id < 500 AND isfinite(amount)").fetchall()[0][0]
    filled = duckdb.sql(f"SELECT DISTINCT amount FROM '{out_file}' WHERE id % 17 = 0").fetchall()
    assert filled == [(pytest.approx(mean),)]  # fitted on the first half, applied to all
    bad = root / "bad.json"
    bad.write_text('{"format": "quarry.recipe", "version": 1, "steps": [{"kind": "nope", "params": {}}]}')
    assert main(["features", "show", str(bad), "--dataset", "s"]) == 2
    assert "no compile rule for step kind 'nope'" in capsys.readouterr().err
    assert main(["features", "fit", str(recipe_file), "s", "--where", "1; DROP TABLE x"]) == 2
    assert "the expression does not parse" in capsys.readouterr().err
