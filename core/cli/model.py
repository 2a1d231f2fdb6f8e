"""The ``evaluate`` and ``explain`` commands of ``python -m core`` (see core/cli/main.py for the conventions)."""
from __future__ import annotations

import argparse
from collections.abc import Callable

import pyarrow as pa

from core.cli.common import Context, _progress, emit_json, print_table
from core.evaluate import holdout, slices, thresholds
from core.evaluate import metrics as evaluate
from core.explain import shap as explain
from core.explain.local import explain_row
from core.model import runs


def _scored(ctx: Context, run: runs.Run, quiet: bool, refresh: bool) -> holdout.Scored:
    show = None if quiet else _progress("scoring the test split")
    return holdout.scored_test(ctx.settings, ctx.con, run, progress=show, refresh=refresh)


def _number(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _print_metrics(metrics: dict) -> None:
    print("  " + "  ".join(f"{k} {_number(v)}" for k, v in metrics.items() if not isinstance(v, dict | list)))


def _print_rows(rows: list[dict]) -> None:
    if rows:
        print_table(pa.Table.from_pylist([{k: (_number(v) if v is not None and not isinstance(v, str) else v)
                                           for k, v in r.items()} for r in rows]))


def cmd_evaluate(args: argparse.Namespace) -> None:
    ctx = Context.open()
    run = runs.load_run(ctx.settings, args.run)
    scored = _scored(ctx, run, args.json, args.refresh)
    econ = evaluate.connect(ctx.settings)  # memory capped: see core.evaluate.MEMORY_CAP
    ev = evaluate.evaluate(ctx.settings, econ, scored, refresh=args.refresh)
    threshold = scored.threshold if args.threshold is None else args.threshold
    doc: dict = {"run_id": run.run_id, "test_rows": scored.rows, "evaluation": ev.to_json()}
    if scored.task == "binary":
        doc["at_threshold"] = thresholds.at_threshold(econ, scored, threshold)
        doc["suggested_thresholds"] = thresholds.suggest_thresholds(
            ctx.settings, econ, scored, cost_fp=args.cost_fp, cost_fn=args.cost_fn,
            target_precision=args.precision, target_recall=args.recall)
    if args.slice:
        doc["slices"] = slices.slices(econ, scored, args.slice, metric=args.metric,
                                      threshold=threshold).to_json()
    if args.fairness:
        doc["fairness"] = slices.fairness(econ, scored, args.fairness, threshold=threshold)
    if args.json:
        emit_json(doc)
        return
    print(f"{run.run_id}  {run.name}\n{run.task} · {run.target} on {scored.dataset} · test split: {scored.rows:,} rows"
          + (" (the dataset changed since training)" if scored.changed_since_training else ""))
    _print_metrics(ev.metrics)
    if ev.sample_note:
        print(f"  ({ev.sample_note})")
    if "at_threshold" in doc:
        print(f"At threshold {threshold:g}:")
        _print_metrics(doc["at_threshold"])
        print("Suggested thresholds:")
        for name, s in doc["suggested_thresholds"].items():
            if s.get("threshold") is None:
                print(f"  {name:<10} none: {s.get('why', '')}")
            else:
                print(f"  {name:<10} {s['threshold']:.4f}  precision {_number(s.get('precision'))}  recall "
                      f"{_number(s.get('recall'))}  f1 {_number(s.get('f1'))}  ({s.get('why', '')})")
    if scored.task == "multiclass":
        _print_rows(ev.curves.get("per_class") or [])
    if "slices" in doc:
        t = doc["slices"]
        print(f"Slices by {t['column']} ({t['metric']}; overall {_number(t['overall'].get('value'))}), worst first:")
        _print_rows(t["rows"])
    if "fairness" in doc:
        f = doc["fairness"]
        print(f"Fairness by {f['column']}:")
        _print_rows(f["groups"])
        _print_metrics(f["summary"])
        for note in f.get("notes") or []:
            print(f"  {note}")


def cmd_explain(args: argparse.Namespace) -> None:
    ctx = Context.open()
    run = runs.load_run(ctx.settings, args.run)
    scored = _scored(ctx, run, args.json, args.refresh)
    n = min(args.rows, scored.rows)
    show = None if args.json else _progress("SHAP")
    if not args.json:
        print(f"SHAP for {n:,} of {scored.rows:,} test rows: about "
              f"{explain.estimate_seconds(run, scored, n):.1f} s (unless cached)")
    s = explain.shap_sample(ctx.settings, ctx.con, run, scored, n, seed=args.seed, progress=show, refresh=args.refresh)
    importance = explain.global_importance(s)
    doc: dict = {"run_id": run.run_id, "sample": {"rows": s.n, "test_rows": s.test_rows, "seconds": s.seconds,
                                                   "cached": s.cached, "seed": args.seed},
                 "importance": [{"feature": f, "mean_abs_shap": v} for f, v in importance]}
    local = None
    if args.row is not None:
        local = explain_row(ctx.con, run, scored, args.row)
        doc["row"] = {"row": local.row, "base": local.base, "raw": local.raw, "prediction": local.prediction,
                      "label": local.label, "predicted": local.predicted,
                      "contributions": [{"feature": f, "value": local.values.get(f), "shap": v}
                                        for f, v in local.contributions]}
    if args.json:
        emit_json(doc)
        return
    took = "cached" if s.cached else f"{s.seconds:.1f} s"
    print(f"Mean |SHAP| over a stratified sample of {s.n:,} test rows ({took}; raw score units"
          f"{', log-odds' if run.task != 'regression' else ''}):")
    _print_rows(doc["importance"][:args.top])
    if local is not None:
        print(f"Test row {local.row}: prediction {_number(local.prediction)} (base {local.base:.4g}, raw "
              f"{local.raw:.4g}); actual {local.label}")
        top = sorted(doc["row"]["contributions"], key=lambda c: -abs(c["shap"]))[:args.top]
        _print_rows(top)


def add_commands(top: argparse._SubParsersAction,
                 command: Callable[..., argparse.ArgumentParser]) -> None:
    ev = command(top, "evaluate", "a run's metrics on its test split (out of core), thresholds, slices, fairness",
                 cmd_evaluate)
    ev.add_argument("run", help="a run id (see `runs list`)")
    ev.add_argument("--threshold", type=float, help="binary: the decision threshold (default: the run's, 0.5)")
    ev.add_argument("--cost-fp", type=float, default=1.0, help="binary: the cost of a false positive")
    ev.add_argument("--cost-fn", type=float, default=1.0, help="binary: the cost of a false negative")
    ev.add_argument("--precision", type=float, help="binary: suggest the threshold reaching this precision")
    ev.add_argument("--recall", type=float, help="binary: suggest the threshold keeping this recall")
    ev.add_argument("--slice", help="a column to slice the metrics by")
    ev.add_argument("--metric", help="the slice metric (default: the task's first)")
    ev.add_argument("--fairness", help="a sensitive column: group rates and their differences")
    ev.add_argument("--refresh", action="store_true", help="score the test split again, ignoring the cache")
    ex = command(top, "explain", "SHAP values of a run on a stratified sample of its test split", cmd_explain)
    ex.add_argument("run", help="a run id (see `runs list`)")
    ex.add_argument("--rows", type=int, default=explain.DEFAULT_ROWS, help="sample size (default 10,000)")
    ex.add_argument("--seed", type=int, default=0, help="the sample's seed")
    ex.add_argument("--row", type=int, help="also explain this test row (its number in the scored test split)")
    ex.add_argument("--top", type=int, default=20, help="features to print")
    ex.add_argument("--refresh", action="store_true", help="compute again, ignoring the caches")
