"""Where user SQL runs: a child process per query that cannot write files and is stopped at hard limits.

DuckDB's own guide says untrusted SQL needs a separate low-privilege process and application-level
timeouts: an interrupt does not stop binding or constant folding (``SELECT len(range(1e9))``), and
allocations such as ``repeat('x', 4e9)`` are outside DuckDB's memory limit. So every user query (SQL
page, CLI ``sql``, the Data page's filter and previews) runs in a process of its own:

- **A server** (``python -m core.sqlworker``), one per Quarry process, started on first use with
  DuckDB, PyArrow and this module imported. It is single-threaded and only forks: it receives one
  socket per request over a control socket and forks a child to serve it.
- **The child** confines itself before it reads the request: an address-space limit
  (RLIMIT_AS), Landlock (Linux >= 5.13) so it can write no file anywhere except its own spill
  folder and open no network connection, and death with the server. It opens DuckDB with
  ``allowed_directories`` = the data roots and its spill folder, external access off and the
  configuration locked; creates views for the datasets the query names; runs one operation from
  a fixed table (``OPS``); streams the answer (a JSON header, then Arrow IPC) and exits.
- **The caller** (``call``) watches the child: past the time limit or past the memory cap (its
  resident memory, polled every 20 ms) it kills it and raises a QueryError that names the limit
  and the setting. The caller's own memory holds only the answer, which is bounded (a page, a
  capped download) or streamed to a file in batches.

Spill files go to ``<QUARRY_TEMP_DIR>/quarry-spill-<random>/<child pid>/``, a folder Quarry makes
for itself (mode 0700) and removes; user SQL cannot read the rest of QUARRY_TEMP_DIR.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from core import errors
from core.data.engine import spill_root
from core.errors import QueryError, QueryTimeout
from core.settings import Settings, memory_bytes

_HEADER = struct.Struct("!Q")
_POLL_S = 0.02


class QueryStopped(QueryTimeout):
    """A user query was stopped at a hard limit (time or memory) by killing its process."""


@dataclass(frozen=True)
class Box:
    """What a child needs to open its sandboxed DuckDB: read-only roots, limits, the datasets' scans."""

    readable: tuple[str, ...]
    spill_root: str
    memory_limit: str
    threads: int
    time_limit_s: float
    memory_cap_bytes: int
    views: tuple[tuple[str, str], ...]  # (dataset name, its scan SQL from the catalog)

    @classmethod
    def from_json(cls, doc: dict) -> Box:
        """The Box that asdict(box) was made from (JSON turned its tuples into lists)."""
        return cls(**{**doc, "readable": tuple(doc["readable"]), "views": tuple(map(tuple, doc["views"]))})

    @classmethod
    def of(cls, settings: Settings, views: tuple[tuple[str, str], ...]) -> Box:
        return cls(readable=tuple(str(r) for r in settings.data_roots + (settings.datasets_dir,)),
                   spill_root=str(spill_root(settings)), memory_limit=settings.sql_memory_limit,
                   threads=settings.threads, time_limit_s=settings.sql_time_limit_s,
                   memory_cap_bytes=settings.sql_memory_cap_bytes, views=views)


# ----------------------------------------------------------------------------------------------
# The caller's side


_SERVER: dict[str, object] = {}
_LOCK = threading.Lock()


def _server() -> tuple[socket.socket, subprocess.Popen]:
    """The fork server, started on first use and again if it died."""
    proc = _SERVER.get("proc")
    if proc is None or proc.poll() is not None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        proc = subprocess.Popen([sys.executable, "-m", "core.data.sqlworker", str(theirs.fileno())],
                                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                cwd=Path(__file__).resolve().parents[2], start_new_session=True)
        theirs.close()
        old = _SERVER.get("control")
        if old is not None:
            old.close()
        _SERVER.update(proc=proc, control=ours)
    return _SERVER["control"], proc


