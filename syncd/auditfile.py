"""The audit file: a JSON-lines copy of the store's audit records, caught up from the store.

The store is the record. The file is written from it, never beside it: after a transaction
commits, and before a run applies anything, the records the file does not hold yet are
read back from the store in id order and appended. A process killed between the commit and
the append loses nothing (the next catch-up writes those lines), and no line is written
twice:

- ``audit_exports`` keeps, per host and file, the id of the newest record the file holds,
  and the file's inode and size right after it was written (``AuditExport``).
- Lines beyond that size are an append that died before it could record its mark: they are
  cut off and written again. A file with another inode was rotated away and replaced since
  the mark: whatever it holds is such lines too (a new file starts empty), so it is emptied.
  A file shorter than its mark was truncated in place (``copytruncate``): new lines follow.
- A file the store has no mark for is matched by its last line: the record that line shows
  and every one before it are taken as written (a file an earlier syncd wrote). When no
  record matches, the file holds none of the store's records and all of them follow.

Catch-ups on one host take turns by an exclusive ``flock`` on the file. Record ids grow in
commit order (``syncd.audit.commit_order``), so "every id above the mark" is exactly what is
missing. The records of each line are those ``syncd audit --format json`` prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import structlog
from sqlalchemy import Connection, Engine, delete, insert, select

from syncd.audit import Audit, records
from syncd.store.schema import tables, utcnow

log = structlog.get_logger("syncd.audit")

EXPORTS = tables["audit_exports"]
FILE_MODE = 0o640  # records name people: not for every user of the machine
CHUNK = 5000  # records read and written at a time
TAIL = 1 << 20  # how far back to look for a file's last line


class AuditFile:
    """One host's audit file, and its mark in the store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.host = socket.gethostname()
        self.key = str(path.absolute())

    def catch_up(self, engine: Engine) -> int:
        """Append the records the file does not hold yet; return how many. Raises OSError
        when the file cannot be written (the store is left as it is)."""
        with self._locked() as fh:
            with engine.connect() as conn:
                last_id = self._settle(conn, fh)
            written = 0
            with engine.connect() as conn:
                for lines, newest in self._pending(conn, last_id):
                    fh.write(lines)
                    fh.flush()
                    last_id, written = newest, written + lines.count(b"\n")
            if written:
                os.fsync(fh.fileno())
            st = os.fstat(fh.fileno())
            with engine.begin() as conn:
                self._mark(conn, last_id, st.st_ino, st.st_size)
            if written:
                log.debug("audit.file_caught_up", path=str(self.path), records=written)
            return written

    @contextmanager
    def _locked(self) -> Iterator[IO[bytes]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            yield fh  # closing the file releases the lock

    def _settle(self, conn: Connection, fh: IO[bytes]) -> int:
        """Cut what a dead append left; return the id of the newest record the file holds."""
        x = EXPORTS.c
        mark = conn.execute(select(x.last_id, x.inode, x.size).where(
            x.host == self.host, x.path == self.key)).first()
        st = os.fstat(fh.fileno())
        if mark is None:
            _end_at_a_line(fh)
            return self._matched(conn, _last_line(fh))
        if st.st_ino != mark.inode:
            if st.st_size:
                log.warning("audit.file_replaced", path=str(self.path), dropped_bytes=st.st_size)
            fh.truncate(0)
        elif st.st_size > mark.size:
            fh.truncate(mark.size)
        else:
            _end_at_a_line(fh)
        return int(mark.last_id)

    def _matched(self, conn: Connection, line: bytes | None) -> int:
        """The id of the record a file's last line shows (0 for none, or no line)."""
        try:
            doc = json.loads(line) if line else None
            ts = datetime.fromisoformat(doc["ts"].replace("Z", "+00:00")) if isinstance(
                doc, dict) and isinstance(doc.get("ts"), str) else None
        except (ValueError, UnicodeDecodeError):
            ts = None
        if ts is None:
            return 0
        assert isinstance(doc, dict)
        query = records()
        t = query.selected_columns
        found = conn.execute(query.where(
            t.ts == ts, t.run_id == doc.get("run_id"), t.actor == doc.get("actor"),
            t.op == doc.get("op"), _equal(t.group_name, doc.get("group")),
            _equal(t.user_name, doc.get("user"))).order_by(t.id.desc()).limit(1)).first()
        return int(found.id) if found else 0

    def _pending(self, conn: Connection, last_id: int) -> Iterator[tuple[bytes, int]]:
        """The lines of the records after ``last_id``, a chunk at a time, with the id of
        each chunk's last record."""
        query = records()
        t = query.selected_columns
        while True:
            rows = conn.execute(query.where(t.id > last_id).order_by(t.id).limit(CHUNK)).all()
            if not rows:
                return
            last_id = rows[-1].id
            yield "".join(file_line(Audit.from_row(r)) for r in rows).encode("utf-8"), last_id

    def _mark(self, conn: Connection, last_id: int, inode: int, size: int) -> None:
        x = EXPORTS.c
        conn.execute(delete(EXPORTS).where(x.host == self.host, x.path == self.key))
        conn.execute(insert(EXPORTS).values(host=self.host, path=self.key, last_id=last_id,
                                            inode=inode, size=size, updated_at=utcnow()))


def file_line(record: Audit) -> str:
    """A record's line in the audit file: ``Audit.to_json`` as one line of JSON."""
    return json.dumps(record.to_json(), ensure_ascii=False) + "\n"


def _equal(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _line_start(fh: IO[bytes], end: int) -> int:
    """The offset just past the last new line before ``end`` (0 when there is none)."""
    while end > 0:
        start = max(0, end - TAIL)
        fh.seek(start)
        cut = fh.read(end - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def _end_at_a_line(fh: IO[bytes]) -> None:
    """Cut a last line that was only partly written (the file then ends with a new line)."""
    size = os.fstat(fh.fileno()).st_size
    if size:
        fh.seek(size - 1)
        if fh.read(1) != b"\n":
            fh.truncate(_line_start(fh, size))


def _last_line(fh: IO[bytes]) -> bytes | None:
    """The last line of a file that ends with a new line, without it (None when empty)."""
    end = os.fstat(fh.fileno()).st_size
    if not end:
        return None
    start = _line_start(fh, end - 1)
    fh.seek(start)
    return fh.read(end - 1 - start)
