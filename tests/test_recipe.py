"""The recipe framework (core/features/recipe.py) and the column, row and derive steps (core/features/steps/columns.py).

Each kind is checked against a plain Polars implementation of the same step on data with missing values,
NaN, infinities, unicode and awkward column names; its SQL is kept as a snapshot. Bad recipes must fail with
a RecipeError that names the step.
"""
from __future__ import annotations

import json
import math

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from core.features import recipe as R
from tests.conftest import WEIRD, sample_table
from tests.recipe_support import run, snapshot, table

SPACE, QUOTE, UNICODE = WEIRD[0], WEIRD[1], WEIRD[2]  # "has space", 'quo"te', "ünïcødé"


def data() -> pa.Table:
    """The shared sample (1,000 rows) plus numbers written as text and repeated rows (for deduplicate)."""
    t = sample_table(1000)
    words = [None if i % 9 == 0 else ("x" if i % 10 == 0 else f"{(i * 3.5) % 40:g}") for i in range(t.num_rows)]
    t = t.append_column("numbers", pa.array(words))
    return pa.concat_tables([t, t.slice(0, 150), t.slice(100, 20)])


@pytest.fixture
def src(con: duckdb.DuckDBPyConnection) -> str:
    return table(con, "sample", data())


def ref() -> pl.DataFrame:
    return pl.from_arrow(data())


def same_rows(got: pa.Table, want: pl.DataFrame) -> None:
    """Equal as multisets of rows (SQL keeps no row order), NaN equal to NaN."""
    g = pl.from_arrow(got)
    assert g.columns == want.columns
    assert g.schema == want.schema, f"{g.schema} != {want.schema}"
    key = [c for c in g.columns if g[c].dtype != pl.Null]
    assert g.sort(key, nulls_last=True).equals(want.sort(key, nulls_last=True), null_equal=True)


# ----------------------------------------------------------------------------------------------
# Each kind against Polars


def test_select_keeps_the_chosen_columns_in_the_chosen_order(con, src):
    out, compiled, _ = run(con, [R.Step("select", {"columns": [QUOTE, "amount", "id"]})], src)
    same_rows(out, ref().select(QUOTE, "amount", "id"))
    assert compiled.steps[0].description == 'keep only quo"te, amount, id'
    snapshot("columns_select", compiled.sql)


def test_drop_removes_the_chosen_columns(con, src):
    out, compiled, _ = run(con, [R.Step("drop", {"columns": ["ts", UNICODE]})], src)
    same_rows(out, ref().drop("ts", UNICODE))
    snapshot("columns_drop", compiled.sql)


def test_rename_keeps_the_position_and_the_values(con, src):
    out, compiled, _ = run(con, [R.Step("rename", {"column": SPACE, "to": 'new "name" ✓'})], src)
    same_rows(out, ref().rename({SPACE: 'new "name" ✓'}))
    assert out.column_names.index('new "name" ✓') == ref().columns.index(SPACE)
    snapshot("columns_rename", compiled.sql)


def test_cast_strict_and_lenient(con, src):
    steps = [R.Step("cast", {"columns": ["id", QUOTE], "to": "VARCHAR"}),
             R.Step("cast", {"columns": ["numbers", "country"], "to": "DOUBLE", "lenient": True})]
    out, compiled, _ = run(con, steps, src)
    want = ref().with_columns(pl.col("id", QUOTE).cast(pl.Utf8),
                              pl.col("numbers", "country").cast(pl.Float64, strict=False))
    same_rows(out, want)
    assert pl.from_arrow(out)["numbers"].null_count() > ref()["numbers"].null_count()  # "x" became missing
    assert compiled.steps[1].description == ("cast numbers, country to DOUBLE "
                                             "(values that do not convert become missing)")
    snapshot("columns_cast", compiled.sql)