def _request_socket() -> socket.socket:
    """A socket connected to a freshly forked child of the server."""
    mine, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _LOCK:
            for attempt in (1, 2):
                control, _ = _server()
                try:
                    socket.send_fds(control, [b"r"], [child_end.fileno()])
                    break
                except OSError:
                    if attempt == 2:
                        raise
                    _SERVER.get("proc").kill()  # a broken server: start another
    finally:
        child_end.close()
    return mine


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _Watch:
    """Kills the child past the time limit or the memory cap; remembers which."""

    def __init__(self, pid: int, box: Box, sock: socket.socket, time_limit_s: float) -> None:
        self.pid, self.box, self.sock, self.limit = pid, box, sock, time_limit_s
        self.reason: str | None = None
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._done.wait(_POLL_S):
            rss = _rss(self.pid)
            self.peak = max(self.peak, rss)
            if rss > self.box.memory_cap_bytes:
                self._kill("memory")
            elif time.monotonic() > deadline:
                self._kill("time")

    def _kill(self, reason: str) -> None:
        self.reason = reason
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._done.set()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def error(self, what: str) -> QueryError:
        """The message for a child that did not answer in full."""
        if self.reason == "time":
            return QueryStopped(f"{what} ran longer than the {self.limit:g} s time limit and was stopped.",
                                "Narrow it (a filter, fewer columns, a LIMIT) or raise QUARRY_SQL_TIME_LIMIT_S.")
        cap = self.box.memory_cap_bytes / 2**30
        if self.reason == "memory":
            return QueryStopped(f"{what} used more than {cap:.3g} GiB of memory and was stopped.",
                                "Narrow it (fewer rows or columns, no huge lists or strings) or raise "
                                "QUARRY_SQL_MEMORY_LIMIT.")
        return QueryStopped(f"{what} stopped before it finished (its process ended; it probably needed more "
                            f"than the {cap:.3g} GiB memory cap).",
                            "Narrow it, or raise QUARRY_SQL_MEMORY_LIMIT.")


@dataclass
class Answer:
    """A child's answer: the header's values and, for table answers, the Arrow stream reader."""

    header: dict
    reader: pa.RecordBatchReader | None


@contextmanager
def call(box: Box, op: str, args: dict, what: str = "The query",
         time_limit_s: float | None = None) -> Iterator[Answer]:
    """Run operation `op` in a confined child; yield its answer while the child is watched.

    A QuarryError raised in the child is raised here with its class, message and hint. Reading a
    streamed answer happens inside the ``with`` block, still under the limits.
    """
    if op not in OPS:
        raise ValueError(f"unknown operation {op!r}")
    sock = _request_socket()
    watch = None
    try:
        stream = sock.makefile("rwb")
        stream.write(_frame({"op": op, "args": args, "box": asdict(box)}))
        stream.flush()
        raw_pid = stream.read(_HEADER.size)
        if len(raw_pid) != _HEADER.size:
            raise QueryStopped(f"{what} could not start a process to run in.", "Try again; see the server log.")
        watch = _Watch(_HEADER.unpack(raw_pid)[0], box, sock, time_limit_s or box.time_limit_s)
        try:
            header = _read_frame(stream)
        except (OSError, ValueError, struct.error):
            raise watch.error(what) from None
        if header.get("error"):
            err = header["error"]
            cls = QueryStopped if err.get("class") == "QueryStopped" else getattr(errors, err.get("class", ""), None)
            cls = cls if isinstance(cls, type) and issubclass(cls, errors.QuarryError) else QueryError
            raise cls(err.get("message", "The query failed."), err.get("hint", ""))
        reader = pa.ipc.open_stream(stream) if header.get("arrow") else None
        try:
            yield Answer(header, reader)
        except (pa.ArrowException, OSError) as exc:
            if watch.reason or isinstance(exc, OSError | pa.ArrowInvalid):
                raise watch.error(what) from None
            raise
    finally:
        if watch is not None:
            watch.stop()
            # The child empties its spill folder when it can, but Landlock keeps it from removing the folder itself
            # (that is a change to the folder above), and a killed child removes nothing: the caller does both.
            shutil.rmtree(Path(box.spill_root) / str(watch.pid), ignore_errors=True)
        sock.close()


