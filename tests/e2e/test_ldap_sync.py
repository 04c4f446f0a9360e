"""The installed ``syncd`` command against a real slapd: delta equals full, and every outage
or partial answer fails the run (exit 1, ``run_failed``) without changing the store."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from conftest import Result, require_server, run_syncd_command
from ldapdata import GROUPS, PEOPLE, directory, user_dn
from slapd import LIMITED_DN, LIMITED_PW, ROOT_DN, ROOT_PW, Slapd, slapd_problem

pytestmark = [pytest.mark.slapd, pytest.mark.e2e]

PASSWORD_ENV = "SYNCD_LDAP_PASSWORD"
REMOTE = "ldap://ldap.elsewhere.example/ou=remote,dc=org"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Slapd]:
    """A slapd loaded with the test directory, its entries aged past the 1 s overlap."""
    problem = slapd_problem()
    if problem is not None:
        require_server("slapd", problem)
    slapd = Slapd(tmp_path / "slapd")
    slapd.setup(directory())
    slapd.start()
    time.sleep(2.1)
    yield slapd
    slapd.stop()


def write_config(directory_: Path, url: str, *, bind_dn: str = ROOT_DN, retries: int = 0,
                 store: str = "store.db", users_base: str = PEOPLE,
                 referrals: str = "ignore") -> Path:
    """A config with one ldap connector ``corp`` and one rule taking every group."""
    path = directory_ / "syncd.yaml"
    directory_.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""\
version: 1
store: {{url: "sqlite:///{directory_ / store}"}}
audit: {{file: "{directory_ / 'audit.jsonl'}"}}
safety: {{max_group_deletes: 100, max_member_removals: "100%"}}
connectors:
  - name: corp
    type: ldap
    url: {url}
    bind_dn: "{bind_dn}"
    password: ${{env:{PASSWORD_ENV}}}
    page_size: 5
    retries: {retries}
    delta_overlap: 1s
    timeouts: {{connect: 2s, operation: 10s}}
    groups: {{base: "{GROUPS}"}}
    users: {{base: "{users_base}"}}
    referrals: {referrals}
    attributes:
      user_disabled: {{name: nsAccountLock, equals: "TRUE"}}
rules:
  - name: all
    source: corp
    roles:
      owner: {{attribute: owner}}
""", encoding="utf-8")
    path.chmod(0o600)
    return path


def syncd(config: Path, *args: str, password: str = ROOT_PW) -> Result:
    return run_syncd_command(*args, config=config, env={PASSWORD_ENV: password},
                             cwd=config.parent)


def sync_json(config: Path, *args: str, password: str = ROOT_PW) -> tuple[int, dict[str, Any]]:
    result = syncd(config, "sync", "--format", "json", *args, password=password)
    assert result.stdout.strip(), result.stderr
    assert password not in result.stdout + result.stderr
    return result.code, json.loads(result.stdout)


def store_state(config: Path) -> dict[str, Any]:
    """Every group as ``groups show --format json`` prints it, without ids and times."""
    listed = syncd(config, "groups", "list", "--format", "json")
    assert listed.code == 0, listed.stderr
    state = {}
    for item in json.loads(listed.stdout):
        shown = syncd(config, "groups", "show", item["name"], "--format", "json")
        assert shown.code == 0, shown.stderr
        group = json.loads(shown.stdout)
        for key in ("id", "created", "updated", "created_at", "updated_at"):
            group.pop(key, None)
        group["members"] = sorted(
            ({k: v for k, v in m.items() if not k.endswith(("_at", "id"))}
             for m in group["members"]), key=lambda m: m["user"])
        state[group["name"]] = group
    return state


def cursor(config: Path) -> Any:
    engine = create_engine(f"sqlite:///{config.parent / 'store.db'}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT cursor FROM cursors WHERE connector = 'corp'")
                                ).scalar_one_or_none()
    finally:
        engine.dispose()


def mirror_rows(config: Path) -> dict[str, list[tuple[str, str]]]:
    """The mirror's entries (external id, digest of the stored data) per table."""
    engine = create_engine(f"sqlite:///{config.parent / 'store.db'}")
    try:
        with engine.connect() as conn:
            return {table: [tuple(row) for row in conn.execute(text(
                        f"SELECT external_id, digest FROM {table} ORDER BY external_id"))]  # noqa: S608
                    for table in ("mirror_users", "mirror_groups")}
    finally:
        engine.dispose()


def change_directory(server: Slapd) -> None:
    """Membership, rename (modrdn), deletion, description, owner, lock, new group."""
    from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

    ldap: Any = server.connection()
    ldap.modify(f"cn=staff,{GROUPS}", {"member": [(MODIFY_DELETE, [user_dn("bob")])],
                                       "owner": [(MODIFY_ADD, [user_dn("alice")])]})
    ldap.modify(f"cn=big,{GROUPS}", {"member": [(MODIFY_ADD, [user_dn("zoe")])],
                                     "description": [(MODIFY_REPLACE, ["now bigger"])]})
    ldap.modify_dn(f"cn=unique,{GROUPS}", "cn=unique-renamed")
    ldap.delete(f"cn=spare,{GROUPS}")
    ldap.modify(user_dn("alice"), {"objectClass": [(MODIFY_ADD, ["extensibleObject"])],
                                   "nsAccountLock": [(MODIFY_ADD, ["TRUE"])]})
    ldap.add(f"cn=newcomers,{GROUPS}", ["groupOfNames"],
             {"cn": "newcomers", "member": [user_dn("b001"), user_dn("zoe")]})