def test_a_strict_cast_compiles_but_fails_on_a_value_that_does_not_convert(con, src):
    _, compiled, _ = run(con, [R.Step("cast", {"columns": ["id"], "to": "VARCHAR"})], src)  # fine
    recipe = R.Recipe((R.Step("cast", {"columns": ["numbers"], "to": "DOUBLE"}),))
    compiled = R.compile_recipe(con, recipe, R.source_sql(src))
    with pytest.raises(duckdb.ConversionException, match="'x'"):
        con.sql(compiled.sql, params=compiled.params).fetchall()


FILTERS = [
    ("amount", ">", 40, pl.col("amount") > 40),
    ("amount", "<=", 12.5, pl.col("amount") <= 12.5),
    ("amount", "!=", 3, pl.col("amount") != 3),
    ("country", "=", "日本", pl.col("country") == "日本"),
    ("country", ">=", "FR", pl.col("country") >= "FR"),
    ("numbers", "contains", "5", pl.col("numbers").str.contains("5", literal=True)),
    ("id", "contains", 7, pl.col("id").cast(pl.Utf8).str.contains("7", literal=True)),
    ("country", "is missing", None, pl.col("country").is_null()),
    ("amount", "is not missing", None, pl.col("amount").is_not_null() & ~pl.col("amount").is_nan()),  # NaN: missing
    (QUOTE, "<", 4, pl.col(QUOTE) < 4),
]


@pytest.mark.parametrize("column, op, value, want", FILTERS, ids=[f"{c} {o}" for c, o, _, _ in FILTERS])
def test_filter_form_equals_polars(con, src, column, op, value, want):
    out, compiled, _ = run(con, [R.Step("filter", {"column": column, "op": op, "value": value})], src)
    expected = ref().filter(want)
    assert 0 < expected.height < ref().height
    same_rows(out, expected)
    if (column, op) == ("amount", ">"):
        snapshot("columns_filter", compiled.sql)
        assert compiled.params == {"p0_0": 40}
        assert compiled.steps[0].description == "keep rows where amount > 40"


def test_filter_sql_condition_equals_polars(con, src):
    cond = f"(amount > 10 AND country IN ('US', '日本')) OR \"{SPACE}\" = 0"
    out, compiled, _ = run(con, [R.Step("filter", {"expression": cond})], src)
    want = ref().filter(((pl.col("amount") > 10) & pl.col("country").is_in(["US", "日本"])) | (pl.col(SPACE) == 0))
    same_rows(out, want)
    assert compiled.steps[0].description == f"keep rows where {cond}"
    snapshot("columns_filter_expression", compiled.sql)


def test_deduplicate_on_every_column_and_on_some(con, src):
    out, compiled, _ = run(con, [R.Step("deduplicate", {})], src)
    same_rows(out, ref().unique(maintain_order=True))
    assert out.num_rows == 1000
    snapshot("columns_deduplicate", compiled.sql)

    keys = ["country", SPACE]
    out, compiled, _ = run(con, [R.Step("deduplicate", {"columns": keys})], src)
    got, whole = pl.from_arrow(out), ref()
    assert got.height == whole.select(keys).unique().height
    assert got.select(keys).is_unique().all()
    assert got.join(whole.unique(), on=whole.columns, how="anti", nulls_equal=True).height == 0  # real rows
    assert compiled.steps[0].description == "keep one row per country, has space"
    snapshot("columns_deduplicate_some", compiled.sql)


def test_expression_equals_polars(con, src):
    expr = f'amount * 2 + "{SPACE}" - length(coalesce(country, \'\'))'
    out, compiled, _ = run(con, [R.Step("expression", {"name": "score ✓", "expression": expr})], src)
    want = ref().with_columns((pl.col("amount") * 2 + pl.col(SPACE) - pl.col("country").fill_null("").str.len_chars())
                              .alias("score ✓"))
    same_rows(out, want)
    assert compiled.steps[0].description == f"score ✓ = {expr}"
    snapshot("columns_expression", compiled.sql)


