"""Dataset catalog: every source kind registers; every bad input gets a clear message and changes nothing."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from core.data import catalog as cat
from core.data import engine, sandbox, sources
from core.errors import DatasetError, PathError, QuarryError
from tests.conftest import sample_table, write_parquet


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_register_file_and_describe(con, catalog, settings, sample):
    d = cat.register(con, catalog, str(sample))
    assert (d.name, d.format, d.hive, d.source) == ("sample", "parquet", False, str(sample))
    info = cat.describe(con, d, settings)
    assert info.rows == 1000
    assert [c.name for c in info.columns] == sample_table().column_names
    assert dict((c.name, c.type) for c in info.columns)["ts"] == "TIMESTAMP"
    assert (info.files, info.bytes, info.partitions) == (1, sample.stat().st_size, ())


def test_relative_path_is_found_under_a_data_root(con, catalog, sample, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the data root: the path is tried against the roots next
    assert cat.register(con, catalog, "sample.parquet").source == str(sample)


def test_folder_glob_hive_and_csv(con, catalog, settings, root):
    table = sample_table(300)
    for i in range(3):
        write_parquet(root / "folder" / f"part-{i}.parquet", table.slice(i * 100, 100))
    for year in (2023, 2024):
        for month in ("01", "02"):
            write_parquet(root / "sales" / f"year={year}" / f"month={month}" / "data.parquet", table.slice(0, 10))
    (root / "csv").mkdir()
    pacsv.write_csv(pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}), root / "csv" / "small.csv")

    folder = cat.register(con, catalog, "folder")
    assert cat.describe(con, folder, settings).rows == 300
    glob = cat.register(con, catalog, str(root / "folder" / "part-[01].parquet"), name="two_parts")
    assert cat.describe(con, glob, settings).files == 2
    assert cat.describe(con, glob, settings).rows == 200
    hive = cat.register(con, catalog, "sales")
    info = cat.describe(con, hive, settings)
    assert hive.hive and info.rows == 40 and info.files == 4
    assert info.partitions == (sources.Partition("year", ("2023", "2024")), sources.Partition("month", ("01", "02")))
    assert {"year", "month"} <= {c.name for c in info.columns}
    csv = cat.register(con, catalog, "csv/small.csv")
    assert csv.format == "csv" and cat.describe(con, csv, settings).rows == 3
    assert catalog.names() == ["folder", "sales", "small", "two_parts"]


def test_catalog_persists_across_restarts(settings, sample):
    first = engine.connect(settings)
    cat.register(first, cat.Catalog(settings), str(sample), name="kept")
    first.close()
    again = engine.connect(settings)  # a new process: an empty DuckDB, the catalog file on disk
    catalog = cat.Catalog(settings)
    assert catalog.names() == ["kept"]
    cat.sync_views(again, catalog.list())
    assert again.execute('SELECT count(*) FROM "kept"').fetchone()[0] == 1000


def test_registering_the_same_file_twice_is_idempotent(con, catalog, sample):
    assert cat.register(con, catalog, str(sample)) == cat.register(con, catalog, str(sample))
    assert catalog.names() == ["sample"]


def test_same_default_name_for_another_file_gets_a_suffix(con, catalog, root, sample):
    other = write_parquet(root / "other" / "sample.parquet", sample_table(5))
    assert cat.register(con, catalog, str(sample)).name == "sample"
    assert cat.register(con, catalog, str(other)).name == "sample_2"


@pytest.mark.parametrize(("text", "expected"), [
    ("demo/My Flights.parquet", "my_flights"),
    ("2024.parquet", "d_2024"),
    ("sales/", "sales"),
    ("logs/**/*.parquet", "logs"),
    ("x/Ünï code.csv.gz", "n_code"),
])
def test_default_name(text, expected):
    assert cat.default_name(text) == expected


def _bad_files(root: Path, tmp_path: Path) -> dict[str, Path]:
    good = write_parquet(root / "good.parquet", sample_table(2000))
    files = {
        "empty": root / "empty.parquet",
        "not_parquet": root / "text.parquet",
        "truncated": root / "truncated.parquet",
        "wrong_ext": root / "table.xlsx",
        "empty_csv": root / "empty.csv",
    }
    files["empty"].write_bytes(b"")
    files["not_parquet"].write_text("id,amount\n1,2\n")
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["wrong_ext"].write_bytes(b"PK\x03\x04 not really")
    files["empty_csv"].write_bytes(b"")
    outside = tmp_path / "outside.parquet"
    write_parquet(outside, sample_table(3))
    files["outside"] = outside
    (root / "link.parquet").symlink_to(outside)
    files["symlink_outside"] = root / "link.parquet"
    (root / "empty_folder").mkdir()
    files["empty_folder"] = root / "empty_folder"
    return files


@pytest.mark.parametrize(("case", "error", "words"), [
    ("empty", DatasetError, "is empty (0 bytes)"),
    ("not_parquet", DatasetError, "is not a Parquet file"),
    ("truncated", DatasetError, "truncated or unfinished Parquet file"),
    ("wrong_ext", DatasetError, "is not a Parquet or CSV file"),
    ("empty_csv", DatasetError, "is empty (0 bytes)"),
    ("outside", PathError, "is outside the data roots"),
    ("symlink_outside", PathError, "is outside the data roots"),
    ("empty_folder", DatasetError, "holds no Parquet or CSV files"),
])
def test_bad_input_is_refused_clearly_and_changes_nothing(con, catalog, root, tmp_path, case, error, words):
    files = _bad_files(root, tmp_path)
    before = {p: digest(p) for p in files.values() if p.is_file()}
    with pytest.raises(error) as exc:
        cat.register(con, catalog, str(files[case]))
    assert words in exc.value.message
    assert exc.value.hint  # always says what to do
    assert catalog.names() == []
    assert {p: digest(p) for p in before} == before  # the user's files are never modified


@pytest.mark.parametrize(("text", "words"), [
    ("nowhere.parquet", "No file or folder at nowhere.parquet"),
    ("nothing/*.parquet", "No files match"),
    ("", "No path given"),
])
def test_missing_paths(con, catalog, text, words):
    with pytest.raises(PathError, match=words.replace("*", r"\*").replace(".", r"\.")):
        cat.register(con, catalog, text)


def test_glob_reaching_outside_the_roots_is_refused(con, catalog, tmp_path, root):
    write_parquet(tmp_path / "elsewhere" / "x.parquet", sample_table(3))
    with pytest.raises(PathError, match="outside the data roots"):
        cat.register(con, catalog, str(tmp_path / "elsewhere" / "*.parquet"))


@pytest.mark.parametrize("name", ["1abc", "has space", "semi;colon", "x" * 64, 'quo"te', ""])
def test_bad_names(con, catalog, sample, name):
    with pytest.raises(DatasetError, match="cannot be a dataset name"):
        cat.register(con, catalog, str(sample), name=name or "''")


def test_name_clash_needs_replace(con, catalog, root, sample):
    other = write_parquet(root / "b.parquet", sample_table(7))
    cat.register(con, catalog, str(sample), name="t")
    with pytest.raises(DatasetError, match="already registered"):
        cat.register(con, catalog, str(other), name="t")
    replaced = cat.register(con, catalog, str(other), name="t", replace=True)
    assert replaced.source == str(other)
    assert con.execute('SELECT count(*) FROM "t"').fetchone()[0] == 7


def test_zero_rows_registers_and_says_so(con, catalog, settings, root):
    path = write_parquet(root / "none.parquet", sample_table(10).slice(0, 0))
    d = cat.register(con, catalog, str(path))
    assert cat.describe(con, d, settings).rows == 0
    page = sandbox.preview(catalog, d.name)
    assert (page.total_rows, page.table.num_rows, page.caption()) == (0, 0, "No rows match.")


def test_file_deleted_after_registration(con, catalog, settings, root, sample):
    gone = write_parquet(root / "gone.parquet", sample_table(3))
    d = cat.register(con, catalog, str(gone))
    cat.register(con, catalog, str(sample))
    gone.unlink()
    with pytest.raises(DatasetError, match="The files of dataset 'gone' are gone: No file or folder at"):
        cat.describe(con, d, settings)
    cat.sync_views(con, catalog.list())  # the missing file does not break the others
    assert cat.describe(con, catalog.get("sample"), settings).rows == 1000


def test_remove_forgets_but_keeps_files(con, catalog, sample):
    before = digest(sample)
    cat.register(con, catalog, str(sample))
    catalog.remove("sample")
    assert catalog.names() == [] and digest(sample) == before
    with pytest.raises(DatasetError, match="no dataset named 'sample'"):
        catalog.remove("sample")


def test_damaged_catalog_file(catalog, settings):
    settings.workspace.mkdir(parents=True, exist_ok=True)
    catalog.path.write_text("{ not json")
    with pytest.raises(QuarryError, match="is damaged"):
        catalog.list()


def test_catalog_write_is_atomic(con, catalog, sample, monkeypatch):
    cat.register(con, catalog, str(sample), name="first")
    original = catalog.path.read_text()

    def crash(self, *_a, **_k):
        self.open("w").write("half a catalog")  # the disk fills up part way through
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", crash)  # every writer goes through core.atomic, which writes this way
    with pytest.raises(cat.CatalogError, match=r"could not save the catalog .* \(disk full\); it is as it was"):
        cat.register(con, catalog, str(sample), name="second")
    monkeypatch.undo()
    assert catalog.path.read_text() == original
    assert not [p for p in catalog.path.parent.iterdir() if p.name.startswith(".catalog.json.")]


def test_uploads_never_overwrite_and_bad_uploads_are_not_kept(con, catalog, settings, sample):
    data = sample.read_bytes()
    first = cat.register_upload(con, catalog, "My File.parquet", data)
    second = cat.register_upload(con, catalog, "My File.parquet", data)
    assert first.source != second.source
    assert sorted(p.name for p in settings.uploads_dir.iterdir()) == ["My_File.parquet", "My_File_2.parquet"]
    with pytest.raises(DatasetError, match="is not a Parquet file"):
        cat.register_upload(con, catalog, "broken.parquet", b"this is text")
    assert not (settings.uploads_dir / "broken.parquet").exists()
    with pytest.raises(DatasetError, match="not a Parquet or CSV"):
        sources.save_upload(settings, "../../etc/evil.sh", b"x")


def test_resolve_takes_a_name_or_a_path(con, catalog, sample, root):
    registered = cat.register(con, catalog, str(sample), name="named")
    assert cat.resolve(con, catalog, "named") == registered
    assert cat.resolve(con, catalog, str(sample)) == registered  # same file: the registered entry
    other = write_parquet(root / "adhoc.parquet", sample_table(4))
    adhoc = cat.resolve(con, catalog, str(other))
    assert adhoc.name == "adhoc" and "adhoc" not in catalog.names()  # on the fly, not saved
    assert con.execute('SELECT count(*) FROM "adhoc"').fetchone()[0] == 4


def test_discover_lists_files_and_partitioned_folders(settings, root, sample):
    write_parquet(root / "sales" / "year=2024" / "a.parquet", sample_table(2))
    write_parquet(root / "workspace" / "datasets" / "internal.parquet", sample_table(2))
    (root / "notes.txt").write_text("hi")
    found = sources.discover(settings)
    assert str(sample) in found and str(root / "sales") in found
    assert not any("workspace" in f or f.endswith(".txt") for f in found)


def test_data_roots_setting_accepts_several_roots(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    write_parquet(b / "t.parquet", sample_table(3))
    a.mkdir()
    monkeypatch.setenv("QUARRY_DATA_ROOTS", os.pathsep.join([str(a), str(b)]))
    monkeypatch.setenv("QUARRY_WORKSPACE", str(tmp_path / "ws"))
    from core.settings import load_settings

    s = load_settings()
    con = engine.connect(s)
    d = cat.register(con, cat.Catalog(s), "t.parquet")
    assert d.source == str(b / "t.parquet")


def test_sessions_syncing_views_at_once_do_not_collide(con, catalog, settings, root):
    """Users share one DuckDB: several sessions may bring the same new views in step together."""
    import threading

    for i in range(20):
        write_parquet(root / f"t{i}.parquet", sample_table(i + 1))
        catalog.add(cat.inspect_source(con, f"t{i}.parquet", settings, f"t{i}"))
    errors: list[str] = []

    def session() -> None:
        try:
            for _ in range(5):
                cat.sync_views(con, catalog.list())
        except Exception as exc:  # noqa: BLE001 - the test reports whatever escapes
            errors.append(repr(exc))

    threads = [threading.Thread(target=session) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert con.execute('SELECT count(*) FROM "t19"').fetchone()[0] == 20


# ----------------------------------------------------------------------------------------------
# A catalog.json Quarry cannot use: said clearly, never overwritten or repaired


GOOD_ENTRY = '{"name": "a", "source": "/data/a.parquet", "format": "parquet"}'


@pytest.mark.parametrize(("content", "words"), [
    (None, "is a folder, not a file"),
    (b"", "is damaged (it is empty)"),
    (b'{"version": 1, "datasets": [{"name": "a", "sou', "is damaged (not valid JSON: Unterminated string"),
    (b"{ not json", "is damaged (not valid JSON"),
    (b"\xff\xfe\x00garbage", "is damaged (not valid JSON"),
    (b"[" * 100_000, "is damaged (not valid JSON"),
    (b"[]", "is damaged (it holds a list, not an object with a 'datasets' list)"),
    (b'{"version": 1}', "is damaged (it has no 'datasets' list)"),
    (b'{"datasets": {}}', "is damaged ('datasets' is an object, not a list)"),
    (b'{"version": "1", "datasets": []}', "is damaged ('version' is text, not a number)"),
    (b'{"version": 99, "datasets": []}', "is damaged (it was written by a newer Quarry (catalog version 99"),
    (b'{"datasets": [1]}', "is damaged (dataset 1 of 1 is a number, not an object)"),
    (b'{"datasets": [{"source": "/data/a.parquet", "format": "parquet"}]}', "dataset 1 of 1 has no 'name'"),
    (b'{"datasets": [{"name": 5, "source": "/data/a.parquet", "format": "parquet"}]}',
     "dataset 1 of 1: 'name' is a number, not text"),
    (b'{"datasets": [{"name": "a", "source": "/data/a.parquet", "format": "parquet", "hive": "yes"}]}',
     "dataset 1 of 1: 'hive' is text, not true/false"),
    (b'{"datasets": [{"name": "a b; DROP", "source": "/data/a.parquet", "format": "parquet"}]}',
     "dataset 1 of 1: 'a b; DROP' is not a dataset name"),
    (b'{"datasets": [{"name": "a", "source": "/data/a.xlsx", "format": "xlsx"}]}',
     "dataset 1 of 1 (a): format 'xlsx' is not 'parquet' or 'csv'"),
    (b'{"datasets": [{"name": "a", "source": "", "format": "csv"}]}', "dataset 1 of 1 (a): its source is not a path"),
    (b'{"datasets": [{"name": "a", "source": "/d/a.parquet", "format": "parquet", "colour": "red"}]}',
     "dataset 1 of 1 has an unknown field 'colour'"),
    (f'{{"datasets": [{GOOD_ENTRY}, {GOOD_ENTRY}]}}'.encode(), "is damaged (the name 'a' appears twice)"),
])
def test_an_unusable_catalog_is_refused_clearly_and_left_as_it_is(con, catalog, settings, sample, content, words):
    settings.workspace.mkdir(parents=True, exist_ok=True)
    if content is None:
        catalog.path.mkdir()
    else:
        catalog.path.write_bytes(content)
    for attempt in (catalog.list, lambda: cat.register(con, catalog, str(sample))):
        with pytest.raises(cat.CatalogError) as exc:
            attempt()
        assert exc.value.message.startswith(f"The catalog file {catalog.path} "), exc.value.message
        assert words in exc.value.message
        assert exc.value.hint.startswith("Quarry has not changed it: move it away")
        assert len(exc.value.message) < 400
    assert catalog.path.is_dir() if content is None else catalog.path.read_bytes() == content
    assert not catalog.backup.exists()


def test_an_unreadable_catalog_says_so(catalog, settings, monkeypatch):
    settings.workspace.mkdir(parents=True, exist_ok=True)
    catalog.path.write_text('{"version": 1, "datasets": []}')
    real = Path.read_bytes

    def denied(self):
        if self == catalog.path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(cat.CatalogError) as exc:
        catalog.names()
    assert exc.value.message == f"The catalog file {catalog.path} cannot be read (Permission denied)."
    assert "give the user running Quarry read access to it" in exc.value.hint


def test_a_damaged_catalog_offers_the_copy_quarry_kept(con, catalog, root, sample):
    cat.register(con, catalog, str(sample), name="a")
    cat.register(con, catalog, str(write_parquet(root / "b.parquet", sample_table(3))), name="b")
    good = catalog.path.read_bytes()
    assert catalog.backup.read_bytes() == good  # the last catalog written, kept beside it
    catalog.path.write_bytes(good[: len(good) // 2])  # cut short: a full disk, a bad copy
    with pytest.raises(cat.CatalogError) as exc:
        catalog.list()
    assert f"({len(good) // 2 and 'not valid JSON'}" in exc.value.message
    assert exc.value.hint.endswith(f"the catalog as it last wrote it (2 datasets): copy {catalog.backup} over "
                                   "catalog.json.")
    catalog.path.write_bytes(catalog.backup.read_bytes())
    assert catalog.names() == ["a", "b"]


# ----------------------------------------------------------------------------------------------
# A registered dataset whose files went away: it says so; the others keep working


def _garble(path: Path) -> None:
    """Keep the Parquet markers at both ends, scramble the middle: only DuckDB can tell."""
    data, st = path.read_bytes(), path.stat()
    path.write_bytes(data[:4] + bytes(len(data) - 8) + data[-4:])
    # Written later, as in life: DuckDB keeps a file's footer until its modification time changes.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))


def _delete(path: Path) -> None:
    path.unlink()


def _move(path: Path) -> None:
    path.rename(path.with_name("moved.parquet"))


@pytest.mark.parametrize(("damage", "words"), [
    (_delete, "are gone: No file or folder at {path}"),
    (_move, "are gone: No file or folder at {path}"),
    (lambda p: p.write_bytes(p.read_bytes()[:300]),
     "cannot be read: broken.parquet is a truncated or unfinished Parquet file (its footer is missing)"),
    (lambda p: p.write_text("id,amount\n1,2\n"), "cannot be read: broken.parquet is not a Parquet file"),
    (_garble, "cannot be read: "),
])
def test_a_dataset_whose_files_went_away_says_so_and_the_others_work(con, catalog, settings, root, sample,
                                                                     damage, words):
    broken = write_parquet(root / "broken.parquet", sample_table(50))
    d = cat.register(con, catalog, str(broken))
    cat.register(con, catalog, str(sample))
    damage(broken)
    expected = f"The files of dataset 'broken' {words.format(path=broken)}"
    attempts = [lambda: cat.describe(con, d, settings)]
    if damage in (_delete, _move):  # a fingerprint looks at names, sizes and times, not inside the files
        attempts.append(lambda: cat.fingerprint(d, settings))
    for attempt in attempts:
        with pytest.raises(DatasetError) as exc:
            attempt()
        assert exc.value.message.startswith(expected), exc.value.message
        assert exc.value.hint.startswith("Put them back, or remove 'broken' on the Data page")
    fresh = engine.connect(settings)  # a new process: its views are made from the catalog
    try:
        cat.sync_views(fresh, catalog.list())
        assert cat.describe(fresh, catalog.get("sample"), settings).rows == 1000
        assert fresh.execute('SELECT count(*) FROM "sample"').fetchone()[0] == 1000
    finally:
        fresh.close()


def test_a_folder_dataset_moved_away_says_so(con, catalog, settings, root, sample):
    for part in ("a", "b"):
        write_parquet(root / "parts" / f"{part}.parquet", sample_table(4))
    d = cat.register(con, catalog, "parts")
    (root / "parts").rename(root / "elsewhere")
    with pytest.raises(DatasetError, match=r"The files of dataset 'parts' are gone: No files match .*parts"):
        cat.describe(con, d, settings)


# ----------------------------------------------------------------------------------------------
# Upload names: whatever the browser sends, a safe name in the uploads folder or a clear refusal


def _bytes_for(name: str) -> bytes:
    sink = pa.BufferOutputStream()
    if name.endswith(".csv"):
        pacsv.write_csv(sample_table(5), sink)
    else:
        import pyarrow.parquet as pq

        pq.write_table(sample_table(5), sink)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(("filename", "stored"), [
    ("x" * 300 + ".parquet", "x" * 100 + ".parquet"),
    ("é" * 200 + "data.parquet", "data.parquet"),
    ("../../etc/flights.parquet", "flights.parquet"),
    ("..\\..\\windows\\flights.parquet", "flights.parquet"),
    ("/etc/cron.d/flights.parquet", "flights.parquet"),
    ("fli\x00ghts.parquet", "fli_ghts.parquet"),
    ("a\nb\tc\x1b[31m.csv", "a_b_c_31m.csv"),
    ("my.data.v2.CSV", "my_data_v2.csv"),
    ("....parquet", "upload.parquet"),
    (".parquet", "upload.parquet"),
    ("..", None),
    ("CON.parquet", "upload_CON.parquet"),
    ("ｆｌｉｇｈｔｓ．ｐａｒｑｕｅｔ", "flights.parquet"),  # full-width look-alikes, NFKC-folded
    ("a／..／..／b.parquet", "b.parquet"),  # a full-width slash is a slash after folding
    ("ﬁle\u202egnp.parquet", "file_gnp.parquet"),  # ligature, right-to-left override
])
def test_upload_names_become_safe_names_in_the_uploads_folder(con, catalog, settings, root, filename, stored):
    before = sorted(p for p in root.rglob("*") if "workspace" not in p.parts)
    if stored is None:
        with pytest.raises(DatasetError, match="is not a Parquet or CSV file"):
            cat.register_upload(con, catalog, filename, b"x")
        assert sorted(p for p in root.rglob("*") if "workspace" not in p.parts) == before
        return
    d = cat.register_upload(con, catalog, filename, _bytes_for(stored))
    assert Path(d.source) == settings.uploads_dir / stored
    assert [p.name for p in settings.uploads_dir.iterdir()] == [stored]
    after = sorted(p for p in root.rglob("*") if "workspace" not in p.parts)
    assert set(after) - set(before) == {settings.uploads_dir, settings.uploads_dir / stored}
    assert cat.describe(con, d, settings).rows == 5


@pytest.mark.parametrize(("filename", "shown"), [
    ("notes.txt", "'notes.txt' is not a Parquet or CSV file."),
    ("evil\x00\x1b.sh", "'evil??.sh' is not a Parquet or CSV file."),
    ("y" * 300 + ".exe", "'" + "y" * 79 + "…' is not a Parquet or CSV file."),
    ("", "'' is not a Parquet or CSV file."),
])
def test_refused_upload_names_are_shown_short_and_clean(settings, filename, shown):
    with pytest.raises(DatasetError) as exc:
        sources.save_upload(settings, filename, b"x")
    assert exc.value.message == shown


def test_an_upload_that_cannot_be_stored_is_a_clear_error(con, catalog, settings):
    settings.uploads_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.uploads_dir.write_text("a file where the uploads folder should be")
    with pytest.raises(DatasetError) as exc:
        cat.register_upload(con, catalog, "flights.parquet", _bytes_for("flights.parquet"))
    assert exc.value.message == (f"The upload 'flights.parquet' could not be stored in {settings.uploads_dir} "
                                 "(File exists).")
    assert catalog.names() == []