def table(box: Box, op: str, args: dict, what: str = "The query") -> tuple[pa.Table, dict]:
    """A child's table answer read whole (pages and capped downloads), with its header."""
    with call(box, op, args, what) as answer:
        data = answer.reader.read_all() if answer.reader is not None else pa.table({})
    return data, answer.header


def value(box: Box, op: str, args: dict, what: str = "The query") -> dict:
    """A child's header answer (counts and other small values)."""
    with call(box, op, args, what) as answer:
        return answer.header


# ----------------------------------------------------------------------------------------------
# Framing


def _frame(doc: dict) -> bytes:
    body = json.dumps(doc, default=str).encode()
    return _HEADER.pack(len(body)) + body


def _read_frame(stream) -> dict:
    raw = stream.read(_HEADER.size)
    (size,) = _HEADER.unpack(raw)
    if size > 64 * 2**20:
        raise ValueError("frame too large")
    body = stream.read(size)
    if len(body) != size:
        raise ValueError("short frame")
    return json.loads(body)


# ----------------------------------------------------------------------------------------------
# Confinement (in the child, before it reads the request)

_LANDLOCK_CREATE, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT = 444, 445, 446  # the same on x86_64 and aarch64
_PR_SET_NO_NEW_PRIVS, _PR_SET_PDEATHSIG = 38, 1


def landlock_abi() -> int:
    """Landlock's ABI version on this kernel, 0 when it is not available."""
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(_LANDLOCK_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, abi)


