"""Symbolic links in the data roots: a link that leads outside is refused by Quarry at registration and by
DuckDB itself (DuckDB 2.0 checks allowed_directories against where a link leads, not only its path); a link
that stays inside is read like any file. The README's "Limits" section says the same."""
from __future__ import annotations

import duckdb
import pytest

from core.data import catalog as cat
from core.data.engine import translate
from core.errors import PathError, QuarryError, QueryRefused
from tests.conftest import sample_table, write_parquet


@pytest.fixture
def links(root, tmp_path):
    """root/link.parquet -> a file outside the roots; root/linked -> a folder outside; the outside file."""
    outside = write_parquet(tmp_path / "outside" / "secret.parquet", sample_table(3))
    (tmp_path / "outside" / "secret.txt").write_text("secret\n")
    (root / "link.parquet").symlink_to(outside)
    (root / "linked").symlink_to(outside.parent, target_is_directory=True)
    return outside


@pytest.mark.parametrize("text", ["link.parquet", "linked", "linked/secret.parquet", "*.parquet"])
def test_registering_through_a_link_out_of_the_roots_is_refused(con, catalog, root, links, text):
    with pytest.raises(PathError, match="is outside the data roots"):
        cat.register(con, catalog, text)
    assert catalog.names() == []


def test_a_folder_holding_a_link_out_of_the_roots_is_refused(con, catalog, root, links):
    write_parquet(root / "parts" / "a.parquet", sample_table(3))
    (root / "parts" / "b.parquet").symlink_to(links)
    with pytest.raises(QuarryError, match="outside the data roots"):
        cat.register(con, catalog, "parts")
    assert catalog.names() == []


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_parquet('{root}/link.parquet')",
    "SELECT * FROM read_parquet('{root}/linked/secret.parquet')",
    "SELECT * FROM read_parquet('{root}/linked/*.parquet')",
    "SELECT * FROM read_parquet('{root}/**/*.parquet')",  # one link among the matches refuses the whole glob
    "SELECT * FROM read_text('{root}/linked/secret.txt')",
])
def test_reading_through_a_link_out_of_the_roots_is_refused_by_duckdb(con, root, links, sql):
    """Quarry's connection (engine.connect), whatever checks run before it: DuckDB refuses by where a link leads."""
    with pytest.raises(duckdb.PermissionException) as exc:
        con.execute(sql.format(root=root)).fetchall()
    refused = translate(exc.value, "The query")
    assert isinstance(refused, QueryRefused) and "outside the data roots" in refused.message


def test_a_link_that_stays_inside_the_roots_is_read(con, catalog, root, sample):
    (root / "alias.parquet").symlink_to(sample)
    assert con.execute(f"SELECT count(*) FROM read_parquet('{root / 'alias.parquet'}')").fetchone() == (1000,)
    assert cat.register(con, catalog, "alias.parquet").source == str(sample)  # registered where it leads