def test_delta_sync_leaves_the_store_as_a_full_sync(server: Slapd, tmp_path: Path) -> None:
    by_delta = write_config(tmp_path / "delta", server.url)
    by_full = write_config(tmp_path / "full", server.url)
    # both stores start from the same first run, so that only delta vs full differs
    for config in (by_delta, by_full):
        code, first = sync_json(config)
        assert (code, first["connectors"]["corp"]["mode"], first["status"]) == (
            0, "full", "applied")
    change_directory(server)
    code, second = sync_json(by_delta)
    assert code == 0, second
    assert second["connectors"]["corp"]["mode"] == "delta"
    ops = [(c["op"], c.get("group")) for c in second["changes"]]
    assert ("update_group", "unique") in ops  # the rename, not a delete and a create
    rename = next(c for c in second["changes"] if c.get("group") == "unique")
    assert rename["fields"]["name"] == {"old": "unique", "new": "unique-renamed"}
    assert ("delete_group", "spare") in ops and ("create_group", "newcomers") in ops
    code, full = sync_json(by_full, "--full")
    assert code == 0 and full["connectors"]["corp"]["mode"] == "full"
    delta_state, full_state = store_state(by_delta), store_state(by_full)
    assert sorted(delta_state) == sorted(["staff", "devs", "R&D, Team+1", "unique-renamed",
                                          "big", "external", "newcomers"])
    assert delta_state == full_state
    # the delta rewrote only the entries it touched, and the mirror is the full run's
    assert mirror_rows(by_delta) == mirror_rows(by_full)
    assert {m["user"]: m["role"] for m in delta_state["staff"]["members"]}["alice"] == "owner"
    # and nothing is left for either to do
    code, again = sync_json(by_delta)
    assert (code, again["connectors"]["corp"]["mode"], again["status"]) == (
        0, "delta", "no_changes")
    code, again = sync_json(by_full, "--full")
    assert (code, again["status"]) == (0, "no_changes")