@pytest.mark.parametrize("op, want", [
    ("add", pl.col("amount") + pl.col(SPACE)),
    ("subtract", pl.col("amount") - pl.col(SPACE)),
    ("multiply", pl.col("amount") * pl.col(SPACE)),
    ("ratio", pl.when(pl.col(SPACE) == 0).then(None).otherwise(pl.col("amount") / pl.col(SPACE))),
])
def test_arithmetic_equals_polars(con, src, op, want):
    out, compiled, _ = run(con, [R.Step("arithmetic", {"left": "amount", "op": op, "right": SPACE})], src)
    name = f"amount_{op}_{SPACE}"
    same_rows(out, ref().with_columns(want.alias(name)))
    got = pl.from_arrow(out)[name]
    assert got.is_nan().any() and got.is_infinite().any()
    if op == "ratio":  # no division by zero: a zero denominator gives a missing ratio
        assert got.filter(pl.from_arrow(out)[SPACE] == 0).null_count() == (ref()[SPACE] == 0).sum()
        assert compiled.steps[0].description == f"{name} = amount / {SPACE}"
        snapshot("columns_arithmetic", compiled.sql)


def test_arithmetic_on_integers_keeps_integers_and_takes_a_name(con, src):
    out, _, _ = run(con, [R.Step("arithmetic", {"left": "id", "op": "multiply", "right": QUOTE, "name": "product"})],
                    src)
    assert out.schema.field("product").type == pa.int64()
    same_rows(out, ref().with_columns((pl.col("id") * pl.col(QUOTE)).alias("product")))


# ----------------------------------------------------------------------------------------------
# A whole recipe: one query, its inlined text, JSON


CHAIN = [
    R.Step("drop", {"columns": ["ts"]}, name="no time"),
    R.Step("rename", {"column": UNICODE, "to": "u"}),
    R.Step("cast", {"columns": ["numbers"], "to": "DOUBLE", "lenient": True}),
    R.Step("filter", {"column": "country", "op": "!=", "value": "DE"}),
    R.Step("filter", {"column": "numbers", "op": ">", "value": 2.5}),
    R.Step("expression", {"name": "half", "expression": "numbers / 2"}),
    R.Step("arithmetic", {"left": "half", "op": "ratio", "right": "u", "name": "r"}),
    R.Step("deduplicate", {}),
    R.Step("select", {"columns": ["id", "country", "numbers", "half", "r", "amount"]}),
]
FITTED = R.Step("impute", {"columns": ["amount"], "strategy": "median", "indicator": True})  # a stateful step


def chain_ref() -> pl.DataFrame:
    d = (ref().drop("ts").rename({UNICODE: "u"}).with_columns(pl.col("numbers").cast(pl.Float64, strict=False))
         .filter(pl.col("country") != "DE").filter(pl.col("numbers") > 2.5)
         .with_columns((pl.col("numbers") / 2).alias("half")))
    d = d.with_columns(pl.when(pl.col("u") == 0).then(None).otherwise(pl.col("half") / pl.col("u")).alias("r"))
    return d.unique().select("id", "country", "numbers", "half", "r", "amount")


def test_a_recipe_is_one_query_whose_inlined_text_gives_the_same_rows(con, src):
    out, compiled, recipe = run(con, CHAIN, src)
    assert len(duckdb.extract_statements(compiled.sql)) == 1 and compiled.sql.startswith("WITH s0 AS (")
    assert [s.columns[-1].name for s in compiled.steps][5:7] == ["half", "r"]
    assert compiled.params == {"p3_0": "DE", "p4_0": 2.5}
    text = compiled.inline()
    assert "$p" not in text and "'DE'" in text and "2.5::DOUBLE" in text
    inlined = con.sql(text).to_arrow_table()
    same_rows(inlined, pl.from_arrow(out))
    same_rows(out, chain_ref())
    snapshot("columns_chain", compiled.sql)
    snapshot("columns_chain_inline", text)


