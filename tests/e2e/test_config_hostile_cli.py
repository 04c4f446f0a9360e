"""Hostile and accidental config input through the installed ``syncd`` command: one clear
line per problem, exit 2, never a traceback or a hang; secrets masked, names readable."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result

from syncd.config.yamlpos import MAX_NODES

pytestmark = pytest.mark.e2e

RunSyncd = Callable[..., Result]
WriteConfig = Callable[..., Path]

BILLION_LAUGHS = """\
version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def one_line(result: Result) -> str:
    """The single line a refused config prints: on stderr, exit 2, no traceback."""
    assert result.code == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    [line] = result.stderr.splitlines()
    return line


@pytest.mark.parametrize(("data", "message"), [
    pytest.param("version: 1\nstore:\n  url: \"sqlite:///café.db\"\n".encode("latin-1"),
                 "3:22: not UTF-8 text: byte 0xe9 at line 3, column 22", id="latin-1"),
    pytest.param("version: 1\n".encode("utf-16"),
                 "1:1: not UTF-8 text: the file starts with a UTF-16 byte order mark",
                 id="utf-16"),
    pytest.param("version: 1\n".encode("utf-16-le"), "1:2: not UTF-8 text: a NUL character",
                 id="utf-16-no-bom"),
    pytest.param(bytes(range(128, 256)), "1:1: not UTF-8 text: byte 0x80", id="binary"),
    pytest.param(BILLION_LAUGHS.encode(), f"the document is too large: more than {MAX_NODES} "
                 "values once its aliases are expanded", id="billion-laughs"),
    pytest.param(b"a: &a [*a]\n", "1:8: the alias *a refers to a node that contains it",
                 id="self-alias"),
    pytest.param(b"version: 1\nx: " + b"[" * 20000 + b"]" * 20000, "the document is nested "
                 "too deeply", id="deep"),
    pytest.param(b"version: 1\nstore: {url: notaurl}\n",
                 "2:14: store.url: not an SQLAlchemy URL", id="store-url"),
])
def test_check_config_refuses_in_one_line(run_syncd: RunSyncd, tmp_path: Path, data: bytes,
                                          message: str) -> None:
    path = tmp_path / "syncd.yaml"
    path.write_bytes(data)
    started = time.monotonic()
    line = one_line(run_syncd("check-config", config=path, timeout=30))
    assert time.monotonic() - started < 15  # start-up included; the check itself is fast
    assert line.startswith(f"{path}:"), line
    assert message in line, line


def test_a_bad_duration_is_reported_with_the_other_errors(run_syncd: RunSyncd,
                                                          write_config: WriteConfig) -> None:
    path = write_config("""
        version: 1
        connectors:
          - name: d
            type: ldif
            path: x.ldif
            schedule: {delta: 99999999999999999999s}
        colour: red
    """)
    result = run_syncd("check-config", config=path)
    assert result.code == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{path}:6:23: connectors.0.schedule.delta: invalid duration '99999999999999999999s': "
        "longer than the maximum of 366d",
        f"{path}:7:1: unknown key 'colour' in the top level",
    ]


def test_a_rules_file_that_is_not_utf8(run_syncd: RunSyncd, write_config: WriteConfig,
                                       tmp_path: Path) -> None:
    (tmp_path / "directory.ldif").write_text("", encoding="utf-8")
    path = write_config("""
        version: 1
        store: {url: "sqlite:///store.db"}
        connectors:
          - name: demo
            type: ldif
            path: directory.ldif
    """)
    rules = tmp_path / "rules.yaml"
    rules.write_bytes("- name: équipe\n".encode("latin-1"))
    line = one_line(run_syncd("sync", "--offline", "--rules", rules, "--dry-run",
                              config=path))
    assert line.startswith(f"{rules}:1:9: not UTF-8 text: byte 0xe9"), line
    assert not (tmp_path / "store.db").exists()


def test_a_secret_file_that_is_not_utf8(run_syncd: RunSyncd, write_config: WriteConfig,
                                        tmp_path: Path) -> None:
    (tmp_path / "ldap-password").write_bytes("mot-de-passe-été".encode("latin-1"))
    path = write_config("""
        version: 1
        connectors:
          - name: corp
            type: ldap
            url: ldap://127.0.0.1:1
            bind_dn: cn=admin,dc=example,dc=org
            password: ${file:ldap-password}
            groups: {base: "ou=groups,dc=example,dc=org"}
            users: {base: "ou=people,dc=example,dc=org"}
    """)
    line = one_line(run_syncd("check-config", config=path))
    assert line == (f"{path}:7:15: connectors.0.password: {tmp_path / 'ldap-password'} "
                    "is not UTF-8 text")


def test_a_password_equal_to_the_connector_name(run_syncd: RunSyncd,
                                                write_config: WriteConfig) -> None:
    # The password "corp" of the connector "corp": the report and the logs still say which
    # connector failed.
    path = write_config("""
        version: 1
        store: {url: "sqlite:///store.db"}
        connectors:
          - name: corp
            type: ldap
            url: ldap://127.0.0.1:1
            bind_dn: cn=admin,dc=example,dc=org
            password: ${env:SYNCD_T_PASSWORD}
            retries: 0
            timeouts: {connect: 2s}
            groups: {base: "ou=groups,dc=example,dc=org"}
            users: {base: "ou=people,dc=example,dc=org"}
        rules:
          - name: all
            source: corp
    """)
    result = run_syncd("--log-format", "json", "sync", "--dry-run", "--format", "json",
                       config=path, env={"SYNCD_T_PASSWORD": "corp"})
    assert result.code == 1, result
    report = json.loads(result.stdout)
    error = report["connectors"]["corp"]["error"]
    assert error.startswith("ldap connector 'corp' (ldap://127.0.0.1:1): cannot connect"), error
    events = [json.loads(line) for line in result.stderr.splitlines()]
    [run] = [e for e in events if e["event"] == "sync.run"]
    assert (run["connector"], run["error"]) == ("corp", error)
    assert "**********" not in result.stdout + result.stderr
