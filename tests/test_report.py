"""The HTML report: well-formed, self-contained, escaped, bounded in size, and made of aggregates only.

Profiles are computed for real on generated Parquet files; the optional sections get small
duck-typed stand-ins, as core/profile/alerts.py, core/profile/target.py and core/profile/missingness.py only need the
attributes the report reads.
"""
from __future__ import annotations

import enum
import math
import os
import re
from datetime import datetime, timedelta
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest

from core.data import catalog as cat
from core.errors import QuarryError
from core.profile import report
from core.profile.correlate import Correlations
from core.profile.scan import ColumnProfile, Histogram, Profile, TimeCounts, profile_table
from tests.conftest import WEIRD, sample_table, write_parquet

XSS = "<script>alert(1)</script>"
NASTY_VALUES = ["</title><script>alert(2)</script>", 'a"b\'c', "<img src=x onerror=alert(3)>", "日本 ü", "&amp;"]
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr"}
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "nav", "h1", "h2", "h3", "a", "section",
                "div", "span", "p", "b", "table", "tr", "th", "td", "figure", "figcaption", "svg", "g", "rect", "line",
                "text", "footer"}


class Doc(HTMLParser):
    """Parses a document strictly enough: every element closed in order; collects tags, attributes, text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.errors: list[str] = []
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def all_text(self) -> str:
        return "".join(self.text)


def _profile(con, catalog, root: Path, table: pa.Table, name: str = "t") -> Profile:
    path = write_parquet(root / f"{name}.parquet", table)
    cat.register(con, catalog, str(path), name=name, replace=True)
    return profile_table(con, name, exact=True)


def _check_document(html: str) -> Doc:
    """What every report must be: well-formed, no script, nothing fetched, only the tags we write."""
    doc = Doc(html)
    assert doc.errors == []
    assert html.startswith("<!doctype html>")
    low = html.lower()
    assert "<script" not in low and "javascript:" not in low
    assert "http://" not in low and "https://" not in low
    assert "url(" not in low and "@import" not in low
    tags = {t for t, _ in doc.tags}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    for tag, attrs in doc.tags:
        assert "src" not in attrs and not any(k.startswith("on") for k in attrs), (tag, attrs)
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs
    ids = {a["id"] for _, a in doc.tags if "id" in a}
    assert {a["href"][1:] for _, a in doc.tags if "href" in a} <= ids  # every link lands in the document
    return doc


@pytest.fixture
def nasty_table() -> pa.Table:
    t = sample_table()
    t = t.append_column(XSS, t.column("id"))
    return t.append_column("label", pa.array([NASTY_VALUES[i % len(NASTY_VALUES)] for i in range(t.num_rows)]))


def test_sample_report_is_escaped_and_self_contained(con, catalog, root, nasty_table):
    p = _profile(con, catalog, root, nasty_table)
    html = report.profile_html(p, dataset="sample <b>&", max_columns=200)
    doc = _check_document(html)
    text = doc.all_text()
    for c in p.columns:
        assert escape(c.name, quote=True) in html
        assert c.name in text  # round-trips through the parser, unicode and quotes included
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for value in NASTY_VALUES:  # top values of "label", shown as text
        assert value in text
    assert "Profile of sample <b>&" in text
    assert f"{p.rows:,}" in text and "exact" in text and p.notes[0] in text
    assert len([a for t, a in doc.tags if a.get("class") == "col"]) == len(p.columns)
    assert "left out" not in text
    assert len(html) < 200_000


def test_report_holds_no_rows(con, catalog, root):
    """A column of unique secrets: the report may show its count and length, never the values."""
    secrets = [f"secret-{i:04d}-x" for i in range(500)]
    p = _profile(con, catalog, root, pa.table({"token": secrets, "n": list(range(500))}))
    html = report.profile_html(p, dataset="d")
    shown = [s for s in secrets if s in html]
    assert shown == [secrets[0], secrets[-1]]  # min and max are aggregates; top values of unique keys are not drawn


def test_histogram_and_top_values_draw_one_titled_bar_each(con, catalog, root, nasty_table):
    p = _profile(con, catalog, root, nasty_table)
    amount = p.column("amount")
    svg = report.histogram_svg(amount)
    assert svg.count("<rect") == svg.count("<title>") == len(amount.histogram.counts)
    assert f"{amount.histogram.below:,} below" in svg and f"{amount.histogram.above:,} above" in svg
    country = p.column("country")
    svg = report.top_values_svg(country)
    assert svg.count("<rect") == len(country.top) + (1 if country.other else 0)
    assert "日本" in svg and "(other values)" not in svg  # 4 values: nothing else
    assert report.histogram_svg(country) is None and report.over_time_svg(amount) is None


def test_wide_table_is_bounded(con, catalog, root):
    rows, start = 60, datetime(2020, 1, 1)
    cols = {}
    for k in range(1000):
        if k % 4 == 0:
            cols[f"int_{k}"] = pa.array([(i * (k + 1)) % 23 for i in range(rows)], pa.int64())
        elif k % 4 == 1:
            cols[f"float_{k}"] = pa.array([math.sin(i + k) * 1000 for i in range(rows)], pa.float64())
        elif k % 4 == 2:  # long values, repeated: top values with long labels
            cols[f"text_{k}"] = pa.array(["v" * 300 + str(i % 9) for i in range(rows)])
        else:
            cols[f"when_{k}"] = pa.array([start + timedelta(days=i * 37) for i in range(rows)], pa.timestamp("us"))
    p = _profile(con, catalog, root, pa.table(cols), name="wide")
    html = report.profile_html(p, dataset="wide", max_columns=200)
    doc = _check_document(html)
    text = doc.all_text()
    assert len(html.encode()) < 2_000_000
    assert len([a for t, a in doc.tags if a.get("class") == "col"]) == 200
    assert "Details are shown for the first 200 of 1,000 columns; 800 columns left out" in text
    for name in ("int_0", "when_999", "text_998"):  # every column is still in the table
        assert name in text
    assert "v" * (report.MAX_VALUE + 1) not in html  # long values are clipped


def test_zero_rows(con, catalog, root):
    p = _profile(con, catalog, root, sample_table(0), name="empty")
    assert p.rows == 0
    html = report.profile_html(p, dataset="empty")
    text = _check_document(html).all_text()
    assert "No chart for this column" in text
    assert "<rect" not in html
    for name in WEIRD:
        assert name in text


def test_reopened_profile(con, catalog, root, nasty_table):
    """A profile kept in the workspace comes back through JSON: it reports the same, but for times, which
    come back as ISO text ('2024-01-01T00:00:00' rather than '2024-01-01 00:00:00')."""
    p = _profile(con, catalog, root, nasty_table)
    again = Profile.from_json(p.to_json())

    def same(html: str) -> str:
        html = re.sub(r"Generated by Quarry on [^.]*\.", "", html)
        return re.sub(r"(\d{4}-\d\d-\d\d)[T ](\d\d:)", r"\1 \2", html)

    assert same(report.profile_html(again, dataset="d")) == same(report.profile_html(p, dataset="d"))


class Severity(enum.Enum):
    HIGH = "high"
    INFO = "info"


def test_optional_sections(con, catalog, root, nasty_table):
    p = _profile(con, catalog, root, nasty_table)
    alerts = [SimpleNamespace(kind="high_missing", column="amount", severity=Severity.HIGH,
                              message="amount is 5.9% missing <b>"),
              SimpleNamespace(kind="duplicates", column=None, severity="info", message="no duplicate rows"),
              SimpleNamespace(kind="constant", column=XSS, severity="warning", message=f"{XSS} is odd"),
              SimpleNamespace(kind="pair", column=["id", "amount"], severity=None, message="a pair")]
    target = SimpleNamespace(target="amount", task="regression", notes=("Scores on a sample of 1,000 rows.",),
                             features=[SimpleNamespace(feature="country", metric="mutual information", score=0.42),
                                       SimpleNamespace(feature=XSS, metric="|r|", score=0.1),
                                       ("ts", "|r|", None)])
    patterns = SimpleNamespace(patterns=[SimpleNamespace(columns=("amount",), rows=59),
                                         SimpleNamespace(columns=("amount", "country"), rows=6, share=0.006),
                                         SimpleNamespace(columns=(), rows=850)])
    corr = Correlations(method="pearson", columns=("id", XSS, "amount"),
                        matrix=((1.0, 1.0, -0.5), (1.0, 1.0, None), (-0.5, None, 1.0)), sample_rows=1000,
                        total_rows=1000)
    html = report.profile_html(p, dataset="d", alerts=alerts, target=target, patterns=patterns, correlations=corr)
    doc = _check_document(html)
    text = doc.all_text()
    for heading in ("Alerts (4)", "Target analysis", "Missing patterns", "Pearson correlation", "Column details"):
        assert heading in text
    assert "amount is 5.9% missing <b>" in text and "&lt;b&gt;" in html
    assert 'class="sev-high">high<' in html and 'class="sev-warn">warning<' in html
    assert text.index("country") < text.index("mutual information") < text.index("0.42")
    assert "Scores on a sample of 1,000 rows." in text
    assert "amount, country" in text and "(none missing)" in text and "0.6%" in text and "5.9%" in text
    assert "-0.50" in text and "Computed on all 1,000 rows." in text
    assert 'href="#col-1"' in html  # the alert on amount links to its details
    # the per-column copy of an alert sits in that column's section
    section = html[html.index('id="col-1"'):html.index('id="col-2"')]
    assert "high_missing" in section


def test_caps(con, catalog, root):
    p = _profile(con, catalog, root, sample_table(50), name="small")
    alerts = [SimpleNamespace(kind="k", column="id", severity="info", message=f"m{i}")
              for i in range(report.MAX_ALERTS + 5)]
    html = report.profile_html(p, dataset="d", alerts=alerts, max_columns=0)
    text = _check_document(html).all_text()
    assert "5 more alerts not shown" in text
    assert "Details are shown for the first 0 of 10 columns; 10 columns left out" in text

    days = 10_000
    col = ColumnProfile(name="day", type="DATE", kind="temporal", count=days, missing=0, missing_pct=0.0,
                        distinct=days, over_time=TimeCounts("day", tuple(f"d{k}" for k in range(days)), (1,) * days))
    svg = report.over_time_svg(col)
    assert svg.count("<rect") == report.MAX_TIME_BARS and "d0 to d166: 167 rows" in svg
    one = ColumnProfile(name="x", type="BIGINT", kind="integer", count=5, missing=0, missing_pct=0.0, distinct=1,
                        min=7, max=7, histogram=Histogram(edges=(6.5, 7.5), counts=(5,)))
    assert "7: 5 rows" in report.histogram_svg(one)


@pytest.mark.parametrize("bad", [-1, 2.5, "200"])
def test_bad_max_columns(con, catalog, root, bad):
    p = _profile(con, catalog, root, sample_table(10), name="tiny")
    with pytest.raises(QuarryError, match=f"max_columns must be an integer >= 0. Got {re.escape(repr(bad))}"):
        report.profile_html(p, dataset="d", max_columns=bad)


@pytest.mark.browser
def test_opens_offline_in_chromium(con, catalog, root, nasty_table, tmp_path):
    """Opened from disk in a real browser: nothing is fetched, no script runs, the charts are drawn."""
    if os.environ.get("QUARRY_SKIP_BROWSER") == "1":
        pytest.skip("QUARRY_SKIP_BROWSER=1: browser tests skipped")
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("/usr/bin/chromium is missing: install it with `sudo apt-get install -y chromium` "
                    "(or set QUARRY_SKIP_BROWSER=1 to skip browser tests).", pytrace=False)
    from playwright.sync_api import sync_playwright

    p = _profile(con, catalog, root, nasty_table)
    path = tmp_path / "report.html"
    path.write_text(report.profile_html(p, dataset="d"), encoding="utf-8")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            requests, dialogs = [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(path.as_uri())
            assert page.locator("svg rect").count() > 20
            assert page.locator("h3", has_text=XSS).count() == 1  # shown as text
            assert requests == [path.as_uri()] and dialogs == []
        finally:
            browser.close()


def test_sections_from_the_analysis_modules(con, catalog, root, nasty_table):
    """The real results of core.alerts, core.target and core.missingness fit the report's duck typing."""
    from core.profile.alerts import all_alerts
    from core.profile.missingness import missing_patterns
    from core.profile.target import target_relations

    p = _profile(con, catalog, root, nasty_table)
    analysis = target_relations(con, "t", p, "amount")
    patterns = missing_patterns(con, "t", p)
    alerts = all_alerts(p, con)
    html = report.profile_html(p, dataset="t", alerts=alerts, target=analysis, patterns=patterns)
    text = _check_document(html).all_text()
    assert "Target analysis" in text and analysis.features[0].feature in text and analysis.metric in text
    assert "Missing patterns" in text and "Nullity correlation" in text
    assert alerts and alerts[0].message in text
