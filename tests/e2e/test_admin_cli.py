"""The installed ``syncd`` command end to end: admin commands, audit, db and config commands."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import jsonschema
import pytest
from conftest import Result as Outcome
from sqlalchemy import inspect, text

from syncd.audit import AuditWriter
from syncd.store import db
from syncd.store.admin import Admin
from syncd.store.db import head_revision, open_engine, resolve_url, upgrade
from syncd.store.schema import tables

pytestmark = pytest.mark.e2e


class Result(Protocol):
    """What the ``run_syncd`` fixture returns (conftest.Result)."""

    code: int
    stdout: str
    stderr: str


RunSyncd = Callable[..., Result]
WriteConfig = Callable[..., Path]

SHOW_KEYS = {"id", "name", "description", "kind", "organisation", "managed", "source",
             "external_id", "rule", "members"}
MEMBER_KEYS = {"user", "email", "role", "status", "origin", "external"}
LIST_KEYS = {"id", "name", "members", "managed", "source", "organisation"}
AUDIT_KEYS = ["ts", "run_id", "actor", "op", "group", "user", "rule", "source", "before",
              "after"]


def ok(result: Result) -> str:
    assert result.code == 0, result
    return result.stdout


def usage_error(result: Result) -> str:
    """An admin error: exit 2, nothing on stdout, one line on stderr; returns that line."""
    assert result.code == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("syncd: error: "), lines
    return lines[0]


def json_doc(result: Result) -> Any:
    """The one JSON document a ``--format json`` command prints, and nothing else."""
    return json.loads(ok(result))


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ok(result).splitlines()]


def head() -> str:
    engine = open_engine("sqlite://")
    try:
        return head_revision(engine)
    finally:
        engine.dispose()


@pytest.fixture
def cli(run_syncd: RunSyncd, write_config: WriteConfig, tmp_path: Path,
        store_url: str) -> Callable[..., Result]:
    """``syncd -c CONFIG ...`` on the store of ``store_url`` (SQLite and PostgreSQL)."""
    config = write_config({"version": 1, "store": {"url": store_url},
                           "audit": {"file": str(tmp_path / "audit.jsonl")}})
    return lambda *args: run_syncd(*args, config=config)


@pytest.fixture
def sqlite_config(write_config: WriteConfig) -> Path:
    """A config with a relative SQLite store and audit file (relative to the config file)."""
    return write_config("""
        version: 1
        store: {url: "sqlite:///state/syncd.db"}
        audit: {file: audit/audit.jsonl}
    """, name="etc/syncd.yaml")


@pytest.fixture
def sq(run_syncd: RunSyncd, sqlite_config: Path, tmp_path: Path) -> Callable[..., Result]:
    """``syncd -c CONFIG ...`` on the SQLite store, run from another directory."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return lambda *args: run_syncd(*args, config=sqlite_config, cwd=cwd)


@pytest.fixture
def sqlite_admin(sqlite_config: Path) -> Iterator[Admin]:
    """In-process admin on the same SQLite store, to set up a state quickly."""
    engine = open_engine(resolve_url("sqlite:///state/syncd.db", sqlite_config.parent))
    upgrade(engine)
    yield Admin(engine, AuditWriter(sqlite_config.parent / "audit" / "audit.jsonl"),
                "cli:setup")
    engine.dispose()


# -- db ---------------------------------------------------------------------------------------


def test_db_upgrade(sq: Callable[..., Result], sqlite_config: Path, tmp_path: Path) -> None:
    assert ok(sq("db", "upgrade")) == f"store upgraded from empty to revision {head()}\n"
    assert (sqlite_config.parent / "state" / "syncd.db").exists()
    assert not (tmp_path / "elsewhere" / "state").exists()
    assert ok(sq("db", "upgrade")) == f"store is up to date (revision {head()})\n"


# -- the whole admin flow, on SQLite and PostgreSQL -------------------------------------------


