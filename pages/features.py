"""Features: build a recipe of steps compiled to SQL, preview it on a sample, save it, write it out."""
import streamlit as st

from core import ui
from core.errors import QuarryError
from core.features import recipe as R
from core.features import store as recipe_store
from core.fmt import md
from core.profile.scan import short

ui.page_guard()
ui.require_role("features")  # a viewer sees why not, and nothing else

st.title("Features")
ws = ui.workspace()
name = ui.active_dataset_or_stop(ws)

steps: list[dict] = st.session_state.setdefault("features_steps", [])
kinds = R.kinds()
st.markdown(f"**{md(name)}** · a recipe is a list of steps; each compiles to SQL, fitted on all rows of {md(name)}, "
            "and runs unchanged in training and scoring.")

# ---- Recipes kept in the workspace
keep, load_col = st.columns([3, 2], vertical_alignment="bottom")
with load_col:
    kept = recipe_store.names(ws.settings)
    pick = st.selectbox("Kept recipes", kept, index=None, key="features_load_name", placeholder="choose one")
    if st.button("Load", key="features_load", disabled=pick is None):
        try:
            loaded = recipe_store.load(ws.settings, pick)
            st.session_state["features_steps"] = [{"kind": s.kind, "params": s.params, "name": s.name}
                                                  for s in loaded.steps]
            st.session_state["features_save_name"] = pick
            st.rerun()
        except QuarryError as exc:
            ui.show_error(exc)

recipe = R.Recipe(steps=tuple(R.Step(**s) for s in steps))
preview = error = None
try:
    fitted = R.loads(ui.fitted_recipe(name, recipe.dumps(), ws.version()))
    preview = ui.recipe_preview(name, fitted.dumps(), ws.version())
except QuarryError as exc:
    error = exc
with keep:
    save_name = st.text_input("Recipe name", key="features_save_name", placeholder="e.g. fraud_features")
    if st.button("Save recipe", key="features_save", disabled=not steps or error is not None):
        try:
            path = recipe_store.save(ws.settings, fitted, save_name)
            st.toast(f"Saved {md(path.name)} (fitted on {md(name)}).", icon=":material/save:")
        except QuarryError as exc:
            ui.show_error(exc)

# ---- The steps (left), the preview (right)
build, show = st.columns([5, 6], gap="large")
build.subheader(f"Steps ({len(steps)})")
if error is not None:
    with build:
        ui.show_error(error)
editing = st.session_state.get("features_editing")
for i, s in enumerate(steps):
    with build.container(border=True):
        title, up, down, edit, drop = st.columns([8, 1, 1, 1, 1], vertical_alignment="center")
        done = preview is not None and i < len(preview.compiled.steps)
        title.markdown(f"**{i + 1}. {kinds[s['kind']].label if s['kind'] in kinds else md(s['kind'])}**"
                       + (f" — {md(preview.compiled.steps[i].description)}" if done else ""))
        if up.button("", key=f"features_up_{i}", icon=":material/arrow_upward:", disabled=i == 0, help="Move up"):
            steps[i - 1], steps[i] = steps[i], steps[i - 1]
            st.rerun()
        if down.button("", key=f"features_down_{i}", icon=":material/arrow_downward:", disabled=i == len(steps) - 1,
                       help="Move down"):
            steps[i + 1], steps[i] = steps[i], steps[i + 1]
            st.rerun()
        if edit.button("", key=f"features_edit_{i}", icon=":material/edit:", help="Edit"):
            st.session_state["features_editing"] = i
            st.rerun()
        if drop.button("", key=f"features_remove_{i}", icon=":material/delete:", help="Remove"):
            steps.pop(i)
            st.session_state.pop("features_editing", None)
            st.rerun()
        if done:
            with st.expander("SQL"):
                st.code(R.inline(preview.compiled.steps[i].sql, preview.compiled.params), language="sql",
                        wrap_lines=True)

# ---- Add or edit a step
try:
    inputs = R.compile_recipe(ws.con, R.Recipe(), R.source_sql(name)).columns
    if preview is not None and editing is None:
        inputs = preview.compiled.columns
    elif preview is not None and editing:
        inputs = preview.compiled.steps[editing - 1].columns
except QuarryError as exc:
    ui.show_error(exc)
    st.stop()
