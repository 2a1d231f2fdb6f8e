"""Decision thresholds of a binary run: the confusion counts and rates at any threshold over its scored test
split, and thresholds chosen over the exact curve (``curve.parquet``, written by core.evaluate) for the best F1,
the lowest cost, or a target precision or recall.
"""
from __future__ import annotations

import duckdb

from core.data.engine import quote_literal, translate
from core.errors import QuarryError
from core.evaluate.holdout import Scored
from core.evaluate.metrics import curve_path, evaluate, fetch, finite_number, require_task
from core.evaluate.stats import rates
from core.settings import Settings


def at_threshold(con: duckdb.DuckDBPyConnection, scored: Scored, threshold: float) -> dict:
    """The confusion counts and rates of a binary run at `threshold` over all test rows.

    A row is predicted positive when its score is >= threshold. Returns threshold, tp, fp, tn, fn,
    precision, recall, f1, accuracy, specificity, fpr, selection_rate (None where 0 / 0).
    """
    require_task(scored, "binary")
    t = finite_number(threshold, "threshold")
    cur = con.cursor()
    try:
        tp, fp, tn, fn = fetch(cur, f"""
            SELECT count(*) FILTER (WHERE __score >= $t AND __label = 1),
                   count(*) FILTER (WHERE __score >= $t AND __label = 0),
                   count(*) FILTER (WHERE __score < $t AND __label = 0),
                   count(*) FILTER (WHERE __score < $t AND __label = 1)
            FROM {scored.table}""", {"t": t})[0]
    except duckdb.Error as exc:
        raise translate(exc, "Counting the test rows at a threshold") from None
    finally:
        cur.close()
    return {"threshold": t, **rates(int(tp), int(fp), int(tn), int(fn))}


def suggest_thresholds(settings: Settings, con: duckdb.DuckDBPyConnection, scored: Scored, *, cost_fp: float = 1.0,
                       cost_fn: float = 1.0, target_precision: float | None = None,
                       target_recall: float | None = None) -> dict[str, dict]:
    """Thresholds of a binary run chosen over the exact curve (every distinct test score is a candidate).

    Returns
    -------
    dict
        "max_f1" (highest F1), "min_cost" (lowest ``cost_fp * fp + cost_fn * fn``), and when asked
        "precision" (the lowest threshold whose precision >= target_precision: the most recall) and
        "recall" (the highest threshold whose recall >= target_recall). Ties go to the higher
        threshold. Each is ``{"threshold": t, **at_threshold(t), "why": sentence}``, or
        ``{"threshold": None, "why": sentence}`` when no candidate qualifies.
    """
    require_task(scored, "binary")
    cost_fp, cost_fn = finite_number(cost_fp, "cost of a false positive"), finite_number(
        cost_fn, "cost of a false negative")
    if cost_fp < 0 or cost_fn < 0 or not (cost_fp or cost_fn):
        raise QuarryError(f"The costs must be >= 0 and not both 0. Got {cost_fp:g} (false positive) and "
                          f"{cost_fn:g} (false negative).", "Enter what one mistake of each kind costs.")
    for name, target in (("precision", target_precision), ("recall", target_recall)):
        if target is not None and not 0 <= finite_number(target, f"target {name}") <= 1:
            raise QuarryError(f"The target {name} must be between 0 and 1. Got {target!r}.",
                              "Enter a share such as 0.9.")
    evaluate(settings, con, scored)  # makes curve.parquet when it is missing or stale
    c = f"read_parquet({quote_literal(str(curve_path(settings, scored.run_id)))})"
    cur = con.cursor()
    try:
        pos, neg, candidates = fetch(cur, f"SELECT CAST(sum(pos) AS BIGINT), CAST(sum(neg) AS BIGINT), count(*) "
                                           f"FROM {c}")[0]

        def best(where: str, order: str, params: dict | None = None) -> tuple | None:
            found = fetch(cur, f"SELECT threshold, tp, fp FROM {c} WHERE {where} ORDER BY {order} LIMIT 1", params)
            return found[0] if found else None

        def result(row: tuple, why: str) -> dict:
            threshold, tp, fp = float(row[0]), int(row[1]), int(row[2])
            return {"threshold": threshold, **rates(tp, fp, neg - fp, pos - tp), "why": why}

        out: dict[str, dict] = {}
        if pos:
            row = best("true", "2 * tp / (2 * tp + fp + ($p - tp)) DESC, threshold DESC", {"p": pos})
            r = result(row, "")
            r["why"] = (f"The highest F1 ({r['f1']:.3f}) of the {candidates:,} candidate thresholds: "
                        f"precision {r['precision']:.3f}, recall {r['recall']:.3f}.")
            out["max_f1"] = r
        else:
            out["max_f1"] = {"threshold": None, "why": "The test split has no positive rows, so F1 is undefined."}
        row = best("true", "$cfp * fp + $cfn * ($p - tp) ASC, threshold DESC",
                   {"cfp": cost_fp, "cfn": cost_fn, "p": pos})
        r = result(row, "")
        cost = cost_fp * r["fp"] + cost_fn * r["fn"]
        r["cost"] = cost
        r["why"] = (f"The lowest total cost ({cost_fp:g} x {r['fp']:,} false positives + {cost_fn:g} x {r['fn']:,} "
                    f"false negatives = {cost:,.6g}) of the {candidates:,} candidate thresholds.")
        out["min_cost"] = r
        if target_precision is not None:
            target = float(target_precision)
            row = best("tp / (tp + fp) >= $target", "threshold ASC", {"target": target})
            if row is None:
                top = best("true", "tp / (tp + fp) DESC, threshold ASC")
                out["precision"] = {"threshold": None,
                                    "why": f"No threshold reaches a precision of {target:.3f}; the highest is "
                                           f"{top[1] / (top[1] + top[2]):.3f} (threshold {top[0]:.4g})."}
            else:
                r = result(row, "")
                r["why"] = (f"The lowest threshold with precision at least {target:.3f} (it has "
                            f"{r['precision']:.3f}), so it keeps the most recall: {r['recall']:.3f}.")
                out["precision"] = r
        if target_recall is not None:
            target = float(target_recall)
            row = best("tp / $p >= $target", "threshold DESC", {"target": target, "p": pos}) if pos else None
            if row is None:
                out["recall"] = {"threshold": None,
                                 "why": "The test split has no positive rows, so recall is undefined."}
            else:
                r = result(row, "")
                r["why"] = (f"The highest threshold with recall at least {target:.3f} (it has {r['recall']:.3f}), "
                            f"so it flags the fewest rows: precision {r['precision'] or 0:.3f}.")
                out["recall"] = r
    except duckdb.Error as exc:
        raise translate(exc, "Choosing thresholds") from None
    finally:
        cur.close()
    return out