def test_admin_flow(cli: Callable[..., Result], tmp_path: Path) -> None:
    assert ok(cli("db", "upgrade")).startswith("store upgraded from empty to revision ")
    out = ok(cli("groups", "create", "eng-platform", "--description", "Platform team",
                 "--kind", "open", "--organisation", "acme"))
    assert out.startswith("created group 'eng-platform' (")
    ok(cli("groups", "create", "ops"))
    assert ok(cli("members", "add", "eng-platform", "alice", "--role", "owner", "--email",
                  "alice@example.org")) == "added 'alice' to 'eng-platform' as owner\n"
    ok(cli("members", "add", "eng-platform", "bob"))
    ok(cli("members", "add", "ops", "bob", "--role", "facilitator"))
    assert ok(cli("members", "set-role", "eng-platform", "bob", "facilitator")) == (
        "'bob' is now facilitator in 'eng-platform'\n")

    shown = json_doc(cli("groups", "show", "eng-platform", "--format", "json"))
    assert set(shown) >= SHOW_KEYS
    assert {k: shown[k] for k in SHOW_KEYS - {"id", "members"}} == {
        "name": "eng-platform", "description": "Platform team", "kind": "open",
        "organisation": "acme", "managed": False, "source": None, "external_id": None,
        "rule": None}
    assert shown["members"] == [
        {"user": "alice", "email": "alice@example.org", "role": "owner", "status": "accepted",
         "origin": "manual", "external": False},
        {"user": "bob", "email": None, "role": "facilitator", "status": "accepted",
         "origin": "manual", "external": False},
    ]

    listed = json_doc(cli("groups", "list", "--format", "json"))
    assert isinstance(listed, list)
    assert all(set(item) == LIST_KEYS for item in listed)
    assert sorted((g["name"], g["members"], g["organisation"], g["managed"], g["source"])
                  for g in listed) == [("eng-platform", 2, "acme", False, None),
                                       ("ops", 1, "default", False, None)]
    assert {g["name"]: g["id"] for g in listed}["eng-platform"] == shown["id"]

    users = json_doc(cli("users", "list", "--format", "json"))
    assert [(u["user"], u["email"], u["groups"]) for u in users] == [
        ("alice", "alice@example.org", 1), ("bob", None, 2)]
    bob = json_doc(cli("users", "show", "bob", "--format", "json"))
    assert sorted((g["group"], g["role"]) for g in bob["groups"]) == [
        ("eng-platform", "facilitator"), ("ops", "facilitator")]

    assert ok(cli("members", "remove", "eng-platform", "alice")) == (
        "removed 'alice' from 'eng-platform'\n")
    assert [m["user"] for m in json_doc(
        cli("groups", "show", "eng-platform", "--format", "json"))["members"]] == ["bob"]
    assert ok(cli("groups", "delete", "eng-platform")) == "deleted group 'eng-platform'\n"
    assert "no group named 'eng-platform'" in usage_error(cli("groups", "show", "eng-platform"))
    # The users stay.
    assert [u["user"] for u in json_doc(cli("users", "list", "--format", "json"))] == [
        "alice", "bob"]

    records = json_lines(cli("audit", "--format", "json"))
    assert [(r["op"], r["group"], r["user"]) for r in records] == [
        ("create_group", "eng-platform", None),
        ("create_group", "ops", None),
        ("create_user", None, "alice"),
        ("add_member", "eng-platform", "alice"),
        ("create_user", None, "bob"),
        ("add_member", "eng-platform", "bob"),
        ("add_member", "ops", "bob"),
        ("change_role", "eng-platform", "bob"),
        ("remove_member", "eng-platform", "alice"),
        ("delete_group", "eng-platform", None),
    ]
    assert {r["actor"] for r in records} == {f"cli:{getpass.getuser()}"}
    assert all(list(r) == AUDIT_KEYS for r in records)
    assert records[3]["after"] == {"role": "owner", "status": "accepted"}
    assert (records[7]["before"], records[7]["after"]) == ({"role": "member"},
                                                           {"role": "facilitator"})
    stamps = [datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) for r in records]
    assert stamps == sorted(stamps)
    file_records = [json.loads(line) for line in
                    (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    assert file_records == records


def test_tables_for_people(sq: Callable[..., Result], sqlite_admin: Admin) -> None:
    sqlite_admin.create_group("eng", "Engineering")
    sqlite_admin.add_member("eng", "alice", "owner", email="alice@example.org")
    out = ok(sq("groups", "list"))
    assert "eng" in out
    assert "default" in out
    out = ok(sq("groups", "show", "eng"))
    assert out.startswith("eng  (standard, organisation default)\n")
    assert "description: Engineering" in out
    assert "managed:     no (manual)" in out
    assert "alice@example.org" in out
    assert "owner" in out
    out = ok(sq("users", "show", "alice"))
    assert out.startswith("alice  (active)\n")
    assert "eng" in out
    assert "alice" in ok(sq("users", "list"))
    assert "add_member" in ok(sq("audit"))


def test_round_trip_through_groups_show(sq: Callable[..., Result]) -> None:
    ok(sq("groups", "create", "Ünïcode group", "--description", 'quotes " and, commas',
          "--organisation", "org-1"))
    ok(sq("members", "add", "Ünïcode group", "ünï", "--email", "u@example.org", "--role",
          "facilitator"))
    shown = json_doc(sq("groups", "show", "Ünïcode group", "--format", "json"))
    assert (shown["name"], shown["description"], shown["organisation"], shown["kind"]) == (
        "Ünïcode group", 'quotes " and, commas', "org-1", "standard")
    assert [(m["user"], m["email"], m["role"]) for m in shown["members"]] == [
        ("ünï", "u@example.org", "facilitator")]
    # The id shown is a handle for the same group.
    again = json_doc(sq("groups", "show", shown["id"], "--format", "json"))
    assert again == shown


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["groups", "show", "nope"], "no group named 'nope'"),
    (["groups", "delete", "nope"], "no group named 'nope'"),
    (["members", "add", "nope", "alice"], "no group named 'nope'"),
    (["members", "remove", "nope", "alice"], "no group named 'nope'"),
    (["groups", "create", "eng"], "a group named 'eng' already exists in organisation "
                                  "'default'"),
    (["members", "add", "eng", "carol", "--role", "boss"], "unknown role 'boss'"),
    (["members", "set-role", "eng", "alice", "boss"], "unknown role 'boss'"),
    (["members", "add", "eng", "alice"], "'alice' is already a member of 'eng'"),
    (["members", "remove", "eng", "bob"], "'bob' is not a member of 'eng'"),
    (["users", "show", "nobody"], "no user named 'nobody'"),
])
def test_admin_errors(sq: Callable[..., Result], sqlite_admin: Admin, sqlite_config: Path,
                      args: list[str], message: str) -> None:
    sqlite_admin.create_group("eng")
    sqlite_admin.add_member("eng", "alice")
    sqlite_admin.create_group("ops")
    sqlite_admin.add_member("ops", "bob")
    audit_file = sqlite_config.parent / "audit" / "audit.jsonl"
    before = audit_file.read_text(encoding="utf-8")
    line = usage_error(sq(*args))
    assert message in line
    assert audit_file.read_text(encoding="utf-8") == before
    assert len(json_lines(sq("audit", "--format", "json"))) == len(before.splitlines())