def confine_writes(writable: str) -> bool:
    """Forbid this process to create, write, truncate, rename or remove any file outside `writable`
    (and, with Landlock ABI 4+, to bind or connect TCP). True when Landlock enforced it."""
    abi = landlock_abi()
    if abi < 1:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    write = (1 << 1) | (1 << 4) | (1 << 5) | sum(1 << b for b in range(6, 13))  # write, remove, make *
    if abi >= 2:
        write |= 1 << 13  # refer (rename/link across folders)
    if abi >= 3:
        write |= 1 << 14  # truncate
    net = 0b11 if abi >= 4 else 0  # bind and connect TCP

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = RulesetAttr(write, net)
    size = ctypes.sizeof(RulesetAttr) if abi >= 4 else 8
    ruleset = libc.syscall(_LANDLOCK_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        folder = os.open(writable, os.O_PATH | os.O_DIRECTORY)
        try:
            rule = PathBeneath(write, folder)
            if libc.syscall(_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0) != 0:
                raise OSError(ctypes.get_errno(), "landlock_add_rule failed")
        finally:
            os.close(folder)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS) failed")
        if libc.syscall(_LANDLOCK_RESTRICT, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return True


def _confine(box: Box, spill: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the server is single-threaded: dies with it
    # Address space: the cap plus room for the code, thread stacks and the allocator's reserved ranges. The
    # resident memory is held to the cap by the caller; this stops single allocations far past it at once.
    room = box.memory_cap_bytes + 4 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (room, room))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    confine_writes(spill)


# ----------------------------------------------------------------------------------------------
# The child: one operation on a sandboxed DuckDB


def _connect(box: Box, spill: str, names: set[str] | None) -> duckdb.DuckDBPyConnection:
    from core.data.engine import PERFECT_HASH_BITS, quote_ident, quote_literal

    con = duckdb.connect(":memory:", config={
        "memory_limit": box.memory_limit, "threads": box.threads, "temp_directory": spill,
        "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        "preserve_insertion_order": True, "perfect_ht_threshold": PERFECT_HASH_BITS})
    con.execute("SET enable_progress_bar = false")
    # Spill at most 4 x the memory limit: a query that would fill the disk stops with DuckDB's own message.
    con.execute(f"SET max_temp_directory_size = '{4 * memory_bytes(box.memory_limit) // 2**20}MiB'")
    allowed = list(box.readable)  # not the spill folder: DuckDB spills without it being readable
    con.execute("SET allowed_directories = [" + ", ".join(quote_literal(d) for d in allowed) + "]")
    con.execute("SET enable_external_access = false")
    con.execute("SET parquet_metadata_cache = true")
    for name, scan in box.views:
        if names is None or name in names:
            try:
                con.execute(f"CREATE VIEW {quote_ident(name)} AS SELECT * FROM {scan}")
            except duckdb.Error:
                pass  # a dataset whose files are gone: querying it says it does not exist
    con.execute("SET lock_configuration = true")
    return con


def without_order_by(cur: duckdb.DuckDBPyConnection, query: str) -> str:
    """The query without its outermost ORDER BY, for counting its rows.

    The row count does not depend on the order (a LIMIT/OFFSET is kept), and DuckDB would
    otherwise sort the whole result just to count it. The edit is made on DuckDB's own parse
    tree (json_serialize_sql), never on the text; anything unexpected keeps the query as it is.
    """
    try:
        tree = json.loads(cur.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0][0])
        node = tree["statements"][0]["node"]
        kept = [m for m in node["modifiers"] if m["type"] != "ORDER_MODIFIER"]
        if tree.get("error") or len(kept) == len(node["modifiers"]):
            return query
        node["modifiers"] = kept
        return cur.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()[0][0]
    except (duckdb.Error, KeyError, IndexError, TypeError, ValueError):
        return query


PAGE_BYTES_MAX = 32 * 2**20  # a page a person looks at: huge cells stay in the child, not in the app


def _bounded(page: pa.Table) -> pa.Table:
    """A page of rows, or QueryError when it is too large to show (a few huge cells, say)."""
    if page.nbytes > PAGE_BYTES_MAX:
        raise QueryError(f"This page of the result holds {page.nbytes / 2**20:,.0f} MiB; at most "
                         f"{PAGE_BYTES_MAX // 2**20} MiB are shown at once.",
                         "Show fewer rows per page, fewer columns, or shorter values (e.g. left(col, 1000)).")
    return page


def _op_page(con_for: Callable, args: dict) -> tuple[dict, pa.Table | pa.RecordBatchReader]:
    from core.data.engine import count_rows

    sql = args["sql"]
    cur = con_for(set(args["tables"]))
    page = _bounded(cur.sql(sql).limit(int(args["limit"]), int(args["offset"])).to_arrow_table())
    return {"total": count_rows(cur.sql(without_order_by(cur, sql)))}, page


def _op_rows(con_for: Callable, args: dict) -> tuple[dict, pa.Table | pa.RecordBatchReader]:
    sql = args["sql"]
    cur = con_for(set(args["tables"]))
    rel = cur.sql(sql)
    if args.get("cap") is not None:
        return {}, rel.limit(int(args["cap"]) + 1).to_arrow_table()
    return {}, rel.to_arrow_reader(100_000)


def _filtered(cur: duckdb.DuckDBPyConnection, args: dict) -> duckdb.DuckDBPyRelation:
    from core.data.engine import quote_ident

    rel = cur.table(quote_ident(args["table"]))
    return rel.filter(args["where"]) if (args.get("where") or "").strip() else rel


def _op_preview(con_for: Callable, args: dict) -> tuple[dict, pa.Table | pa.RecordBatchReader]:
    from core.data.engine import count_rows, quote_ident

    cur = con_for({args["table"]})
    rel = _filtered(cur, args)
    total = args.get("total")
    n = count_rows(rel) if total is None else int(total)  # before sorting: no sort under the count
    if args.get("order_by"):
        rel = rel.order(f"{quote_ident(args['order_by'])} {'DESC' if args.get('descending') else 'ASC'} NULLS LAST")
    if args.get("columns"):
        rel = rel.select(*(quote_ident(c) for c in args["columns"]))
    return {"total": n}, _bounded(rel.limit(int(args["limit"]), int(args["offset"])).to_arrow_table())


def _op_count(con_for: Callable, args: dict) -> tuple[dict, None]:
    from core.data.engine import count_rows

    return {"value": count_rows(_filtered(con_for({args["table"]}), args))}, None


# The operations a child can run, by name: nothing else can be asked for. Modules above this one add theirs
# with `operation` when they are imported (the server imports them before it forks: see serve()).
OPS: dict[str, Callable] = {"page": _op_page, "rows": _op_rows, "preview": _op_preview, "count": _op_count}


def operation(name: str) -> Callable[[Callable], Callable]:
    """Register a child operation under `name` (a decorator); the recipe preview registers its own."""
    def register(fn: Callable) -> Callable:
        OPS[name] = fn
        return fn
    return register


def _error(exc: Exception, box: Box, what: str) -> errors.QuarryError:
    """What the caller is told when an operation failed in the child."""
    from core.data.engine import translate

    if isinstance(exc, errors.QuarryError):
        return exc
    if isinstance(exc, duckdb.OutOfMemoryException):
        first = str(exc).split("\n")[0].split("Error: ", 1)[-1]
        return QueryStopped(f"{what} needed more memory than its {box.memory_limit} limit ({first}).",
                            "Narrow it (fewer rows or columns, no huge lists or strings) or raise "
                            "QUARRY_SQL_MEMORY_LIMIT.")
    if isinstance(exc, duckdb.Error):
        return translate(exc, what)
    if isinstance(exc, MemoryError):
        return QueryStopped(f"The query needed more memory than the {box.memory_cap_bytes / 2**30:.3g} GiB cap "
                            "and was stopped.", "Narrow it, or raise QUARRY_SQL_MEMORY_LIMIT.")
    # a bug, not the user's query: say so rather than end without a word
    return QueryError(f"{what} failed unexpectedly ({type(exc).__name__}: {str(exc)[:200]}).",
                      "This is a bug in Quarry; please report it with the query.")


def _serve(sock: socket.socket) -> None:
    """In the forked child: confine, read the request, answer, never return."""
    code = 0
    spill = None
    try:
        stream = sock.makefile("rwb")
        stream.write(_HEADER.pack(os.getpid()))
        stream.flush()
        request = _read_frame(stream)
        box = Box.from_json(request["box"])
        spill = os.path.join(box.spill_root, str(os.getpid()))
        os.makedirs(spill, mode=0o700, exist_ok=True)
        _confine(box, spill)
        op = OPS.get(request["op"])
        try:
            if op is None:
                raise QueryError(f"The sandbox has no operation {request['op']!r}.", "This is a bug in Quarry.")
            header, data = op(lambda names: _connect(box, spill, names), request["args"])
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message for the caller
            err = _error(exc, box, request["args"].get("what") or "The query")
            stream.write(_frame({"error": {"class": type(err).__name__, "message": err.message, "hint": err.hint}}))
            return
        stream.write(_frame({**header, "arrow": data is not None}))
        if data is not None:
            with pa.ipc.new_stream(stream, data.schema) as writer:
                if isinstance(data, pa.Table):
                    writer.write_table(data)
                else:
                    for batch in data:
                        writer.write_batch(batch)
    except BaseException:  # the caller sees a short answer and reports the reason it knows
        code = 1
    finally:
        try:
            stream.flush()
        except BaseException:
            pass
        if spill:
            shutil.rmtree(spill, ignore_errors=True)
        os._exit(code)


def serve(control_fd: int) -> None:
    """The fork server: for each socket received on the control socket, fork a child to serve it."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    import pyarrow.ipc  # noqa: F401 - imported once here, not in every child

    import core.data.engine
    import core.features.preview  # noqa: F401 - registers the recipe operations
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(control, 16, 4)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return
        if not fds:  # the Quarry process is gone
            return
        for fd in fds:
            if os.fork() == 0:
                control.close()
                _serve(socket.socket(fileno=fd))
            os.close(fd)


if __name__ == "__main__":
    # Serve from the module itself, not from __main__: operations registered by other modules (the recipe
    # preview) land in core.data.sqlworker.OPS, which a copy of this file running as __main__ would not see.
    from core.data import sqlworker

    sqlworker.serve(int(sys.argv[1]))