def test_compiling_part_of_a_recipe(con, src):
    recipe = R.Recipe(tuple(CHAIN))
    first = R.compile_recipe(con, recipe, R.source_sql(src), upto=2)
    assert [c.name for c in first.columns] == ["u" if c == UNICODE else c for c in ref().columns if c != "ts"]
    assert len(first.steps) == 2 and first.sql.endswith("SELECT * FROM s2")
    assert R.compile_recipe(con, recipe, R.source_sql(src), upto=0).sql == 'WITH s0 AS (SELECT * FROM "sample") ' \
                                                                            "SELECT * FROM s0"


def test_a_json_round_trip_keeps_everything(con, src):
    _, _, recipe = run(con, [*CHAIN[:7], FITTED, *CHAIN[7:]], src)
    recipe = R.Recipe(steps=recipe.steps, name="spend ✓ 'v1'", fitted_on={"dataset": "sample", "where": "id < 5"})
    text = recipe.dumps()
    doc = json.loads(text)
    assert doc["format"] == "quarry.recipe" and doc["version"] == 1 and "✓" in text  # readable unicode
    again = R.loads(text)
    assert again == recipe and again.dumps() == text
    assert again.steps[0].name == "no time" and again.steps[7].fitted == recipe.steps[7].fitted and again.fitted
    a, b = R.compile_recipe(con, recipe, R.source_sql(src)), R.compile_recipe(con, again, R.source_sql(src))
    assert (a.sql, a.params) == (b.sql, b.params)


def test_awkward_column_names_go_through_every_kind(con, src):
    steps = [R.Step("select", {"columns": ["id", *WEIRD]}),
             R.Step("rename", {"column": QUOTE, "to": "it's \"x\""}),
             R.Step("cast", {"columns": ["semi;colon"], "to": "DOUBLE"}),
             R.Step("filter", {"column": "Mixed Case", "op": ">", "value": 2}),
             R.Step("filter", {"expression": f'"{SPACE}" <> 1 AND "select" >= 0'}),
             R.Step("expression", {"name": "ünï ✓", "expression": f'"{UNICODE}" + "it\'s ""x"""'}),
             R.Step("arithmetic", {"left": "semi;colon", "op": "subtract", "right": "select"}),
             R.Step("deduplicate", {"columns": ["it's \"x\"", "select"]}),
             R.Step("drop", {"columns": ["id"]})]
    out, compiled, _ = run(con, steps, src)
    d = (ref().select("id", *WEIRD).rename({QUOTE: "it's \"x\""}).with_columns(pl.col("semi;colon").cast(pl.Float64))
         .filter(pl.col("Mixed Case") > 2).filter((pl.col(SPACE) != 1) & (pl.col("select") >= 0))
         .with_columns((pl.col(UNICODE) + pl.col("it's \"x\"")).alias("ünï ✓"),
                       (pl.col("semi;colon") - pl.col("select")).alias("semi;colon_subtract_select")))
    got = pl.from_arrow(out)
    assert got.columns == [*[c for c in d.columns if c != "id"]]
    assert got.height == d.select("it's \"x\"", "select").unique().height
    assert got.join(d.drop("id"), on=got.columns, how="anti").height == 0
    assert con.sql(compiled.inline()).to_arrow_table().num_rows == out.num_rows


def test_every_kind_declares_readable_parameters():
    for name, k in R.kinds().items():
        assert k.kind == name and k.label and k.label[0].isupper() and k.family, name
        for p in k.params:
            assert p.type in R.PARAM_TYPES and p.label and p.label[0].isupper(), (name, p.name)
            if p.type == "choice":
                assert p.choices and (p.default is None or p.default in p.choices), (name, p.name)
        assert len({p.name for p in k.params}) == len(k.params), name
    assert {"select", "drop", "rename", "cast", "filter", "deduplicate", "expression", "arithmetic", "date_parts",
            "days_since", "cyclical", "group_aggregate", "lag", "rolling"} <= set(R.kinds())