@pytest.mark.parametrize("args", [
    ["groups", "show"],
    ["groups", "list", "--format", "xml"],
    ["groups", "create", "x", "--kind", "secret"],
    ["no-such-command"],
])
def test_usage_errors_exit_2(sq: Callable[..., Result], args: list[str]) -> None:
    result = sq(*args)
    assert result.code == 2, result
    assert result.stdout == ""
    assert "Usage:" in result.stderr or "Error:" in result.stderr


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql+psycopg://nobody@127.0.0.1:1/none", "Connection refused"),
    ("sqlite:////proc/no-such-dir/syncd.db", "cannot create the store's folder /proc/no-such"),
])
@pytest.mark.parametrize("command", [["groups", "create", "x"], ["db", "upgrade"]])
def test_store_error_is_one_line(run_syncd: RunSyncd, write_config: WriteConfig, url: str,
                                 message: str, command: list[str]) -> None:
    config = write_config({"version": 1, "store": {"url": url}})
    result = run_syncd(*command, config=config)
    assert result.code == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("syncd: error: ")
    assert message in lines[0]


# -- opening the store ------------------------------------------------------------------------

DEMO_LDIF = Path(__file__).resolve().parents[2] / "config" / "demo" / "directory.ldif"


def one_error_line(result: Result, code: int) -> str:
    """An error: exit ``code``, nothing on stdout, one line on stderr; returns that line."""
    assert result.code == code, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("syncd: error: "), lines
    return lines[0]


@pytest.fixture
def demo_config(write_config: WriteConfig, store_url: str) -> Path:
    """A config with the demo LDIF as connector ``demo``, on ``store_url`` (both drivers)."""
    return write_config({"version": 1, "store": {"url": store_url},
                         "connectors": [{"name": "demo", "type": "ldif",
                                         "path": str(DEMO_LDIF)}],
                         "rules": [{"name": "all"}]})


def stored_tables(url: str) -> set[str]:
    engine = open_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


