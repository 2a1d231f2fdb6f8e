"""Headless commands: ``python -m core COMMAND``. Everything the pages do can be scripted.

Conventions for every command: a dataset is a registered name or a path (file, folder, glob);
output is for people by default and one JSON document on stdout with ``--json``; an error is
one line on stderr and a non-zero exit status, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa

from core import atomic
from core.cli import model as model_cli
from core.cli.common import Context, _progress, _share_progress, emit_json, print_table, table_json
from core.data import catalog as cat
from core.data import demo, engine, sandbox
from core.errors import QuarryError
from core.features import materialize, recipe
from core.features import store as recipe_store
from core.fmt import human_bytes
from core.model import runs, score
from core.model.leakage import leakage_sentence
from core.profile import insights, report
from core.profile import scan as profile
from core.profile import store as profile_store

EXIT_USER_ERROR = 2
EXIT_UNEXPECTED = 1


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise QuarryError(f"{self.prog}: {message}", f"see: {self.prog} --help")


# ----------------------------------------------------------------------------------------------
# Commands


def cmd_demo(args: argparse.Namespace) -> None:
    out_dir = Path(args.out_dir).resolve() if args.out_dir else demo.DEMO_DIR
    results, kept = [], []
    flights, transactions = out_dir / demo.FLIGHTS_FILE, out_dir / demo.TRANSACTIONS_FILE
    if args.only in (None, "flights"):
        if args.if_missing and flights.exists():
            kept.append(("flights", flights))
        else:
            results.append(("flights", demo.write_flights(flights)))
    if args.only in (None, "transactions"):
        if args.if_missing and transactions.exists():
            kept.append(("transactions", transactions))
        else:
            rows = args.rows or demo.DEFAULT_TRANSACTION_ROWS
            results.append(("transactions", demo.write_transactions(
                transactions, rows=rows, seed=args.seed, progress=_progress("transactions"))))
    registered = {}
    if not args.no_register:
        ctx = Context.open()
        for name, path in [*((n, r.path) for n, r in results), *kept]:
            registered[name] = cat.register(ctx.con, ctx.catalog, str(path), name=name, replace=True).name
    if args.json:
        emit_json([{"name": n, **asdict(r), "registered_as": registered.get(n)} for n, r in results]
                  + [{"name": n, "path": p, "kept": True, "registered_as": registered.get(n)} for n, p in kept])
        return
    def note(name: str) -> str:
        return f", registered as '{registered[name]}'" if name in registered else ""

    for name, path in kept:
        print(f"{name}: kept the existing {path}{note(name)}")
    for name, r in results:
        print(f"{name}: {r.rows:,} rows x {r.columns} columns, {human_bytes(r.bytes)} -> {r.path} "
              f"({r.seconds:.1f} s){note(name)}")


def cmd_datasets_list(args: argparse.Namespace) -> None:
    ctx = Context.open()
    items = ctx.catalog.list()
    if args.json:
        emit_json([asdict(d) for d in items])
        return
    if not items:
        print("No datasets registered. Register one with: python -m core datasets register PATH")
    for d in items:
        print(f"{d.name:<24} {d.format:<8} {d.source}{'  (hive partitions)' if d.hive else ''}")


def cmd_datasets_register(args: argparse.Namespace) -> None:
    ctx = Context.open()
    d = cat.register(ctx.con, ctx.catalog, args.path, name=args.name, replace=args.replace)
    info = cat.describe(ctx.con, d, ctx.settings)
    _print_info(info, args.json, verb="Registered")


def cmd_datasets_show(args: argparse.Namespace) -> None:
    ctx = Context.open()
    d = cat.resolve(ctx.con, ctx.catalog, args.dataset)
    _print_info(cat.describe(ctx.con, d, ctx.settings), args.json)


def cmd_datasets_remove(args: argparse.Namespace) -> None:
    ctx = Context.open()
    d = ctx.catalog.remove(args.name)
    if args.json:
        emit_json({"removed": asdict(d)})
    else:
        print(f"Removed dataset '{d.name}' from the catalog (its files at {d.source} are untouched).")


def cmd_datasets_preview(args: argparse.Namespace) -> None:
    ctx = Context.open()
    d = cat.resolve(ctx.con, ctx.catalog, args.dataset)
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    page = sandbox.preview(ctx.catalog, d.name, columns=columns, where=args.where or "", order_by=args.sort,
                           descending=args.desc, offset=(args.page - 1) * args.page_size, limit=args.page_size,
                           extra=(d,))
    _print_page(page, args.json)


def cmd_sql(args: argparse.Namespace) -> None:
    ctx = Context.open()
    if args.out:
        rows = sandbox.write_query(ctx.catalog, args.query, Path(args.out))
        if args.json:
            emit_json({"out": str(Path(args.out).resolve()), "rows": rows})
        else:
            print(f"Wrote {rows:,} rows to {Path(args.out).resolve()}")
        return
    _print_page(sandbox.run_query(ctx.catalog, args.query, limit=args.limit), args.json)


def cmd_profile(args: argparse.Namespace) -> None:
    ctx = Context.open()
    d = cat.resolve(ctx.con, ctx.catalog, args.dataset)
    if d.name in ctx.catalog.names():  # registered: keep the profile in the workspace
        p, kept = profile_store.load_or_profile(ctx.con, d, ctx.settings, exact=args.exact, refresh=args.refresh)
    else:
        p, kept = profile.profile_table(ctx.con, d.name, exact=args.exact), False
    found = insights.insights(ctx.con, p, fmt=d.format, target_column=args.target)
    if args.html:
        _write_text(Path(args.html), report.profile_html(p, dataset=d.name, alerts=found.alerts, target=found.target,
                                                         patterns=found.patterns))
    if args.json:
        emit_json({**p.to_json(), "kept": kept, **found.to_json()})
        return
    print(f"{d.name}: {p.rows:,} rows x {len(p.columns)} columns, {p.missing_cells:,} missing cells, "
          f"{p.duplicate_rows:,} duplicate rows ({p.seconds:.1f} s{', kept from an earlier run' if kept else ''})")
    for note in p.notes:
        print(f"Note: {note}")
    print_table(pa.table(profile.summary_rows(p)))
    print(f"\nAlerts ({len(found.alerts)}):" if found.alerts else "\nNo alerts.")
    for a in found.alerts:
        print(f"  {a.severity:<8} {a.message}")
    if found.target:
        t = found.target
        print(f"\nTarget {t.target} ({t.task}): features by {t.metric}, strongest first")
        print_table(pa.table({"feature": [f.feature for f in t.features], "metric": [f.metric for f in t.features],
                              "score": [None if f.score is None else round(f.score, 4) for f in t.features]}))
    if args.html:
        print(f"\nReport written to {args.html}")


def _write_text(path: Path, text: str) -> None:
    """Write a file whole or not at all (core.atomic), with a message a person can act on."""
    if not path.parent.is_dir():
        raise QuarryError(f"Cannot write {path}: the folder {path.parent} does not exist.", "Create it first.")
    try:
        atomic.write_text(path, text)
    except OSError as exc:
        raise QuarryError(f"Cannot write {path}: {exc.strerror}.", "Pick a writable path.") from None


def _recipe_for(ctx: Context, args: argparse.Namespace) -> tuple[recipe.Recipe, str | None]:
    """The recipe named on the command line, and the dataset it is shown/applied against."""
    r = recipe_store.load(ctx.settings, args.recipe)
    dataset = getattr(args, "dataset", None) or (r.fitted_on or {}).get("dataset")
    return r, dataset


def cmd_features_show(args: argparse.Namespace) -> None:
    ctx = Context.open()
    r, dataset = _recipe_for(ctx, args)
    if not dataset:
        raise QuarryError("This recipe is not fitted, so it names no dataset to compile against.",
                          "Add --dataset NAME.")
    d = cat.resolve(ctx.con, ctx.catalog, dataset)
    shown = r if r.fitted else recipe.fit(ctx.con, r, d.name)
    compiled = recipe.compile_recipe(ctx.con, shown, recipe.source_sql(d.name))
    pairs = list(enumerate(zip(r.steps, compiled.steps, strict=True)))
    if args.json:
        emit_json({"recipe": r.to_json(), "sql": compiled.inline(),
                   "steps": [{"title": st.title(i), "description": c.description, "sql": c.sql}
                             for i, (st, c) in pairs],
                   "columns": [[c.name, c.type] for c in compiled.columns]})
        return
    print(f"Recipe {r.name or args.recipe}: {len(r.steps)} steps over {d.name}"
          + ("" if r.fitted else " (not fitted: shown fitted on all of it)"))
    for i, (st, c) in pairs:
        print(f"\n{st.title(i)}: {c.description}\n  {recipe.inline(c.sql, compiled.params)}")
    print(f"\nOutput: {len(compiled.columns)} columns: {', '.join(c.name for c in compiled.columns)}")


def cmd_features_fit(args: argparse.Namespace) -> None:
    ctx = Context.open()
    r, _ = _recipe_for(ctx, args)
    d = cat.resolve(ctx.con, ctx.catalog, args.dataset)
    fitted = recipe.fit(ctx.con, r, d.name, where=args.where or None)
    path = recipe_store.save(ctx.settings, fitted, args.save or r.name or "recipe")
    if args.json:
        emit_json({"recipe": fitted.to_json(), "path": str(path)})
        return
    print(f"Fitted {sum(1 for s in fitted.steps if s.fitted is not None)} stateful steps on {d.name}"
          + (f" where {args.where}" if args.where else "") + f"; kept as {path}")


def cmd_features_apply(args: argparse.Namespace) -> None:
    ctx = Context.open()
    r, _ = _recipe_for(ctx, args)
    d = cat.resolve(ctx.con, ctx.catalog, args.dataset)
    if not r.fitted:
        print(f"Note: the recipe is not fitted; fitting it on all of {d.name} first.", file=sys.stderr)
        r = recipe.fit(ctx.con, r, d.name)
    show = _share_progress("applying the recipe") if not args.json else None
    rows = materialize.apply_to_file(ctx.settings, ctx.catalog, r, d.name, Path(args.out), progress=show)
    if args.json:
        emit_json({"rows": rows, "out": str(Path(args.out).resolve())})
        return
    print(f"{rows:,} rows -> {args.out}")


def _train_params(args: argparse.Namespace) -> dict:
    """The CLI's train arguments as a training job's JSON parameters."""
    params = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise QuarryError(f"--param takes NAME=VALUE. Got {item!r}.", "E.g. --param num_leaves=31.")
        params[key.strip()] = _number_or_text(value.strip())
    split = {"kind": args.split, "valid": args.valid, "test": args.test, "seed": args.seed, "column": args.split_column}
    return {"dataset": args.dataset, "target": args.target, "task": args.task, "device": args.device,
            "recipe": args.recipe, "split": split, "params": params, "num_boost_round": args.rounds,
            "early_stopping_rounds": args.early_stopping, "class_weight": args.class_weight, "seed": args.seed,
            "features": args.features.split(",") if args.features else None, "name": args.name,
            "tune": {"n_trials": args.trials, "timeout_s": args.time_budget} if args.trials else None,
            "cv_folds": args.cv, "keep_leaky": list(args.keep_leaky or [])}


def _number_or_text(text: str) -> object:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def cmd_train(args: argparse.Namespace) -> None:
    from core.model import job as train_job

    ctx = Context.open()
    cat.resolve(ctx.con, ctx.catalog, args.dataset)  # a bad name or path fails here, before any work
    params = {**_train_params(args), "dataset": args.dataset}  # the job resolves it again on its own connection

    class Printer:  # on a terminal: one line per 10 iterations, or per finished search trial
        def report(self, **line: object) -> None:
            if not sys.stderr.isatty():
                return
            if "trial" in line:
                sys.stderr.write(f"\rtrial {line['trial']}/{line['trials']} {line['trial_state']}  "
                                 f"best {line['best']}   ")
            elif line["iteration"] % 10 == 0 or line["iteration"] == line["total"]:
                sys.stderr.write(f"\riteration {line['iteration']}/{line['total']}  train {line['train']}  "
                                 f"valid {line['valid']}   ")

    out = train_job.run(params, None if args.json else Printer())
    if args.json:
        emit_json(out)
        return
    sys.stderr.write("\n") if sys.stderr.isatty() else None
    print(f"Run {out['run_id']} saved ({out['device']['used']}: {out['device']['reason']}; data path "
          f"{out['data_path']}).")
    for leak in out.get("leakage") or []:
        sentence = leakage_sentence(leak, out["target"])
        print(f"  {'kept (--keep-leaky)' if leak['kept'] else 'left out'}: {sentence}"
              + ("" if leak["kept"] else f". Keep it with --keep-leaky {leak['feature']}."))
    for split, values in out["metrics"].items():
        print(f"  {split:<6}" + "  ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float)))
    for name, values in out["baselines"].items():
        print(f"  {name:<7}" + "  ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float))
              + "  (baseline)")
    if out.get("cv"):
        cv = out["cv"]
        print("  cv     " + "  ".join(f"{k} {v:.4f} ± {cv['std'][k]:.4f}" for k, v in cv["mean"].items()
                                       if isinstance(v, float))
              + f"  ({cv['folds']} folds of the train and valid rows, {cv['rounds']} rounds)")


def cmd_runs_list(args: argparse.Namespace) -> None:
    ctx = Context.open()
    found = runs.list_runs(ctx.settings, dataset=args.dataset, task=args.task, tag=args.tag)
    if args.json:
        emit_json([r.to_json() for r in found])
        return
    if not found:
        print("No runs yet: train one with `python -m core train DATASET --target COL`.")
        return
    print_table(pa.table({"run": [r.run_id for r in found], "name": [r.name for r in found],
                          "dataset": [r.dataset for r in found], "target": [r.target for r in found],
                          "task": [r.task for r in found], "metric": [r.metric for r in found],
                          "valid": [r.valid_metric for r in found], "test": [r.test_metric for r in found],
                          "tags": [", ".join(r.tags) for r in found]}))


def cmd_runs_show(args: argparse.Namespace) -> None:
    ctx = Context.open()
    run = runs.load_run(ctx.settings, args.run)
    if args.json:
        emit_json(run.info)
        return
    info = run.info
    print(f"{info['run_id']}  {info.get('name', '')}\n{info['task']} on {info['dataset']} -> {info['target']}; "
          f"{len(info['features'])} features; device {info['device']['used']} ({info['device']['reason']}); "
          f"best iteration {info['best_iteration']}")
    for split, values in info.get("metrics", {}).items():
        print(f"  {split:<6}" + "  ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float)))


def cmd_runs_delete(args: argparse.Namespace) -> None:
    ctx = Context.open()
    runs.delete_run(ctx.settings, args.run)
    emit_json({"deleted": args.run}) if args.json else print(f"Deleted run {args.run}.")


def cmd_runs_rename(args: argparse.Namespace) -> None:
    ctx = Context.open()
    r = runs.rename_run(ctx.settings, args.run, args.name)
    emit_json(r.to_json()) if args.json else print(f"Run {r.run_id} is now named {r.name!r}.")


def cmd_runs_tag(args: argparse.Namespace) -> None:
    ctx = Context.open()
    r = runs.tag_run(ctx.settings, args.run, add=args.add or (), remove=args.remove or ())
    emit_json(r.to_json()) if args.json else print(f"Run {r.run_id} tags: {', '.join(r.tags) or '(none)'}.")


def cmd_score(args: argparse.Namespace) -> None:
    ctx = Context.open()
    run = runs.load_run(ctx.settings, args.run)
    d = cat.resolve(ctx.con, ctx.catalog, args.dataset)
    keep = [c for c in (args.keep or "").split(",") if c]
    show = _progress("scoring") if not args.json else None
    res = score.score(ctx.settings, ctx.con, run, d.name, Path(args.out), keep=keep, progress=show)
    if args.json:
        emit_json({"rows": res.rows, "seconds": res.seconds, "out": str(res.out)})
        return
    print(f"{res.rows:,} rows scored in {res.seconds:.1f} s -> {res.out}")


def _print_info(info: cat.DatasetInfo, as_json: bool, verb: str = "") -> None:
    if as_json:
        emit_json(info.to_json())
        return
    d = info.dataset
    print(f"{verb + ' ' if verb else ''}{d.name}: {info.rows:,} rows x {len(info.columns)} columns, "
          f"{info.files:,} file(s), {human_bytes(info.bytes)} on disk ({d.format}) from {d.source}")
    if info.rows == 0:
        print("Note: this dataset has 0 rows; there is nothing to preview or train on.")
    for p in info.partitions:
        shown = ", ".join(p.values[:8]) + (" ..." if len(p.values) > 8 else "")
        print(f"  partition {p.key}: {len(p.values)} value(s): {shown}")
    width = max((len(c.name) for c in info.columns), default=4)
    for c in info.columns:
        print(f"  {c.name:<{width}}  {c.type}")


def _print_page(page: engine.Page, as_json: bool) -> None:
    if as_json:
        emit_json({**table_json(page.table), "total_rows": page.total_rows, "offset": page.offset,
                   "seconds": round(page.seconds, 4)})
        return
    print_table(page.table)
    print(f"{page.caption()} ({page.seconds:.2f} s)")


# ----------------------------------------------------------------------------------------------
# Parser and entry point


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core", description="Quarry: ML on tabular data too big for pandas.")
    top = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(sub, name: str, help_: str, fn) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        sp.set_defaults(fn=fn)
        return sp

    d = command(top, "demo", "generate the demo datasets (NYC flights 2013, synthetic card transactions) "
                        "and register them", cmd_demo)
    d.add_argument("--rows", type=int, help=f"transactions rows (default {demo.DEFAULT_TRANSACTION_ROWS:,})")
    d.add_argument("--only", choices=["flights", "transactions"], help="generate just one of the two")
    d.add_argument("--seed", type=int, default=42, help="random seed for the transactions (default 42)")
    d.add_argument("--out-dir", help="where to write (default data/demo)")
    d.add_argument("--no-register", action="store_true", help="write the files but do not register them")
    d.add_argument("--if-missing", action="store_true", help="keep files that already exist (register them only)")

    ds = top.add_parser("datasets", help="list, register, show, preview or remove datasets")
    dsub = ds.add_subparsers(dest="action", required=True, parser_class=_Parser)
    command(dsub, "list", "list registered datasets", cmd_datasets_list)
    r = command(dsub, "register", "register a Parquet/CSV file, folder or glob under the data roots",
                cmd_datasets_register)
    r.add_argument("path")
    r.add_argument("--name", help="dataset (table) name; derived from the path when omitted")
    r.add_argument("--replace", action="store_true", help="replace a dataset of the same name")
    s = command(dsub, "show", "schema, row count, size and partitions of a dataset", cmd_datasets_show)
    s.add_argument("dataset", help="registered name or path")
    pv = command(dsub, "preview", "one page of rows, filtered and sorted in DuckDB", cmd_datasets_preview)
    pv.add_argument("dataset", help="registered name or path")
    pv.add_argument("--where", help="filter expression, e.g. \"dep_delay > 60 AND origin = 'JFK'\"")
    pv.add_argument("--sort", help="sort column")
    pv.add_argument("--desc", action="store_true", help="sort descending")
    pv.add_argument("--columns", help="comma-separated columns to show")
    pv.add_argument("--page", type=int, default=1, help="page number (from 1)")
    pv.add_argument("--page-size", type=int, default=20, help="rows per page (at most 1000)")
    rm = command(dsub, "remove", "forget a dataset (its files are not touched)", cmd_datasets_remove)
    rm.add_argument("name")

    pr = command(top, "profile", "column statistics, distributions and top values over the full data", cmd_profile)
    pr.add_argument("dataset", help="registered name or path")
    pr.add_argument("--exact", action="store_true", help="exact distinct counts, quantiles and duplicates (slower)")
    pr.add_argument("--refresh", action="store_true", help="profile again even if the files have not changed")
    pr.add_argument("--target", help="a column to predict: rank every feature by its relation to it")
    pr.add_argument("--html", help="also write a self-contained HTML report (aggregates only) to this path")

    fe = top.add_parser("features", help="feature recipes: show, fit and apply them")
    fsub = fe.add_subparsers(dest="action", required=True, parser_class=_Parser)
    fs = command(fsub, "show", "each step's description and SQL, and the whole recipe as one query", cmd_features_show)
    fs.add_argument("recipe", help="a kept recipe's name or a recipe .json file")
    fs.add_argument("--dataset", help="compile against this dataset (default: the one it was fitted on)")
    ff = command(fsub, "fit", "fit the recipe's stateful steps on a dataset and keep it", cmd_features_fit)
    ff.add_argument("recipe", help="a kept recipe's name or a recipe .json file")
    ff.add_argument("dataset", help="registered name or path (the training data)")
    ff.add_argument("--where", help="fit on these rows only, e.g. \"ts < '2024-07-01'\"")
    ff.add_argument("--save", help="keep the fitted recipe under this name (default: the recipe's own name)")
    fa = command(fsub, "apply", "apply a recipe to every row of a dataset and write Parquet", cmd_features_apply)
    fa.add_argument("recipe", help="a kept recipe's name or a recipe .json file")
    fa.add_argument("dataset", help="registered name or path")
    fa.add_argument("--out", required=True, help="the Parquet file to write")

    t = command(top, "train", "train LightGBM on a dataset (through a recipe) and save the run", cmd_train)
    t.add_argument("dataset", help="registered name or path")
    t.add_argument("--target", required=True, help="the column to predict")
    t.add_argument("--task", choices=["binary", "multiclass", "regression"], help="default: detected from the target")
    t.add_argument("--features", help="comma-separated feature columns (default: all but the target and ID-like)")
    t.add_argument("--recipe", help="a kept recipe's name or a recipe .json file (fitted)")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu", "cuda"])
    t.add_argument("--split", default="random", choices=["random", "stratified", "time", "group"])
    t.add_argument("--split-column", help="the time column (time split) or group column (group split)")
    t.add_argument("--valid", type=float, default=0.15, help="validation fraction (default 0.15)")
    t.add_argument("--test", type=float, default=0.15, help="test fraction (default 0.15)")
    t.add_argument("--rounds", type=int, default=1000, help="most boosting rounds (default 1000)")
    t.add_argument("--early-stopping", type=int, default=50, help="rounds without improvement (0: off)")
    t.add_argument("--class-weight", choices=["balanced"], help="weight classes by their inverse frequency")
    t.add_argument("--param", action="append", help="any LightGBM parameter, NAME=VALUE (repeatable)")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--cv", type=int, default=0, metavar="K",
                   help="also cross-validate on K folds of the train and valid rows (2-20; default 0: off)")
    t.add_argument("--name", help="a name for the run")
    t.add_argument("--keep-leaky", action="append", metavar="COL",
                   help="keep this feature even if it predicts the target almost alone (the leakage guard leaves such "
                        "features out by default; repeatable)")
    t.add_argument("--trials", type=int, help="search parameters with Optuna for this many trials, then refit the best")
    t.add_argument("--time-budget", type=float, help="stop starting new trials after this many seconds")

    rs = top.add_parser("runs", help="list, show, rename, tag or delete training runs")
    rsub = rs.add_subparsers(dest="action", required=True, parser_class=_Parser)
    rl = command(rsub, "list", "runs, newest first", cmd_runs_list)
    rl.add_argument("--dataset")
    rl.add_argument("--task", choices=["binary", "multiclass", "regression"])
    rl.add_argument("--tag")
    command(rsub, "show", "a run's set-up and metrics", cmd_runs_show).add_argument("run")
    command(rsub, "delete", "delete a run (its folder and registry row)", cmd_runs_delete).add_argument("run")
    rn = command(rsub, "rename", "rename a run", cmd_runs_rename)
    rn.add_argument("run")
    rn.add_argument("name")
    rt = command(rsub, "tag", "add or remove tags", cmd_runs_tag)
    rt.add_argument("run")
    rt.add_argument("--add", nargs="*", help="tags to add")
    rt.add_argument("--remove", nargs="*", help="tags to remove")

    sc = command(top, "score", "score every row of a dataset with a run's recipe and model, out of core", cmd_score)
    sc.add_argument("run", help="a run id (see `runs list`)")
    sc.add_argument("dataset", help="registered name or path")
    sc.add_argument("--out", required=True, help="the Parquet file to write")
    sc.add_argument("--keep", help="comma-separated columns to keep beside the predictions (e.g. an ID)")


    model_cli.add_commands(top, command)

    q = command(top, "sql", "run one SELECT over registered datasets (their names are table names)", cmd_sql)
    q.add_argument("query")
    q.add_argument("--out", help="write the whole result to this Parquet file instead of printing a page")
    q.add_argument("--limit", type=int, default=20, help="rows to print (at most 1000)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "page", 1) < 1:
            raise QuarryError(f"--page must be 1 or more. Got {args.page}.", "Pages are numbered from 1.")
        args.fn(args)
        return 0
    except QuarryError as exc:
        line = f"error: {exc.message}" + (f" — {exc.hint}" if exc.hint else "")
        print(" ".join(line.split()), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last resort: never a traceback for a user
        if os.environ.get("QUARRY_DEBUG"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())} "
              "(set QUARRY_DEBUG=1 for a traceback and please report it)", file=sys.stderr)
        return EXIT_UNEXPECTED
