"""Hostile and accidental config input: each gives clear FILE:LINE:COL lines, never a crash."""

from __future__ import annotations

import os
import textwrap
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest

from syncd import secrets
from syncd.config.loader import load_config, load_rules_file, parse_config
from syncd.config.yamlpos import MAX_DEPTH, MAX_NODES
from syncd.errors import ConfigError

FILE = Path("/etc/syncd/syncd.yaml")


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def at(text: str, needle: str, occurrence: int = 1) -> str:
    """``LINE:COL`` (1-based) of the ``occurrence``-th ``needle`` in ``text``."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"{line}:{col}"


def problems(text: str, file: Path = FILE) -> list[str]:
    """The problem lines of an invalid config."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, file)
    assert info.value.exit_code == 2
    return info.value.problems


# -- durations ------------------------------------------------------------------------------


def test_an_oversized_duration_is_reported_with_the_other_errors() -> None:
    text = dedent("""
        version: 1
        colour: red
        connectors:
          - name: d
            type: ldif
            path: x.ldif
            schedule: {delta: 99999999999999999999s}
          - name: e
            type: ldif
            path: y.ldif
            schedule: {delta: 367d, full: "0 3 * * 9"}
    """)
    cron = at(text, '"0 3')
    found = problems(text)
    assert found == [
        f"{FILE}:{at(text, 'colour')}: unknown key 'colour' in the top level",
        f"{FILE}:{at(text, '9999')}: connectors.0.schedule.delta: invalid duration "
        "'99999999999999999999s': longer than the maximum of 366d",
        f"{FILE}:{at(text, '367d')}: connectors.1.schedule.delta: invalid duration '367d': "
        "longer than the maximum of 366d",
        f"{FILE}:{cron}: connectors.1.schedule.full: invalid cron expression "
        "'0 3 * * 9': day of week 9 is out of range (0-7)",
    ]


def test_the_longest_duration_is_accepted() -> None:
    text = dedent("""
        version: 1
        connectors:
          - name: d
            type: ldif
            path: x.ldif
            schedule: {delta: 366d}
    """)
    cfg = parse_config(text, FILE)
    assert cfg.connectors[0].schedule is not None
    assert cfg.connectors[0].schedule.delta == "366d"


# -- text that is not UTF-8 -----------------------------------------------------------------


def only_file_problem(path: Path, rules: bool = False) -> str:
    """The one problem line of the config (or rules) file at ``path``."""
    with pytest.raises(ConfigError) as info:
        if rules:
            load_rules_file(path, parse_config("version: 1\n", FILE))
        else:
            load_config(path)
    assert info.value.exit_code == 2
    [line] = info.value.problems
    return line


LATIN1 = "version: 1\nstore:\n  url: \"sqlite:///café.db\"\n".encode("latin-1")


@pytest.mark.parametrize("rules", [False, True], ids=["config", "rules-file"])
@pytest.mark.parametrize(("data", "where", "message"), [
    pytest.param(LATIN1, "3:22", "not UTF-8 text: byte 0xe9 at line 3, column 22",
                 id="latin-1"),
    pytest.param("# é\nrules: [été]\n".encode("latin-1"), "1:3",
                 "not UTF-8 text: byte 0xe9 at line 1, column 3", id="latin-1-comment"),
    pytest.param("version: 1\n# ok: é\n\n  x: ".encode() + b"\xff", "4:6",
                 "not UTF-8 text: byte 0xff at line 4, column 6", id="after-utf-8"),
    pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "1:1",
                 "not UTF-8 text: byte 0x89 at line 1, column 1", id="binary"),
    pytest.param("version: 1\n".encode("utf-16"), "1:1",
                 "not UTF-8 text: the file starts with a UTF-16 byte order mark",
                 id="utf-16-bom"),
    pytest.param("version: 1\n".encode("utf-16-be"), "1:1",
                 "not UTF-8 text: a NUL character (is the file UTF-16?", id="utf-16-be"),
    pytest.param("version: 1\n".encode("utf-16-le"), "1:2",
                 "not UTF-8 text: a NUL character (is the file UTF-16?", id="utf-16-le"),
    pytest.param(b"version: 1\nrules: [a\x07b]\n", "2:10",
                 "the character U+0007 is not allowed in YAML", id="control-character"),
])
def test_text_that_is_not_utf8(tmp_path: Path, data: bytes, where: str, message: str,
                               rules: bool) -> None:
    path = tmp_path / "input.yaml"
    path.write_bytes(data)
    line = only_file_problem(path, rules)
    assert line.startswith(f"{path}:{where}: {message}"), line


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "syncd.yaml"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\nstore: {url: 'sqlite:///x.db'}\n")
    assert load_config(path).store.url == "sqlite:///x.db"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\ncolour: red\n")
    assert only_file_problem(path) == f"{path}:2:1: unknown key 'colour' in the top level"
    rules = tmp_path / "rules.yaml"
    rules.write_bytes(b"\xef\xbb\xbf- name: r\n")
    assert [r.name for r in load_rules_file(rules, parse_config("version: 1\n", FILE))] == [
        "r"]