READING = [
    ["groups", "list"], ["groups", "list", "--format", "json"], ["groups", "show", "eng"],
    ["users", "list"], ["users", "show", "alice"], ["status"], ["status", "--format", "json"],
    ["audit"], ["groups", "delete", "eng"], ["members", "remove", "eng", "alice"],
    ["members", "set-role", "eng", "alice", "owner"],
]


@pytest.mark.parametrize("command", READING, ids=" ".join)
def test_a_reading_command_never_makes_a_store(run_syncd: RunSyncd, demo_config: Path,
                                               store_url: str, tmp_path: Path,
                                               command: list[str]) -> None:
    """A mistyped SQLite path or an empty PostgreSQL schema: one line saying there is no
    store there, exit 2, and no folder, file or table made."""
    line = one_error_line(run_syncd(*command, config=demo_config), 2)
    where = resolve_url(store_url, tmp_path)
    assert line == (f"syncd: error: no syncd store at {db.location(where)}, where store.url "
                    f"in {demo_config} points: create one with 'syncd db upgrade' or a first "
                    "'syncd sync'")
    assert not (tmp_path / "store").exists()  # the SQLite store's folder
    if store_url.startswith("postgresql"):
        assert stored_tables(store_url) == set()


def test_explain_without_a_store_reads_the_source_and_makes_none(
        run_syncd: RunSyncd, demo_config: Path, store_url: str, tmp_path: Path) -> None:
    result = run_syncd("explain", "demo", "platform", "--format", "json", config=demo_config)
    assert result.code == 0, result
    assert json.loads(result.stdout)["from"] == "source"
    [warning] = [json.loads(line) for line in result.stderr.splitlines()]
    assert (warning["event"], warning["level"]) == ("store.missing", "warning")
    assert "no syncd store at" in warning["problem"]
    assert not (tmp_path / "store").exists()
    if store_url.startswith("postgresql"):
        assert stored_tables(store_url) == set()


@pytest.mark.parametrize("command", [
    ["db", "upgrade"], ["groups", "create", "eng"], ["sync", "--dry-run"], ["sync"],
], ids=" ".join)
def test_a_writing_command_makes_the_store_on_first_use(run_syncd: RunSyncd,
                                                        demo_config: Path, store_url: str,
                                                        command: list[str]) -> None:
    result = run_syncd(*command, config=demo_config)
    assert result.code == 0, result
    assert "groups" in stored_tables(store_url)
    assert ok(run_syncd("groups", "list", "--format", "json", config=demo_config))


def test_members_add_makes_the_store_on_first_use(run_syncd: RunSyncd, demo_config: Path,
                                                  store_url: str) -> None:
    # It then finds no group in the new store; the store stays, ready for `groups create`.
    result = run_syncd("members", "add", "eng", "alice", config=demo_config)
    assert result.code == 2, result
    assert result.stderr.splitlines()[-1] == "syncd: error: no group named 'eng'"
    assert "groups" in stored_tables(store_url)


@pytest.fixture
def sqlite_demo(write_config: WriteConfig, tmp_path: Path) -> tuple[Path, Path]:
    """A config with the demo connector on an SQLite store; (config, store file)."""
    path = tmp_path / "state" / "syncd.db"
    config = write_config({"version": 1, "store": {"url": f"sqlite:///{path}"},
                           "connectors": [{"name": "demo", "type": "ldif",
                                           "path": str(DEMO_LDIF)}],
                           "rules": [{"name": "all"}]})
    return config, path


def made_store(path: Path) -> None:
    """A store with a group and a member, closed cleanly (no WAL file beside it)."""
    engine = open_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        admin = Admin(engine, AuditWriter(None), "cli:setup")
        admin.create_group("eng")
        admin.add_member("eng", "alice")
    finally:
        engine.dispose()