with build.container(border=True):
    st.markdown(f"**Edit step {editing + 1}**" if editing is not None else "**Add a step**")
    options = sorted(kinds, key=lambda k: (kinds[k].family, kinds[k].label))
    current = steps[editing] if editing is not None else {}
    chosen = st.selectbox("Kind", options, key=f"features_kind_{editing}",
                          format_func=lambda k: f"{kinds[k].label} ({k})",
                          index=options.index(current["kind"]) if current else 0)
    if kinds[chosen].help:
        st.caption(kinds[chosen].help)
    with st.form(f"features_form_{chosen}_{editing}", border=False):
        params = ui.step_form(kinds[chosen], inputs, current.get("params", {}) if current.get("kind") == chosen else {},
                              key=f"features_{chosen}")
        label = st.text_input("Step name (optional)", value=current.get("name", ""), key="features_step_name")
        submitted = st.form_submit_button("Update step" if editing is not None else "Add step", type="primary")
    if submitted:
        new = {"kind": chosen, "params": params, "name": label}
        try:  # check it against its input before it joins the recipe
            R.check_params(R.Step(**new), editing if editing is not None else len(steps), inputs)
        except QuarryError as exc:
            ui.show_error(exc)
        else:
            if editing is not None:
                steps[editing] = new
                st.session_state.pop("features_editing")
            else:
                steps.append(new)
            st.rerun()
    if editing is not None and st.button("Cancel editing", key="features_cancel_edit"):
        st.session_state.pop("features_editing")
        st.rerun()

if preview is None or not steps:
    show.info("Add a step: the preview of its output appears here.", icon=":material/info:")
    st.stop()

look, sql_tab, write = show.tabs(["Preview", "SQL", "Write to Parquet"])
with look:
    st.caption(" ".join(map(md, preview.notes)) + f" {preview.sample_rows:,} rows in → {preview.rows_out:,} rows out; "
               f"{len(preview.before)} columns in → {len(preview.compiled.columns)} out.")
    if preview.summaries:
        st.markdown("**New and transformed columns** (on the preview rows)")
        st.dataframe({"column": [c.name for c in preview.summaries], "type": [c.type for c in preview.summaries],
                      "what": [c.status for c in preview.summaries],
                      "missing": [c.missing for c in preview.summaries],
                      "distinct": [c.distinct for c in preview.summaries],
                      "min": [short(c.low) for c in preview.summaries],
                      "max": [short(c.high) for c in preview.summaries],
                      "mean": [None if c.mean is None else round(c.mean, 4) for c in preview.summaries]},
                     hide_index=True, width="stretch")
    st.markdown(f"**First {preview.head.num_rows} rows out** (new and transformed columns first)")
    first = [c.name for c in preview.summaries]
    st.dataframe(preview.head.select(first + [c for c in preview.head.column_names if c not in first]),
                 hide_index=True, width="stretch", height=300)
with sql_tab:
    st.caption("The whole recipe as one DuckDB query, fitted values written in (the app runs it with bound "
               "parameters).")
    text = preview.compiled.inline().replace(R.source_sql(name, sample_rows=preview.sample_rows),
                                             R.source_sql(name))
    st.code(text, language="sql", wrap_lines=True)
    st.download_button("Recipe (JSON)", fitted.dumps(), file_name=f"{save_name or 'recipe'}.json",
                       mime="application/json", key="features_download_json", icon=":material/download:",
                       on_click="ignore")
    st.download_button("Query (SQL)", text, file_name=f"{save_name or 'recipe'}.sql", mime="text/plain",
                       key="features_download_sql", icon=":material/download:", on_click="ignore")
with write:
    st.caption(f"Applies the recipe to all {preview.total_rows:,} rows in DuckDB (out of core), writes Parquet to "
               "the workspace and registers it as a dataset.")
    out_name = st.text_input("Dataset name", value=f"{name}_features", key="features_out_name")
    if st.button("Write and register", key="features_write", type="primary", icon=":material/save:"):
        bar = st.progress(0.0, text="Applying the recipe…")
        try:
            d = ui.materialize_recipe(name, fitted, out_name, progress=lambda share: bar.progress(
                share, text=f"Applying the recipe… {share:.0%}"))
        except QuarryError as exc:
            bar.empty()
            ui.show_error(exc)
        else:
            bar.empty()
            st.success(f"Wrote and registered {md(d.name)}: pick it in the sidebar.", icon=":material/check_circle:")
