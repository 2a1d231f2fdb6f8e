"""CLI `evaluate` and `explain`: human and --json output agree with core; errors are one line, exit 2."""
from __future__ import annotations

import pytest

from core.evaluate import metrics as evaluate
from core.evaluate import slices, thresholds
from core.explain import shap as explain
from core.explain.local import explain_row
from tests.eval_support import make_run, scored
from tests.test_cli import run, run_json


def test_evaluate_binary_in_json_and_for_people(capsys, settings, root, con):
    r = make_run(settings, root, "binary")
    doc = run_json(capsys, "evaluate", r.run_id, "--threshold", "0.3", "--cost-fn", "4", "--precision", "0.8",
                   "--slice", "region", "--fairness", "channel")
    s = scored(settings, con, r)
    ev = evaluate.evaluate(settings, con, s)
    assert doc["test_rows"] == s.rows == r.info["rows"]["test"]
    assert doc["evaluation"]["metrics"]["auc"] == pytest.approx(ev.metrics["auc"], rel=1e-12)
    assert doc["at_threshold"] == pytest.approx(thresholds.at_threshold(con, s, 0.3))
    want = thresholds.suggest_thresholds(settings, con, s, cost_fn=4.0, target_precision=0.8)
    assert doc["suggested_thresholds"]["min_cost"]["threshold"] == pytest.approx(want["min_cost"]["threshold"])
    assert {"max_f1", "min_cost", "precision"} <= set(doc["suggested_thresholds"])
    assert doc["slices"]["column"] == "region" and len(doc["slices"]["rows"]) >= 4
    assert doc["fairness"]["summary"]["demographic_parity_difference"] == pytest.approx(
        slices.fairness(con, s, "channel", threshold=0.3)["summary"]["demographic_parity_difference"])
    code, out, err = run(capsys, "evaluate", r.run_id)
    assert code == 0, err
    assert f"test split: {s.rows:,} rows" in out and "auc " in out and "Suggested thresholds:" in out


@pytest.mark.parametrize("task, word", [("multiclass", "macro_f1"), ("regression", "rmse")])
def test_evaluate_other_tasks(capsys, settings, root, task, word):
    r = make_run(settings, root, task)
    doc = run_json(capsys, "evaluate", r.run_id)
    assert doc["evaluation"]["metrics"][word] is not None and "at_threshold" not in doc
    code, out, _ = run(capsys, "evaluate", r.run_id)
    assert code == 0 and word in out


def test_explain_json_matches_the_sample_and_a_row(capsys, settings, root, con):
    r = make_run(settings, root, "binary")
    doc = run_json(capsys, "explain", r.run_id, "--rows", "300", "--row", "7")
    s = scored(settings, con, r)
    sample = explain.shap_sample(settings, con, r, s, 300)
    assert sample.cached and doc["sample"]["rows"] == 300 and doc["sample"]["test_rows"] == s.rows
    assert [d["feature"] for d in doc["importance"]] == [f for f, _ in explain.global_importance(sample)]
    local = explain_row(con, r, s, 7)
    assert doc["row"]["prediction"] == pytest.approx(local.prediction)
    assert sum(c["shap"] for c in doc["row"]["contributions"]) + doc["row"]["base"] == pytest.approx(doc["row"]["raw"])
    code, out, _ = run(capsys, "explain", r.run_id, "--rows", "300", "--top", "3")
    assert code == 0 and "Mean |SHAP|" in out and "cached" in out


def test_errors_are_one_line(capsys, settings, root):
    r = make_run(settings, root, "regression")
    for argv in (["evaluate", "no-such-run"], ["explain", "no-such-run"],
                 ["evaluate", r.run_id, "--slice", "nope"], ["explain", r.run_id, "--rows", "0"],
                 ["explain", r.run_id, "--row", "999999"]):
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("error: ") and err.count("\n") == 1, err
