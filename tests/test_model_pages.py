"""Evaluate and Explain pages with AppTest on real runs: metrics, the threshold slider and suggestions, slices,
the SHAP sample and its cache, the row pickers and the what-if panel."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.data import catalog as cat
from core.data import engine
from core.evaluate import metrics as evaluate
from core.evaluate import thresholds
from core.explain import local
from core.explain import shap as explain
from core.features import recipe as R
from core.features import store as recipe_store
from tests.eval_support import make_run, scored
from tests.test_train_page import open_page


def chart_keys(at: AppTest) -> set[str]:
    return {c.key for c in at.get("plotly_chart")}


def chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def frame(at: AppTest, column: str):
    """The first table shown that has `column` (AppTest does not report a dataframe's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def texts(at: AppTest) -> str:
    return "\n".join([*(m.value for m in at.markdown), *(c.value for c in at.caption), *(e.value for e in at.error),
                      *(i.value for i in at.info)])


@pytest.fixture
def binary(settings, root, con):
    run = make_run(settings, root, "binary")
    return run, scored(settings, con, run)


def test_no_runs_sends_the_user_to_train(settings):
    at = open_page("evaluate")
    assert "No runs yet" in texts(at)
    at = open_page("explain")
    assert "No runs yet" in texts(at)


def test_evaluate_shows_full_split_metrics_and_the_threshold_moves_the_confusion_matrix(settings, con, binary):
    run, s = binary
    at = open_page("evaluate", run=run.run_id)
    ev = evaluate.evaluate(settings, con, s)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["ROC AUC"] == f"{ev.metrics['auc']:.4g}"
    assert f"test split: {s.rows:,} rows" in texts(at)
    assert {"eval_confusion", "eval_roc", "eval_pr", "eval_scores", "eval_calibration", "eval_gain", "eval_lift",
            "eval_slices", "eval_baselines", "eval_curve"} <= chart_keys(at)

    slider = at.slider(key=f"eval_threshold_{run.run_id}")
    assert slider.value == pytest.approx(0.5)
    slider.set_value(0.7).run()
    assert not at.exception, at.exception
    want = thresholds.at_threshold(con, s, 0.7)
    z = chart(at, "eval_confusion")["data"][0]["z"]
    assert sum(map(sum, z)) == s.rows
    assert [[want["tn"], want["fp"]], [want["fn"], want["tp"]]] in (z, z[::-1])
    assert "At threshold 0.7000" in texts(at)


def test_a_suggested_threshold_is_applied_with_one_click(settings, con, binary):
    run, s = binary
    at = open_page("evaluate", run=run.run_id)
    at.number_input(key="eval_cost_fn").set_value(5.0).run()
    best = thresholds.suggest_thresholds(settings, con, s, cost_fp=1.0, cost_fn=5.0)["min_cost"]
    at.button(key="eval_use_min_cost").click().run()
    assert not at.exception, at.exception
    assert at.slider(key=f"eval_threshold_{run.run_id}").value == pytest.approx(round(best["threshold"], 4))


def test_slices_and_fairness_follow_the_chosen_column(settings, con, binary):
    run, s = binary
    at = open_page("evaluate", run=run.run_id)
    at.selectbox(key="eval_slice_column").set_value("region").run()
    at.selectbox(key="eval_fair_column").set_value("region").run()
    assert not at.exception, at.exception
    table = frame(at, "delta")
    assert {"north", "south", "east", "west"} <= set(table["group"])
    fair = frame(at, "selection_rate")
    assert {"north", "south", "east", "west"} <= set(fair["group"])
    assert "demographic parity difference" in set(frame(at, "between groups")["between groups"])


@pytest.mark.parametrize("task, key", [("multiclass", "eval_confusion"), ("regression", "eval_density")])
def test_other_tasks_render_their_views(settings, root, task, key):
    run = make_run(settings, root, task)
    at = open_page("evaluate", run=run.run_id)
    assert key in chart_keys(at)
    assert not at.error


def test_a_run_whose_dataset_is_gone_is_said_not_crashed(settings, root, binary):
    run, _ = binary
    con = engine.connect(settings)
    cat.Catalog(settings).remove("binary")
    con.close()
    at = open_page("evaluate", run=run.run_id)
    assert at.error and "binary" in at.error[0].value


def test_explain_computes_once_then_reopens_from_the_cache(settings, con, binary):
    run, s = binary
    at = open_page("explain", run=run.run_id)
    assert "about" in texts(at) and not chart_keys(at) & {"expl_beeswarm"}
    at.button(key="expl_go").click().run()
    assert not at.exception, at.exception
    assert {"expl_importance", "expl_beeswarm", "expl_dependence", "expl_pdp", "expl_waterfall"} <= chart_keys(at)
    assert explain.is_cached(settings, run, s, min(explain.DEFAULT_ROWS, s.rows))

    again = open_page("explain", run=run.run_id)  # a new session: no button, straight from the workspace cache
    assert "expl_beeswarm" in chart_keys(again)
    assert "kept from an earlier run" in texts(again)


def test_row_pickers_and_what_if(settings, con, binary):
    run, s = binary
    at = open_page("explain", run=run.run_id)
    at.button(key="expl_go").click().run()
    at.radio(key="expl_how").set_value("confident_wrong").run()
    assert not at.exception, at.exception
    worst = local.find_rows(con, s, "confident_wrong", threshold=s.threshold, limit=10)
    assert at.selectbox(key="expl_pick_confident_wrong").value == worst[0]

    at.radio(key="expl_how").set_value("number").run()
    at.number_input(key="expl_row_number").set_value(3).run()
    before = local.explain_row(con, run, s, 3)
    assert float(next(m.value for m in at.metric if m.label == "Prediction")) == pytest.approx(before.prediction,
                                                                                              rel=1e-3)
    # What if x1, the strongest driver, were 3 standard deviations higher?
    order = [f for f, _ in sorted(before.contributions, key=lambda c: -abs(c[1]))]
    i = order.index("x1")
    at.number_input(key=f"expl_wi_3_{i}").set_value(before.values["x1"] + 3.0)
    at.button(key="FormSubmitter:expl_what_if_3-Predict").click().run()
    assert not at.exception, at.exception
    after = local.what_if(run, {**before.values, "x1": before.values["x1"] + 3.0})
    shown = next(m for m in at.metric if m.label == "What-if prediction")
    assert float(shown.value) == pytest.approx(after.prediction, rel=1e-3)
    assert after.prediction > before.prediction  # x1 raises the odds in the generating formula
    assert "expl_what_if_waterfall" in chart_keys(at)


def test_engineered_features_link_to_their_recipe_step_and_every_feature_is_editable(settings, root, con):
    recipe = R.Recipe(steps=(R.Step("expression", {"name": "x1_sq", "expression": "x1 * x1"}),
                             R.Step("expression", {"name": "x2_half", "expression": "x2 / 2"})))
    recipe_store.save(settings, recipe, "engineered")
    run = make_run(settings, root, "binary", recipe="engineered")
    at = open_page("explain", run=run.run_id)
    at.button(key="expl_go").click().run()
    assert not at.exception, at.exception
    links = frame(at, "recipe step")
    assert dict(zip(links["feature"], links["recipe step"], strict=True))["x1_sq"] == \
        "step 1 (expression): x1_sq = x1 * x1"
    at.selectbox(key="expl_dep_feature").set_value("x1_sq").run()
    assert "x1_sq comes from the recipe: step 1 (expression)" in texts(at)
    # The what-if form has an input for every model feature (the first 12 shown, the rest in an expander).
    inputs = {w.label for kind in ("number_input", "selectbox", "checkbox", "text_input") for w in at.get(kind)
              if (w.key or "").startswith("expl_wi_0_")}
    assert inputs == set(run.features)