def test_an_endless_config_file_is_refused_quickly() -> None:
    started = time.perf_counter()
    line = only_file_problem(Path("/dev/zero"))
    assert line == "/dev/zero:1:1: the config file is larger than 4 MiB"
    assert time.perf_counter() - started < 5


# -- ${file:...} and ${env:...} that are not UTF-8 ------------------------------------------


def ldap_with_password(ref: str) -> str:
    return dedent(f"""
        version: 1
        connectors:
          - name: corp
            type: ldap
            url: ldap://127.0.0.1:3389
            bind_dn: cn=admin,dc=example,dc=org
            password: {ref}
            groups: {{base: "ou=groups,dc=example,dc=org"}}
            users: {{base: "ou=people,dc=example,dc=org"}}
    """)


@pytest.mark.parametrize("content", [
    "pässwörd".encode("latin-1"), "password".encode("utf-16"), b"\xff\xfe\xfd",
], ids=["latin-1", "utf-16", "binary"])
def test_a_secret_file_that_is_not_utf8(tmp_path: Path, content: bytes) -> None:
    secret = tmp_path / "ldap-password"
    secret.write_bytes(content)
    text = ldap_with_password(f"${{file:{secret}}}") + "colour: red\n"
    found = problems(text)
    assert found == [
        f"{FILE}:{at(text, '${file')}: connectors.0.password: {secret} is not UTF-8 text",
        f"{FILE}:{at(text, 'colour')}: unknown key 'colour' in the top level",
    ]


def test_a_secret_file_with_a_utf8_byte_order_mark(tmp_path: Path) -> None:
    secret = tmp_path / "ldap-password"
    secret.write_bytes(b"\xef\xbb\xbfpw-" + uuid.uuid4().hex.encode() + b"\n")
    cfg = parse_config(ldap_with_password(f"${{file:{secret}}}"), FILE)
    password = cfg.connectors[0].password  # type: ignore[union-attr]
    assert password is not None
    assert password.get_secret_value() == secret.read_text(encoding="utf-8-sig").strip()


def test_an_endless_secret_file_is_refused() -> None:
    text = ldap_with_password("${file:/dev/zero}")
    assert problems(text) == [f"{FILE}:{at(text, '${file')}: connectors.0.password: "
                              "/dev/zero is larger than 1 MiB"]


def test_an_environment_variable_that_is_not_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_T_LATIN1", os.fsdecode(b"caf\xe9"))
    text = ldap_with_password("${env:SYNCD_T_LATIN1}")
    assert problems(text) == [f"{FILE}:{at(text, '${env')}: connectors.0.password: "
                              "environment variable 'SYNCD_T_LATIN1' is not UTF-8 text"]


# -- YAML values the safe constructor refuses -----------------------------------------------