# ----------------------------------------------------------------------------------------------
# Bad recipes: a RecipeError that names the step


BAD = [
    ("unknown kind", [R.Step("drop", {"columns": ["id"]}), R.Step("frobnicate", {})],
     "Step 2 (frobnicate): no compile rule for step kind 'frobnicate'."),
    ("column dropped earlier", [R.Step("drop", {"columns": ["amount"]}), R.Step("select", {"columns": ["id", "amount"]},
                                                                                name="keep")],
     "Step 2 'keep' (select): Columns to keep names the column 'amount', which does not exist at this step."),
    ("arithmetic on text", [R.Step("arithmetic", {"left": "amount", "op": "add", "right": "country"})],
     "Step 1 (arithmetic): Second column needs integer or float or decimal columns; 'country' is VARCHAR."),
    ("unknown parameter", [R.Step("drop", {"columns": ["id"], "colums": ["x"]})],
     "Step 1 (drop): unknown parameter(s) colums."),
    ("missing parameter", [R.Step("rename", {"column": "id"})], "Step 1 (rename): New name is required."),
    ("bad choice", [R.Step("cast", {"columns": ["id"], "to": "TEXT"})],
     "Step 1 (cast): New type must be one of DOUBLE, BIGINT, INTEGER, VARCHAR, BOOLEAN, DATE, TIMESTAMP. Got 'TEXT'."),
    ("reads a file", [R.Step("expression", {"name": "x", "expression": "read_parquet('/etc/passwd')"})],
     "Step 1 (expression): SQL expression: the function read_parquet() is not allowed in an expression."),
    ("reads a file in a filter", [R.Step("filter", {"expression": "id IN (SELECT * FROM read_csv('/etc/passwd'))"})],
     "Step 1 (filter): Or an SQL condition: subqueries are not allowed in an expression."),
    ("second statement", [R.Step("expression", {"name": "x", "expression": "1; DROP TABLE x"})],
     "Step 1 (expression): SQL expression: the expression does not parse"),
    ("comment", [R.Step("filter", {"expression": "id > 1 -- and more"})],
     "Step 1 (filter): Or an SQL condition: the expression does not parse"),
    ("quoted settings function", [R.Step("expression", {"name": "x",
                                                        "expression": "\"current_setting\"('temp_directory')"})],
     "Step 1 (expression): SQL expression: the function current_setting() is not allowed in an expression."),
    ("qualified settings function", [R.Step("expression", {"name": "x",
                                                           "expression": "main.current_setting('temp_directory')"})],
     "Step 1 (expression): SQL expression: the function current_setting() is not allowed in an expression."),
    ("star", [R.Step("expression", {"name": "x", "expression": "*"})],
     "Step 1 (expression): SQL expression: '*' and COLUMNS(...) stand for many columns"),
    ("columns star", [R.Step("expression", {"name": "x", "expression": "COLUMNS(*)"})],
     "Step 1 (expression): SQL expression: '*' and COLUMNS(...) stand for many columns"),
    ("aggregate", [R.Step("expression", {"name": "x", "expression": "sum(id) OVER ()"})],
     "Step 1 (expression): SQL expression: aggregate and window functions are not allowed"),
    ("random", [R.Step("filter", {"expression": "random() < 0.5"})],
     "Step 1 (filter): Or an SQL condition: the function random() is not allowed in an expression."),
    ("subquery", [R.Step("expression", {"name": "x", "expression": "(SELECT max(id) FROM sample)"})],
     "Step 1 (expression): SQL expression: subqueries are not allowed in an expression."),
    ("subquery in a filter", [R.Step("filter", {"expression": "EXISTS (SELECT 1)"})],
     "Step 1 (filter): Or an SQL condition: subqueries are not allowed in an expression."),
    ("does not parse", [R.Step("expression", {"name": "x", "expression": "amount * (2"})],
     "Step 1 (expression): SQL expression: the expression does not parse"),
    ("unknown column in an expression", [R.Step("drop", {"columns": ["id"]}),
                                         R.Step("expression", {"name": "x", "expression": "id + 1"})],
     "Step 2 (expression) does not compile: Binder Error: Referenced column \"id\" not found"),
    ("name taken", [R.Step("expression", {"name": "amount", "expression": "1"})],
     "Step 1 (expression): a column named 'amount' already exists."),
    ("drop everything", [R.Step("drop", {"columns": ref().columns})], "Step 1 (drop): it would drop every column."),
    ("filter with nothing", [R.Step("filter", {})],
     "Step 1 (filter): needs either an SQL condition or a column, an operator and a value."),
    ("wrong type of value", [R.Step("cast", {"columns": "id", "to": "DOUBLE"})],
     "Step 1 (cast): Columns must be a list of column names."),
]