class CuttingProxy:
    """A TCP proxy to slapd that drops each connection after ``cut_after`` bytes from the
    server (None: never), as a network failure in the middle of a paged search would."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.cut_after: int | None = None
        self.on_cut: Callable[[], None] | None = None  # e.g. kill the server instead
        # cut only connections from the nth on (0: all), counted from this being set
        self.cut_from = 0
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server, None),
                             daemon=True).start()
            cut = self.cut_after if self.connections > self.cut_from else None
            threading.Thread(target=self._pump, args=(server, client, cut),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(512):
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[:limit - sent])
                    self.cuts += 1
                    if self.on_cut is not None:
                        self.on_cut()  # the server dies with the answer half sent
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.listener.close()


def _break(how: str, server: Slapd, proxy: CuttingProxy, config: Path) -> str:
    """Make the next run fail as ``how`` says; return the password that run should use."""
    ldap: Any = server.connection()
    if how != "down":
        ldap.delete(f"cn=spare,{GROUPS}")  # a change a successful run would apply
    if how == "down":
        server.stop()
    elif how == "dropped":
        proxy.cut_after = 1500
    elif how == "scan_dropped":
        # the run's first connection reads the changes; the scans for removals run beside
        # it on connections of their own (one a try), opened after it
        proxy.cut_after, proxy.cut_from, proxy.connections = 1500, 1, 0
    elif how == "killed":
        proxy.cut_after = 1500
        proxy.on_cut = server.kill
    elif how == "size_limit":
        write_config(config.parent, f"ldap://127.0.0.1:{proxy.port}", bind_dn=LIMITED_DN,
                     retries=1)
        return LIMITED_PW
    elif how in ("referral", "reference_refused"):
        ldap.add(f"ou=remote,{PEOPLE}", ["referral", "extensibleObject"],
                 {"ou": "remote", "ref": REMOTE})
        # the users base is the referral object itself, or holds it with referrals: fail
        write_config(config.parent, f"ldap://127.0.0.1:{proxy.port}", retries=1,
                     **({"users_base": f"ou=remote,{PEOPLE}"} if how == "referral"
                        else {"referrals": "fail"}))
    elif how == "bind_refused":
        return "not-the-password"
    return ROOT_PW


@pytest.mark.parametrize(("how", "message"), [
    ("down", "cannot connect"),
    ("bind_refused", "bind refused"),
    ("dropped", "connection lost"),
    ("scan_dropped", "connection lost"),
    ("killed", "connection lost|cannot connect"),
    ("size_limit", "size limit exceeded"),
    ("referral", f"unexpected referral .* to {REMOTE}"),
    ("reference_refused", f"continuation reference to {REMOTE}.*referrals: fail refuses it"),
])
def test_outage_fails_the_run_and_changes_nothing(server: Slapd, tmp_path: Path, how: str,
                                                 message: str) -> None:
    proxy = CuttingProxy(server.port)
    try:
        url = server.url if how == "down" else f"ldap://127.0.0.1:{proxy.port}"
        config = write_config(tmp_path / "s", url, retries=1)
        assert sync_json(config)[0] == 0
        before, kept = store_state(config), cursor(config)
        assert "spare" in before and kept is not None
        password = _break(how, server, proxy, config)
        result = syncd(config, "sync", "--format", "json", password=password)
        assert result.code == 1, result.stdout + result.stderr
        assert result.stdout.strip(), result.stderr
        report = json.loads(result.stdout)
        error = report["connectors"]["corp"]["error"]
        assert report["status"] == "failed"
        assert error.startswith("ldap connector 'corp'") and re.search(message, error)
        assert "\n" not in error
        for secret in (ROOT_PW, LIMITED_PW, "not-the-password"):
            assert secret not in result.stdout + result.stderr
        if how in ("dropped", "scan_dropped", "killed"):
            assert proxy.cuts >= 1
        if how == "scan_dropped":  # the first connection was not cut
            assert proxy.connections >= 3 and proxy.cuts == proxy.connections - 1
        if how == "killed":
            assert not server.running
        # in table form too: one line naming the connector
        table = syncd(config, "sync", password=password)
        assert table.code == 1 and "corp" in table.stdout + table.stderr
        if how in ("down", "killed"):
            server.start()
        proxy.cut_after, proxy.on_cut, proxy.cut_from = None, None, 0
        assert store_state(config) == before
        assert cursor(config) == kept
        audit = syncd(config, "audit", "--format", "json")
        records = [json.loads(line) for line in audit.stdout.splitlines()]
        assert records[-1]["op"] == "run_failed"
        assert re.search(message, json.dumps(records[-1]))
        audit_file = (config.parent / "audit.jsonl").read_text(encoding="utf-8")
        assert "run_failed" in audit_file
        for secret in (ROOT_PW, LIMITED_PW, "not-the-password"):
            assert secret not in audit_file
    finally:
        proxy.close()


def test_test_connection_command(server: Slapd, tmp_path: Path) -> None:
    config = write_config(tmp_path / "t", server.url)
    result = syncd(config, "test-connection", "corp", "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["groups"], report["users"], report["ok"]) == (7, 30, True)
    assert report["timings"]["total_s"] >= 0
    table = syncd(config, "test-connection", "corp")
    assert table.code == 0 and "groups" in table.stdout and "time: total" in table.stdout
    assert ROOT_PW not in result.stdout + table.stdout + table.stderr
    bad = syncd(config, "test-connection", "corp", password="wrong-one-123")
    assert bad.code == 1
    assert bad.stderr.strip().startswith("syncd: error: ldap connector 'corp'")
    assert "wrong-one-123" not in bad.stdout + bad.stderr
    assert syncd(config, "test-connection", "nope").code == 2




def test_continuation_references_are_logged_and_do_not_fail_the_run(server: Slapd,
                                                                    tmp_path: Path) -> None:
    """A referral object in the users base: full and delta runs apply, each with one log
    event naming the reference; test-connection shows it."""
    config = write_config(tmp_path / "r", server.url)
    ldap: Any = server.connection()
    ldap.add(f"ou=remote,{PEOPLE}", ["referral", "extensibleObject"],
             {"ou": "remote", "ref": REMOTE})

    def events(stderr: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        return [e for e in lines if e.get("event") == "ldap.continuation_references"]

    uris = [f"{REMOTE}??sub"]  # slapd adds the scope to continue with
    first = syncd(config, "sync", "--format", "json")
    assert first.code == 0, first.stderr
    assert json.loads(first.stdout)["connectors"]["corp"]["mode"] == "full"
    assert [(e["count"], e["uris"]) for e in events(first.stderr)] == [(1, uris)]
    ldap.delete(f"cn=spare,{GROUPS}")
    second = syncd(config, "sync", "--format", "json")
    assert second.code == 0, second.stderr
    report = json.loads(second.stdout)
    assert (report["connectors"]["corp"]["mode"], report["status"]) == ("delta", "applied")
    assert ("delete_group", "spare") in [(c["op"], c.get("group")) for c in report["changes"]]
    # the search for changed users and the id-only scan of the users base
    assert [(e["count"], e["uris"]) for e in events(second.stderr)] == [(2, uris)]
    shown = syncd(config, "test-connection", "corp", "--format", "json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["references"] == {"count": 1, "uris": uris}
    table = syncd(config, "test-connection", "corp")
    assert table.code == 0, table.stderr
    assert re.search(r"continuation references[\s│]+1\b", table.stdout)
    assert re.search(rf"not followed[\s│]+{re.escape(uris[0])}", table.stdout)