@pytest.mark.parametrize(("value", "message"), [
    ("!custom x", "unsupported YAML value: could not determine a constructor for the tag "
                  "'!custom'"),
    ("!!python/name:os.system x", "unsupported YAML value: could not determine a "
     "constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
    ("9" * 5000, "cannot read this value as a YAML int"),
    ("2001-13-45", "cannot read this value as a YAML timestamp"),
    ("!!binary a", "unsupported YAML value: failed to decode base64 data"),
])
def test_a_value_yaml_cannot_construct(value: str, message: str) -> None:
    text = f"version: 1\naudit: {{file: {value}}}\ncolour: red\n"
    found = problems(text)
    assert found[0].startswith(f"{FILE}:2:15: {message}"), found
    assert found[-1] == f"{FILE}:3:1: unknown key 'colour' in the top level"


# -- aliases and nesting --------------------------------------------------------------------

BILLION_LAUGHS = dedent("""
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
""")


def fast_problems(text: str) -> list[str]:
    """The problems of ``text``, which must be found in well under a second and 50 MiB."""
    started = time.perf_counter()
    found = problems(text)
    assert time.perf_counter() - started < 1.0
    tracemalloc.start()  # a second run: tracing slows it down several times
    try:
        assert problems(text) == found
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024, peak
    return found


def test_billion_laughs_is_refused_fast() -> None:
    assert len(BILLION_LAUGHS.encode()) < 500
    [line] = fast_problems(BILLION_LAUGHS)
    # Refused at an alias of the first line whose expansion passes the limit.
    first_e = at(BILLION_LAUGHS, "*e").split(":")[0]
    assert line.startswith(f"{FILE}:{first_e}:"), line
    assert line.endswith(f": the document is too large: more than {MAX_NODES} values once "
                         "its aliases are expanded")


@pytest.mark.parametrize(("text", "needle"), [
    ("a: &a [*a]\n", "*a"),
    ("version: 1\nx: &x {y: [1, {z: *x}]}\n", "*x"),
    ("x: &x [1, &y [2, *y]]\n", "*y"),
])
def test_an_alias_inside_its_own_node_is_refused(text: str, needle: str) -> None:
    name = needle[1:]
    assert fast_problems(text) == [
        f"{FILE}:{at(text, needle)}: the alias *{name} refers to a node that contains it"]


def test_deep_nesting_is_refused_fast() -> None:
    text = "version: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n"
    assert fast_problems(text) == [
        f"{FILE}:2:{4 + MAX_DEPTH - 1}: the document is nested too deeply: more than "
        f"{MAX_DEPTH} levels once its aliases are expanded"]


def test_deep_nesting_in_block_style_is_refused() -> None:
    text = "version: 1\n" + "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 5))
    [line] = fast_problems(text)
    assert line.startswith(f"{FILE}:{MAX_DEPTH + 1}:"), line
    assert "nested too deeply" in line


def test_nesting_made_deep_by_an_alias_is_refused() -> None:
    half = MAX_DEPTH // 2 + 5
    text = (f"version: 1\nx: &x {'[' * half}{']' * half}\n"
            f"y: {'[' * half}*x{']' * half}\n")
    assert fast_problems(text) == [
        f"{FILE}:{at(text, '*x')}: the document is nested too deeply: more than "
        f"{MAX_DEPTH} levels once its aliases are expanded"]


def test_the_largest_document_is_still_read() -> None:
    def document(extra: int) -> str:
        # The top mapping, version and its value, the keys x and y, y's list: 6 values;
        # x's list of 100, then reused `aliases` times; then `extra` plain items.
        aliases = (MAX_NODES - 106) // 100
        plain = MAX_NODES - 106 - 100 * aliases + extra
        items = ", ".join(["*x"] * aliases + ["1"] * plain)
        return f"version: 1\nx: &x [{', '.join(['1'] * 99)}]\ny: [{items}]\n"

    assert problems(document(0)) == [f"{FILE}:2:1: unknown key 'x' in the top level",
                                     f"{FILE}:3:1: unknown key 'y' in the top level"]
    [line] = problems(document(1))
    assert line.startswith(f"{FILE}:3:")
    assert line.endswith(f"the document is too large: more than {MAX_NODES} values once its "
                         "aliases are expanded")


def test_reused_mappings_and_values_still_work(tmp_path: Path) -> None:
    text = dedent("""
        version: 1
        connectors:
          - &ldap
            name: corp
            type: ldap
            url: ldap://127.0.0.1:3389
            bind_dn: &admin cn=admin,dc=example,dc=org
            tls: &tls {verify: true, ca_file: /etc/ssl/ca.pem}
            groups: {base: &groups "ou=groups,dc=example,dc=org"}
            users: {base: "ou=people,dc=example,dc=org"}
            schedule: &schedule {delta: 5m, full: "0 3 * * *"}
          - <<: *ldap
            name: corp-east
            url: ldap://east.example.org
          - <<: [{name: corp-west, page_size: 100}, *ldap]
            tls: *tls
          - name: files
            type: ldif
            path: directory.ldif
            schedule: *schedule
        rules:
          - name: all
            source: corp
            when: {dn: {under: *groups}}
            roles: {owner: {attribute: owner}}
          - name: east
            source: corp-east
            when: {dn: {under: *groups}}
    """)
    cfg = parse_config(text, tmp_path / "syncd.yaml")
    corp, east, west, files = cfg.connectors
    assert [c.name for c in cfg.connectors] == ["corp", "corp-east", "corp-west", "files"]
    assert (east.url, east.bind_dn, east.groups.base) == (  # type: ignore[union-attr]
        "ldap://east.example.org", "cn=admin,dc=example,dc=org", "ou=groups,dc=example,dc=org")
    assert (west.url, west.page_size) == ("ldap://127.0.0.1:3389", 100)  # type: ignore[union-attr]
    assert corp.page_size == 500  # type: ignore[union-attr]
    assert files.schedule == corp.schedule
    assert cfg.rules[0].when == cfg.rules[1].when


def test_errors_in_reused_and_merged_mappings_are_placed() -> None:
    text = dedent("""
        version: 1
        connectors:
          - &base
            name: a
            type: ldif
            path: a.ldif
            colour: red
          - <<: *base
            name: b
            name: c
          - <<: *base
            <<: 5
            name: d
    """)
    found = problems(text)
    assert found == [
        f"{FILE}:{at(text, 'colour')}: unknown key 'colour' in connectors.0",
        f"{FILE}:{at(text, 'colour')}: unknown key 'colour' in connectors.1",
        f"{FILE}:{at(text, 'colour')}: unknown key 'colour' in connectors.2",
        f"{FILE}:{at(text, 'name: c')}: duplicate key 'name'",
        f"{FILE}:{at(text, '5')}: '<<' merges a mapping or a list of mappings",
    ]


# -- the store URL --------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "message"), [
    ("notaurl", "store.url: not an SQLAlchemy URL: expected e.g. "
                "sqlite:////var/lib/syncd/syncd.db or postgresql+psycopg://"),
    ("postgresql://syncd:{pw}@db:port/syncd", "store.url: not an SQLAlchemy URL"),
    ("mysql://syncd:{pw}@db/syncd", "store.url: unsupported database 'mysql': the store is "
                                    "SQLite (sqlite:///...) or PostgreSQL"),
    ("postgresql+nosuch://syncd:{pw}@db/syncd",
     "store.url: unknown database driver 'nosuch' for postgresql"),
])
def test_a_bad_store_url_is_a_config_error(url: str, message: str) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    text = f"version: 1\nstore: {{url: '{url.format(pw=password)}'}}\ncolour: red\n"
    found = problems(text)
    assert len(found) == 2, found
    assert found[0].startswith(f"{FILE}:2:14: {message}"), found
    assert "colour" in found[1]
    assert password not in "\n".join(found)


@pytest.mark.parametrize("url", [
    "sqlite:///syncd.db", "sqlite:////var/lib/syncd/syncd.db", "sqlite://",
    "postgresql+psycopg://syncd@db.example.org/syncd", "postgresql://db/syncd",
    "postgresql+psycopg://syncd:secret@db:5432/syncd?sslmode=require",
])
def test_good_store_urls(url: str) -> None:
    assert parse_config(f"version: 1\nstore: {{url: '{url}'}}\n", FILE).store.url == url


def test_the_password_in_the_store_url_is_a_secret() -> None:
    password = f"pw-{uuid.uuid4().hex}"
    parse_config(f"version: 1\nstore: {{url: 'postgresql+psycopg://syncd:{password}@db/s'}}\n",
                 FILE)
    assert password in secrets.known()