@pytest.mark.parametrize("steps, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_recipe_says_which_step_and_why(con, src, steps, message):
    with pytest.raises(R.RecipeError) as err:
        run(con, steps, src)
    assert err.value.message.startswith(message), err.value.message
    assert err.value.hint


LOADS = [
    ("malformed JSON", '{"format": "quarry.recipe", "steps": [', "The recipe is not valid JSON: "),
    ("not a recipe", '{"steps": []}', "This is not a Quarry recipe"),
    ("a list", "[1, 2]", "This is not a Quarry recipe"),
    ("wrong version", '{"format": "quarry.recipe", "version": 2, "steps": []}',
     "Recipe format version 2 is not supported; this Quarry reads version 1."),
    ("no version", '{"format": "quarry.recipe", "steps": []}', "Recipe format version None is not supported"),
    ("no steps", '{"format": "quarry.recipe", "version": 1}', "The recipe has no list of steps."),
    ("malformed step", '{"format": "quarry.recipe", "version": 1, "steps": [{"kind": "drop", "params": {}}, '
                       '{"params": {}}]}', 'Step 2 is malformed: it needs a "kind" and a "params" object.'),
    ("params not an object", '{"format": "quarry.recipe", "version": 1, "steps": [{"kind": "drop", "params": []}]}',
     "Step 1 is malformed"),
    ("unknown kind", '{"format": "quarry.recipe", "version": 1, "steps": [{"kind": "pivot"}]}',
     "Step 1 (pivot): no compile rule for step kind 'pivot'."),
]


@pytest.mark.parametrize("text, message", [b[1:] for b in LOADS], ids=[b[0] for b in LOADS])
def test_reading_a_bad_recipe_says_what_is_wrong(text, message):
    with pytest.raises(R.RecipeError) as err:
        R.loads(text)
    assert err.value.message.startswith(message), err.value.message
    assert err.value.hint


def test_an_unfitted_stateful_step_is_refused_until_fitted(con, src):
    recipe = R.Recipe((R.Step("drop", {"columns": ["ts"]}), R.Step("impute", {"columns": ["amount"]}, name="fill")))
    assert not recipe.fitted
    with pytest.raises(R.RecipeError, match="Step 2 'fill' \\(impute\\) is not fitted yet."):
        R.compile_recipe(con, recipe, R.source_sql(src))
    fitted = R.fit(con, recipe, src)
    assert fitted.fitted and fitted.fitted_on == {"dataset": "sample", "where": None}
    assert math.isclose(fitted.steps[1].fitted["values"]["amount"],
                        float(np.nanmedian(ref()["amount"].fill_nan(None).drop_nulls().to_numpy())))


def test_an_expression_cannot_smuggle_in_a_second_column(con, src):
    with pytest.raises(R.RecipeError, match="not a single expression"):
        run(con, [R.Step("expression", {"name": "x", "expression": "1) AS smuggled, (2"})], src)
