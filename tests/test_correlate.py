"""Correlations against pandas and scipy computed in memory on the same (small, unsampled) data."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.stats.contingency import association
from streamlit.testing.v1 import AppTest

from core.data import catalog as cat
from core.errors import QuarryError
from core.profile import correlate
from tests.conftest import REPO, write_parquet


@pytest.fixture
def data(con, catalog, root):
    rng = np.random.default_rng(7)
    n = 3000
    x = rng.normal(size=n)
    y = 2 * x + rng.normal(size=n)
    z = np.exp(x) + rng.normal(scale=0.1, size=n)  # monotone in x: Spearman > Pearson
    y[::50] = np.nan
    z[5] = np.inf
    colour = rng.choice(["red", "green", "blue"], n)
    size = np.where(colour == "red", "big", rng.choice(["big", "small"], n))  # tied to colour
    noise = rng.choice(["a", "b"], n)
    table = pa.table({"x": x, "y": y, "z": z, "colour": colour, "size": size, "noise": noise,
                      "many": [f"v{i}" for i in range(n)]})
    cat.register(con, catalog, str(write_parquet(root / "c.parquet", table)), name="c")
    return table.to_pandas()


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_numeric_correlations_equal_pandas(con, data, method):
    r = correlate.correlations(con, "c", ["x", "y", "z"], method)
    want = data[["x", "y", "z"]].replace([np.inf, -np.inf], np.nan).corr(method=method).to_numpy()
    assert (r.sample_rows, r.total_rows, r.sampled) == (3000, 3000, False)
    assert np.allclose(np.array(r.matrix, dtype=float), want)
    assert r.matrix[0][0] == 1.0 and r.matrix[0][1] == pytest.approx(want[0, 1])


def test_spearman_sees_a_monotone_relation_pearson_understates(con, data):
    pearson = correlate.correlations(con, "c", ["x", "z"], "pearson").matrix[0][1]
    spearman = correlate.correlations(con, "c", ["x", "z"], "spearman").matrix[0][1]
    assert spearman > 0.95 > pearson


def test_cramers_v_equals_scipy(con, data):
    r = correlate.correlations(con, "c", ["colour", "size", "noise"], "cramers_v")
    for i, a in enumerate(["colour", "size", "noise"]):
        for j, b in enumerate(["colour", "size", "noise"]):
            want = 1.0 if a == b else association(pd.crosstab(data[a], data[b]).to_numpy(), method="cramer")
            assert r.matrix[i][j] == pytest.approx(want)
    assert r.matrix[0][1] > 0.3 > r.matrix[0][2]


def test_sampling_is_bounded_repeatable_and_said(con, data):
    a = correlate.correlations(con, "c", ["x", "y"], "pearson", rows=500)
    b = correlate.correlations(con, "c", ["x", "y"], "pearson", rows=500)
    assert (a.sample_rows, a.total_rows, a.sampled) == (500, 3000, True)
    assert a.matrix == b.matrix and math.isfinite(a.matrix[0][1])


@pytest.mark.parametrize(("columns", "method", "words"), [
    (["x", "colour"], "pearson", "needs numeric columns; colour is not"),
    (["colour", "many"], "cramers_v", "many has more than 50 distinct values"),
    (["x"], "pearson", "need 2 to 40 columns"),
    (["x", "y"], "kendall", "Unknown correlation method"),
    (["x", "nope"], "pearson", "does not exist"),
])
def test_bad_requests_are_explained(con, data, columns, method, words):
    with pytest.raises(QuarryError, match=words):
        correlate.correlations(con, "c", columns, method)


def test_correlations_tab(settings, data):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/profile.py").run()
    at.button(key="profile_run").click().run()
    assert at.multiselect(key="profile_corr_columns_pearson").value == ["x", "y", "z"]
    assert "Computed on all 3,000 rows." in [c.value for c in at.caption]
    at.radio(key="profile_corr_method").set_value("cramers_v").run()
    assert at.multiselect(key="profile_corr_columns_cramers_v").value == ["colour", "size", "noise"]
    assert not at.exception and not at.error