def corrupt_store(path: Path, kind: str) -> str:
    """Make the store at ``path`` a file SQLite cannot read; return SQLite's complaint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "random":
        path.write_bytes(bytes(range(256)) * 256)
        return "file is not a database"
    if kind == "text":
        path.write_text("version: 1\nthis is a text file, not a database\n", encoding="utf-8")
        return "file is not a database"
    made_store(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])
    return "database disk image is malformed"


EVERY_COMMAND = [
    ["groups", "list"], ["groups", "show", "eng"], ["users", "show", "alice"], ["status"],
    ["audit"], ["explain", "demo", "platform"], ["db", "upgrade"], ["groups", "create", "ops"],
    ["members", "add", "eng", "bob"], ["sync"], ["sync", "--dry-run"],
]


# every command on one kind of damage, every kind on a reading and a writing command
CORRUPTIONS = [*((command, "random") for command in EVERY_COMMAND),
               *((command, kind) for command in (["groups", "list"], ["sync"])
                 for kind in ("text", "truncated"))]


@pytest.mark.parametrize(("command", "kind"), CORRUPTIONS,
                         ids=[f"{' '.join(c)}-{k}" for c, k in CORRUPTIONS])
def test_a_corrupt_store_is_one_line_and_exit_1(run_syncd: RunSyncd,
                                                sqlite_demo: tuple[Path, Path], kind: str,
                                                command: list[str]) -> None:
    config, path = sqlite_demo
    reason = corrupt_store(path, kind)
    before = path.read_bytes()
    line = one_error_line(run_syncd(*command, config=config), 1)
    assert line == f"syncd: error: cannot open the store {path}: {reason}"
    assert path.read_bytes() == before


def set_store_revision(url: str, revision: str) -> None:
    engine = open_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", [
    ["db", "upgrade"], ["groups", "list"], ["groups", "create", "ops"], ["sync"], ["status"],
], ids=" ".join)
def test_a_store_of_a_newer_syncd_is_one_line_and_exit_1(run_syncd: RunSyncd,
                                                         demo_config: Path, store_url: str,
                                                         tmp_path: Path,
                                                         command: list[str]) -> None:
    set_store_revision(store_url, "0099_from_the_future")
    line = one_error_line(run_syncd(*command, config=demo_config), 1)
    where = db.location(resolve_url(store_url, tmp_path))
    assert line == (f"syncd: error: the store {where} is at schema revision "
                    f"'0099_from_the_future', unknown to this syncd (whose newest is "
                    f"'{head()}'): it was probably written by a newer syncd; upgrade syncd to "
                    "use it")
    engine = open_engine(store_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == (
                "0099_from_the_future")
            assert conn.scalar(text("SELECT count(*) FROM groups")) == 0
    finally:
        engine.dispose()


def test_a_store_failing_in_use_is_one_line_and_exit_1(cli: Callable[..., Result],
                                                       store_url: str) -> None:
    """A store that opens but then fails (here: a table gone) is a store error, not an
    internal error with a traceback."""
    ok(cli("groups", "create", "eng"))
    engine = open_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE audit"))
    finally:
        engine.dispose()
    line = one_error_line(cli("audit"), 1)
    assert line.startswith("syncd: error: the store ")
    assert "failed: " in line
    assert "audit" in line


# -- names and values -------------------------------------------------------------------------


def store_rows(url: str) -> dict[str, list[Any]]:
    """Every row of the tables an admin command writes, to compare before and after."""
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            return {name: sorted(map(tuple, conn.execute(tables[name].select())), key=repr)
                    for name in ("groups", "users", "memberships", "audit", "audit_batches")}
    finally:
        engine.dispose()


LONG = "x" * 10_000


BAD_VALUES = [
    (["groups", "create", ""], "group name '' is empty"),
    (["groups", "create", "  "], "group name '  ' is blank"),
    (["groups", "create", "a\nb"], r"group name 'a\nb' contains a control character (U+000A)"),
    (["groups", "create", "a\tb"], r"group name 'a\tb' contains a control character (U+0009)"),
    (["groups", "create", "a\x1b[31mb"], "contains a control character (U+001B)"),
    (["groups", "create", " eng2"], "group name ' eng2' has leading or trailing white space"),
    (["groups", "create", "eng2 "], "group name 'eng2 ' has leading or trailing white space"),
    (["groups", "create", "y" * 300], f"group name {'y' * 40!r}… (300 characters) is longer "
                                      "than 200 characters"),
    (["groups", "create", LONG], f"group name {'x' * 40!r}… (10000 characters) is longer "
                                 "than 200 characters"),
    (["groups", "create", "ok", "--organisation", ""], "organisation '' is empty"),
    (["groups", "create", "ok", "--organisation", "acme\n"], r"organisation 'acme\n' "
                                                             "contains a control character"),
    (["groups", "create", "ok", "--organisation", "o" * 201], "is longer than 200 characters"),
    (["groups", "create", "ok", "--description", "bell\a"], r"description 'bell\x07' "
                                                            "contains a control character"),
    (["groups", "create", "ok", "--description", "d" * 4001], "longer than 4000 characters"),
    (["groups", "create", "ok", "--icon", "a\nb"], r"icon 'a\nb' contains a control"),
    (["groups", "create", "ok", "--icon", "i" * 1025], "longer than 1024 characters"),
    (["members", "add", "eng", ""], "user name '' is empty"),
    (["members", "add", "eng", "bob\n"], r"user name 'bob\n' contains a control character"),
    (["members", "add", "eng", " bob"], "user name ' bob' has leading or trailing white "
                                        "space"),
    (["members", "add", "eng", "u" * 201], "is longer than 200 characters"),
    (["members", "add", "eng", "bob", "--email", "bob"], "email 'bob' is not an email "
                                                        "address (no '@')"),
    (["members", "add", "eng", "bob", "--email", "Bob <bob@example.org>"],
     "email 'Bob <bob@example.org>' is not an email address"),
    (["members", "add", "eng", "bob", "--email", "bob@localhost"], "email 'bob@localhost' is "
                                                                   "not a valid email address"),
    (["members", "add", "eng", "bob", "--role", "own\ner"], r"unknown role 'own\ner'"),
    (["members", "add", "a\nb", "bob"], r"no group named 'a\nb'"),
    (["members", "remove", "eng", "a\nb"], r"no user named 'a\nb'"),
    (["members", "set-role", "eng", LONG, "owner"], f"no user named {'x' * 40!r}… (10000 "
                                                    "characters)"),
    (["members", "set-role", "eng", "alice", "o" * 300], f"unknown role {'o' * 40!r}…"),
    (["groups", "show", "a\nb"], r"no group named 'a\nb'"),
    (["groups", "show", LONG], f"no group named {'x' * 40!r}… (10000 characters)"),
    (["groups", "show", "eng", "--organisation", "a\x01"], r"no group named 'eng' in "
                                                           r"organisation 'a\x01'"),
    (["groups", "delete", "  eng"], "no group named '  eng'"),
    (["users", "show", "alice\r"], r"no user named 'alice\r'"),
]


MakeStore = Callable[[str], Path]


@pytest.fixture
def eng_store(write_config: WriteConfig, tmp_path: Path) -> MakeStore:
    """``eng_store(url)``: a store at ``url`` with group eng and member alice; its config."""

    def make(url: str) -> Path:
        engine = open_engine(url)
        try:
            upgrade(engine)
            admin = Admin(engine, AuditWriter(tmp_path / "audit.jsonl"), "cli:setup")
            admin.create_group("eng")
            admin.add_member("eng", "alice")
        finally:
            engine.dispose()
        return write_config({"version": 1, "store": {"url": url},
                             "audit": {"file": str(tmp_path / "audit.jsonl")}})

    return make


def assert_refused(run_syncd: RunSyncd, config: Path, url: str, args: list[str],
                   message: str) -> None:
    """``syncd ARGS``: one line with ``message``, exit 2, nothing changed in store or file."""
    audit_file = config.parent / "audit.jsonl"
    rows_before, audit_before = store_rows(url), audit_file.read_text(encoding="utf-8")
    line = usage_error(run_syncd(*args, config=config))
    assert message in line
    assert len(line) < 300
    assert store_rows(url) == rows_before
    assert audit_file.read_text(encoding="utf-8") == audit_before


def in_process(*args: str | Path, config: Path | None = None, **_: Any) -> Result:
    """``syncd -c CONFIG ARGS`` run by click in this process: the same command tree and
    error handling as the installed command, without starting Python each time."""
    from click.testing import CliRunner

    from syncd.cli.main import cli

    argv = [*(["-c", str(config)] if config else []), *map(str, args)]
    result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    return Outcome(result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize(("args", "message"), BAD_VALUES)
def test_bad_names_and_values_are_refused(eng_store: MakeStore, tmp_path: Path,
                                          args: list[str], message: str) -> None:
    """Checked on the command line, before the store is opened: SQLite stands for both,
    and the command runs in this process (``test_bad_names_are_refused_alike_on_both_drivers``
    runs the installed one)."""
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    assert_refused(in_process, eng_store(url), url, args, message)


@pytest.mark.parametrize(("args", "message"), [
    (["groups", "create", "y" * 300], "is longer than 200 characters"),
    (["groups", "create", "eng", "--organisation", "o" * 256], "is longer than 200 "),
    (["members", "add", "eng", "u" * 256], "is longer than 200 characters"),
    (["groups", "show", LONG], f"no group named {'x' * 40!r}… (10000 characters)"),
    (["groups", "delete", "a\x01b"], r"no group named 'a\x01b'"),
    (["members", "remove", "eng", LONG], "no user named"),
    (["users", "show", "alice\r"], r"no user named 'alice\r'"),
])
def test_bad_names_are_refused_alike_on_both_drivers(run_syncd: RunSyncd, eng_store: MakeStore,
                                                     store_url: str, args: list[str],
                                                     message: str) -> None:
    """PostgreSQL answered a name longer than its column with an internal error."""
    assert_refused(run_syncd, eng_store(store_url), store_url, args, message)


def test_a_bad_name_makes_no_store(sq: Callable[..., Result], sqlite_config: Path) -> None:
    assert "contains a control character" in usage_error(sq("groups", "create", "a\nb"))
    assert "is not an email address" in usage_error(
        sq("members", "add", "eng", "bob", "--email", "bob"))
    assert not (sqlite_config.parent / "state").exists()


def test_good_unusual_names_round_trip(sq: Callable[..., Result]) -> None:
    name = "n" * 200
    ok(sq("groups", "create", name, "--description", "two\nlines\tand a tab",
          "--organisation", "o" * 200))
    ok(sq("members", "add", name, "ünï.o'brien", "--email", "ünï@exämple.org"))
    shown = json_doc(sq("groups", "show", name, "--format", "json"))
    assert (shown["name"], shown["description"], shown["organisation"]) == (
        name, "two\nlines\tand a tab", "o" * 200)
    assert [(m["user"], m["email"]) for m in shown["members"]] == [
        ("ünï.o'brien", "ünï@exämple.org")]


# -- audit --------------------------------------------------------------------------------------


def test_audit_filters(sq: Callable[..., Result], sqlite_admin: Admin) -> None:
    sqlite_admin.create_group("eng")
    sqlite_admin.create_group("ops")
    sqlite_admin.add_member("eng", "alice")
    sqlite_admin.add_member("ops", "bob")
    sqlite_admin.set_role("ops", "bob", "owner")
    everything = json_lines(sq("audit", "--format", "json"))
    assert len(everything) == 7
    assert {r["actor"] for r in everything} == {"cli:setup"}

    assert [r["op"] for r in json_lines(sq("audit", "--group", "ops", "--format", "json"))] == [
        "create_group", "add_member", "change_role"]
    assert [r["op"] for r in json_lines(sq("audit", "--user", "bob", "--format", "json"))] == [
        "create_user", "add_member", "change_role"]
    # --limit keeps the newest, still printed oldest first.
    assert json_lines(sq("audit", "--limit", "2", "--format", "json")) == everything[-2:]
    since = (datetime.fromisoformat(everything[4]["ts"].replace("Z", "+00:00"))
             ).isoformat().replace("+00:00", "Z")
    assert json_lines(sq("audit", "--since", since, "--format", "json")) == everything[4:]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert ok(sq("audit", "--since", future, "--format", "json")) == ""
    assert "not an ISO 8601 time" in usage_error(sq("audit", "--since", "yesterday"))


# -- config commands --------------------------------------------------------------------------


def test_check_config_ok(run_syncd: RunSyncd, write_config: WriteConfig) -> None:
    config = write_config("""
        version: 1
        connectors:
          - name: demo
            type: ldif
            path: demo/directory.ldif
        rules:
          - name: all
    """)
    result = run_syncd("check-config", config=config)
    assert result.code == 0, result
    assert result.stdout == f"{config}: ok (1 connectors, 1 rules)\n"


def test_check_config_reports_every_problem(run_syncd: RunSyncd,
                                            write_config: WriteConfig) -> None:
    config = write_config("""
        version: 1
        colour: blue
        connectors:
          - name: demo
            type: ldif
            path: x.ldif
            schedule: {delta: 5 minutes}
        rules:
          - name: r
            source: nope
    """)
    result = run_syncd("check-config", config=config)
    assert result.code == 2, result
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{config}:2:1: unknown key 'colour' in the top level",
        f"{config}:7:23: connectors.0.schedule.delta: invalid duration '5 minutes': "
        "expected an integer and a unit (s, m, h, d)",
        f"{config}:10:13: rules.0.source: 'nope' is not a connector name",
    ]


def test_check_config_uses_syncd_config_env(run_syncd: RunSyncd,
                                            write_config: WriteConfig) -> None:
    config = write_config("version: 2\n")
    result = run_syncd("check-config", env={"SYNCD_CONFIG": str(config)})
    assert result.code == 2, result
    assert result.stderr.startswith(f"{config}:1:10: version: unsupported config version 2")


def test_check_config_missing_file(run_syncd: RunSyncd, tmp_path: Path) -> None:
    result = run_syncd("-c", str(tmp_path / "absent.yaml"), "check-config")
    assert result.code == 2, result
    assert result.stderr == (f"{tmp_path / 'absent.yaml'}:1:1: cannot read the config file: "
                             "No such file or directory\n")


def test_check_config_warns_of_a_readable_literal_secret(run_syncd: RunSyncd,
                                                         write_config: WriteConfig) -> None:
    secret = "literal-Secret-4711"
    config = write_config(f"""
        version: 1
        connectors:
          - name: corp
            type: ldap
            url: ldap://127.0.0.1:3389
            bind_dn: cn=admin,dc=example,dc=org
            password: {secret}
            groups: {{base: "ou=groups,dc=example,dc=org"}}
            users: {{base: "ou=people,dc=example,dc=org"}}
    """, mode=0o644)
    result = run_syncd("check-config", config=config)
    assert result.code == 0, result
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(e["event"], e["level"], e["location"]) for e in events] == [
        ("config.literal_secret_readable", "warning", f"{config}:7:15")]
    assert secret not in result.stdout + result.stderr

    config.chmod(0o600)
    result = run_syncd("check-config", config=config)
    assert result.code == 0, result
    assert result.stderr == ""


def test_check_config_no_warning_for_env_secret(run_syncd: RunSyncd,
                                                write_config: WriteConfig) -> None:
    config = write_config("""
        version: 1
        connectors:
          - name: corp
            type: ldap
            url: ldap://127.0.0.1:3389
            bind_dn: cn=admin,dc=example,dc=org
            password: ${env:SYNCD_TEST_LDAP_PASSWORD}
            groups: {base: "ou=groups,dc=example,dc=org"}
            users: {base: "ou=people,dc=example,dc=org"}
    """, mode=0o644)
    result = run_syncd("check-config", config=config,
                       env={"SYNCD_TEST_LDAP_PASSWORD": "from-the-env-0815"})
    assert result.code == 0, result
    assert result.stderr == ""
    result = run_syncd("check-config", config=config, env={"SYNCD_TEST_LDAP_PASSWORD": None})
    assert result.code == 2, result
    assert result.stderr == (f"{config}:7:15: connectors.0.password: environment variable "
                             "'SYNCD_TEST_LDAP_PASSWORD' is not set\n")


def test_config_schema(run_syncd: RunSyncd) -> None:
    # The schema needs no valid config file.
    schema = json_doc(run_syncd("config", "schema"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert "version" in schema["required"]
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    types = {defs[name]["properties"]["type"]["const"] for name in defs
             if "type" in defs[name].get("properties", {})
             and "const" in defs[name]["properties"]["type"]}
    assert {"ldap", "azuread", "ldif"} <= types
    connector_refs = json.dumps(schema["properties"]["connectors"])
    for name in ("LdapConfig", "AzureAdConfig", "LdifConfig"):
        assert f"#/$defs/{name}" in connector_refs
    assert "schema" in defs["LdapConfig"]["properties"]  # written as in the file, not schema_
    assert "in" in defs["NameMatch"]["properties"]


def test_config_schema_is_valid_json_schema(run_syncd: RunSyncd) -> None:
    schema = json_doc(run_syncd("config", "schema"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = {"version": 1, "store": {"url": "sqlite:///x.db"},
            "connectors": [{"name": "corp", "type": "ldap", "url": "ldap://h",
                            "schema": "rfc2307", "groups": {"base": "ou=g"},
                            "users": {"base": "ou=p"}},
                           {"name": "demo", "type": "ldif", "path": "d.ldif"}],
            "rules": [{"name": "r", "when": {"name": {"in": ["a"]}, "not": {"dn": {
                "under": "ou=x"}}}, "group": {"name": "eng-{name}"}}]}
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors({"version": 1, "colour": "blue"})) != []
    assert list(validator.iter_errors({"version": 1, "connectors": [
        {"name": "x", "type": "ftp"}]})) != []
