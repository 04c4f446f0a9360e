"""Config loading: positions of every error, interpolation, secrets (CONTRACT section 2)."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd import secrets
from syncd.config.loader import find_config, load_config, parse_config
from syncd.config.model import Config
from syncd.errors import ConfigError

LDAP = """\
  - name: corp
    type: ldap
    url: ldap://127.0.0.1:3389
    bind_dn: cn=admin,dc=example,dc=org
    groups: {base: "ou=groups,dc=example,dc=org"}
    users: {base: "ou=people,dc=example,dc=org"}
"""


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


def problems(text: str, file: Path = Path("/etc/syncd/syncd.yaml")) -> list[str]:
    """The problem lines of an invalid config."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, file)
    assert info.value.problems, "a ConfigError must carry its problems"
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def only_problem(text: str, file: Path = Path("/etc/syncd/syncd.yaml")) -> str:
    found = problems(text, file)
    assert len(found) == 1, found
    return found[0]


def unique_secret() -> str:
    # Registered secrets are masked process-wide: never reuse a value another test prints.
    return f"pw-{uuid.uuid4().hex}"


# -- valid files ----------------------------------------------------------------------------


def test_minimal_config_takes_the_defaults() -> None:
    cfg = parse_config("version: 1\n", Path("/etc/syncd/syncd.yaml"))
    assert cfg.version == 1
    assert cfg.store.url == "sqlite:////var/lib/syncd/syncd.db"
    assert cfg.audit.file is None
    assert cfg.connectors == []
    assert cfg.rules == []
    assert cfg.roles == ("owner", "facilitator", "member")
    assert cfg.path == Path("/etc/syncd/syncd.yaml")


def test_contract_example_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNCD_LDAP_PASSWORD", unique_secret())
    monkeypatch.setenv("SYNCD_ENTRA_SECRET", unique_secret())
    text = dedent("""
        version: 1
        store:
          url: sqlite:///var/lib/syncd/syncd.db
        audit:
          file: /var/log/syncd/audit.jsonl
        safety:
          max_group_deletes: 10
          max_member_removals: "5%"
        connectors:
          - name: corp
            type: ldap
            url: ldap://127.0.0.1:3389
            start_tls: false
            tls: {verify: true, ca_file: null}
            bind_dn: cn=admin,dc=example,dc=org
            password: ${env:SYNCD_LDAP_PASSWORD}
            schema: rfc4519
            page_size: 500
            groups: {base: "ou=groups,dc=example,dc=org", filter: "(objectClass=groupOfNames)", scope: subtree}
            users:  {base: "ou=people,dc=example,dc=org", filter: "(objectClass=inetOrgPerson)", scope: subtree}
            attributes: {user_disabled: {name: nsAccountLock, equals: "TRUE"}}
            schedule: {delta: 5m, full: "0 3 * * *"}
          - name: entra
            type: azuread
            tenant_id: 00000000-0000-0000-0000-000000000000
            client_id: 11111111-1111-1111-1111-111111111111
            client_secret: ${env:SYNCD_ENTRA_SECRET}
            authority_host: https://login.microsoftonline.com
            graph_url: https://graph.microsoft.com/v1.0
            tls: {verify: true, ca_file: null}
            groups: {filter: null}
            schedule: {delta: 5m, full: "0 3 * * *"}
          - name: demo
            type: ldif
            path: demo/directory.ldif
            schema: rfc4519
        rules:
          - name: skip-builtin
            source: corp
            when: {name: {regex: "^(Domain|Enterprise) "}}
            action: skip
          - name: engineering
            source: corp
            when:
              all:
                - dn: {under: "ou=engineering,ou=groups,dc=example,dc=org"}
                - attribute: {name: businessCategory, equals: sync}
                - members: {min: 1}
                - not: {name: {in: [a, b]}}
            group:
              name: "eng-{name}"
              description: "{description} {attr[businessCategory]}"
              kind: standard
              organisation: default
            roles:
              owner: {attribute: owner}
              facilitator: {group: "cn=eng-leads,ou=groups,dc=example,dc=org"}
            members:
              nested: flatten
              unknown_users: create
              disabled_users: deactivate
            on_source_delete: delete
            adopt_existing: false
          - name: everything
    """)  # noqa: E501
    cfg = parse_config(text, tmp_path / "syncd.yaml")
    assert [c.name for c in cfg.connectors] == ["corp", "entra", "demo"]
    assert [c.type for c in cfg.connectors] == ["ldap", "azuread", "ldif"]
    assert cfg.safety.max_group_deletes == 10
    assert cfg.safety.max_member_removals == "5%"
    rule = cfg.rules[1]
    assert rule.group.name == "eng-{name}"
    assert set(rule.roles) == {"owner", "facilitator"}
    defaults = cfg.rules[2]
    assert (defaults.source, defaults.action, defaults.group.name, defaults.group.description,
            defaults.group.kind, defaults.group.organisation, defaults.on_source_delete,
            defaults.adopt_existing) == ("*", "sync", "{name}", "{description}", "standard",
                                         "default", "delete", False)
    assert (defaults.members.nested, defaults.members.unknown_users,
            defaults.members.disabled_users) == ("flatten", "create", "deactivate")
    assert cfg.resolve_path("demo/directory.ldif") == tmp_path / "demo/directory.ldif"


def test_custom_roles_allow_that_role_in_rules() -> None:
    text = dedent("""
        version: 1
        custom_roles: [editor]
        rules:
          - name: r
            roles: {editor: {attribute: editors}}
    """)
    cfg = parse_config(text, Path("/c.yaml"))
    assert cfg.roles == ("owner", "facilitator", "member", "editor")


# -- errors: where and what -----------------------------------------------------------------


def test_every_error_is_reported_at_once_in_file_order() -> None:
    text = dedent("""
        version: 1
        colour: blue
        store:
          url: sqlite:///x.db
          bogus: 1
        connectors:
          - name: corp
            type: ldap
            url: ldap://127.0.0.1:3389
            page_size: 0
            groups: {base: "ou=g", filter: "(objectClass=group"}
            users: {base: "ou=p"}
            schedule: {delta: 5x, full: "0 3 * *"}
          - name: corp
            type: ldif
            path: x.ldif
          - name: other
            type: nosuch
          - type: ldif
            path: y.ldif
        rules:
          - name: r1
            source: nothere
            when: {name: {regex: "([a-"}}
            group: {name: "eng-{nam}"}
            roles:
              boss: {attribute: owner}
          - name: r1
    """)
    file = Path("/srv/conf/syncd.yaml")
    expected = [
        (at(text, "colour"), "unknown key 'colour' in the top level"),
        (at(text, "bogus"), "unknown key 'bogus' in store"),
        (at(text, "0\n"), "connectors.0.page_size:"),
        (at(text, '"(objectClass=group"'), "connectors.0.groups.filter: invalid LDAP filter"),
        (at(text, "5x"), "connectors.0.schedule.delta: invalid duration '5x'"),
        (at(text, '"0 3 * *"'), "connectors.0.schedule.full: invalid cron expression"),
        (at(text, "corp", 2), "connectors.1.name: duplicate connector name 'corp'"),
        (at(text, "nosuch"), "connectors.2.type: unknown connector type 'nosuch'"),
        (at(text, "type: ldif", 2), "missing required key 'name' in connectors.3"),
        (at(text, "nothere"), "rules.0.source: 'nothere' is not a connector name"),
        (at(text, '"([a-"'), "rules.0.when.name.regex: invalid regular expression"),
        (at(text, '"eng-{nam}"'), "rules.0.group.name: unknown template field {nam}"),
        (at(text, "boss"), "rules.0.roles: unknown role 'boss'"),
        (at(text, "r1", 2), "rules.1.name: duplicate rule name 'r1'"),
    ]
    found = problems(text, file)
    assert len(found) == len(expected), "\n".join(found)
    for line, (where, message) in zip(found, expected, strict=True):
        assert line.startswith(f"{file}:{where}: "), (line, where)
        assert message in line, (line, message)


@pytest.mark.parametrize(("body", "needle", "occurrence", "message"), [
    pytest.param("version: 1\nstore: {url: 'sqlite:///x.db', colour: red}\n", "colour", 1,
                 "unknown key 'colour' in store", id="unknown-key-at-the-key"),
    pytest.param("version: 1\nconnectors:\n" + LDAP + "    colour: red\n", "colour", 1,
                 "unknown key 'colour' in connectors.0", id="unknown-connector-key"),
    pytest.param("version: 1\nrules:\n  - name: r\n    when: {name: {equals: a, like: b}}\n",
                 "like", 1, "unknown key 'like' in rules.0.when.name",
                 id="unknown-condition-key"),
    pytest.param("version: 1\nconnectors:\n" + LDAP + "    page_size: many\n", "many", 1,
                 "connectors.0.page_size:", id="bad-value-at-the-value"),
    pytest.param("version: 1\nconnectors:\n" + LDAP.replace(
        "    url: ldap://127.0.0.1:3389\n", ""), "name: corp", 1,
        "missing required key 'url' in connectors.0", id="missing-key-at-the-mapping"),
    pytest.param("version: 1\nrules:\n  - name: r\n    when:\n      attribute: {equals: x}\n",
                 "{equals: x}", 1, "missing required key 'name' in rules.0.when.attribute",
                 id="missing-nested-key"),
    pytest.param("version: 1\nconnectors:\n  - name: c\n    path: x.ldif\n", "name: c", 1,
                 "missing required key 'type' in connectors.0", id="missing-connector-type"),
    pytest.param("version: 1\nconnectors:\n  - name: c\n    type: ldif\n    path: x\n"
                 "  - name: d\n    type: ldif\n    path: y\n  - name: c\n    type: ldif\n"
                 "    path: z\n", "c\n", 2, "connectors.2.name: duplicate connector name 'c'",
                 id="duplicate-connector"),
    pytest.param("version: 1\nrules:\n  - name: a\n  - name: b\n  - name: a\n", "a\n", 2,
                 "rules.2.name: duplicate rule name 'a'", id="duplicate-rule"),
    pytest.param("version: 1\nconnectors:\n" + LDAP + "rules:\n  - name: r\n    source: crop\n",
                 "crop", 1, "rules.0.source: 'crop' is not a connector name",
                 id="rule-source-not-a-connector"),
    pytest.param("version: 1\nrules:\n  - name: r\n    roles:\n      owner: {attribute: o}\n"
                 "      editor: {attribute: e}\n", "editor", 1,
                 "rules.0.roles: unknown role 'editor'", id="unknown-role"),
    pytest.param("version: 1\nconnectors:\n" + LDAP + "    schedule: {delta: 10 minutes}\n",
                 "10 minutes", 1, "connectors.0.schedule.delta: invalid duration",
                 id="bad-duration"),
    pytest.param("version: 1\nconnectors:\n" + LDAP + "    schedule: {delta: 0s}\n",
                 "0s", 1, "must be greater than zero", id="zero-duration"),
    pytest.param("version: 1\nconnectors:\n" + LDAP + '    schedule: {full: "0 25 * * *"}\n',
                 '"0 25 * * *"', 1, "connectors.0.schedule.full: invalid cron expression",
                 id="bad-cron-hour"),
    pytest.param("version: 1\nconnectors:\n" + LDAP + '    schedule: {full: "0 3 * * 8"}\n',
                 '"0 3 * * 8"', 1, "day of week 8 is out of range", id="bad-cron-weekday"),
    pytest.param("version: 1\nconnectors:\n" + LDAP.replace(
        '{base: "ou=people,dc=example,dc=org"}',
        '{base: "ou=people,dc=example,dc=org", filter: "objectClass=person"}'),
        '"objectClass=person"', 1, "connectors.0.users.filter: invalid LDAP filter",
        id="bad-ldap-filter"),
    pytest.param("version: 1\nconnectors:\n" + LDAP.replace(
        '{base: "ou=people,dc=example,dc=org"}',
        '{base: "ou=people,dc=example,dc=org", filter: "(&(a=b)(c=d)"}'),
        '"(&(a=b)(c=d)"', 1, "invalid LDAP filter", id="unbalanced-ldap-filter"),
    pytest.param('version: 1\nrules:\n  - name: r\n    when: {dn: {regex: "a(b"}}\n',
                 '"a(b"', 1, "rules.0.when.dn.regex: invalid regular expression",
                 id="bad-regex"),
    pytest.param('version: 1\nrules:\n  - name: r\n    group: {description: "{owner}"}\n',
                 '"{owner}"', 1, "rules.0.group.description: unknown template field {owner}",
                 id="bad-template-field"),
    pytest.param('version: 1\nrules:\n  - name: r\n    group: {name: "{name"}\n',
                 '"{name"', 1, "rules.0.group.name: invalid template", id="bad-template"),
    pytest.param("version: 1\nconnectors:\n  - name: c\n    type: ftp\n", "ftp", 1,
                 "connectors.0.type: unknown connector type 'ftp'", id="unknown-type"),
    pytest.param('version: 1\nsafety: {max_member_removals: "lots"}\n', '"lots"', 1,
                 "safety.max_member_removals: invalid limit", id="bad-limit"),
    pytest.param("version: 1\nstore: {url: 'sqlite:///a.db'}\nstore: {url: 'sqlite:///b.db'}\n",
                 "store", 2, "duplicate key 'store'", id="duplicate-yaml-key"),
])
def test_error_position_and_message(body: str, needle: str, occurrence: int,
                                    message: str) -> None:
    file = Path("/etc/syncd/syncd.yaml")
    line = only_problem(body, file)
    assert line.startswith(f"{file}:{at(body, needle, occurrence)}: "), line
    assert message in line, line


def test_yaml_syntax_error_names_its_line() -> None:
    text = "version: 1\nstore:\n  url: [sqlite\nrules: []\n"
    line = only_problem(text)
    assert line.startswith("/etc/syncd/syncd.yaml:4:"), line
    assert "YAML syntax error" in line


@pytest.mark.parametrize("text", ["", "store: {}\n", "# only a comment\n"])
def test_missing_version(text: str) -> None:
    assert only_problem(text) == (
        "/etc/syncd/syncd.yaml:1:1: missing required key 'version' in the top level")


@pytest.mark.parametrize("value", ["2", "0", '"1"', "true", "1.0", "v1"])
def test_version_other_than_1(value: str) -> None:
    line = only_problem(f"version: {value}\n")
    assert line.startswith("/etc/syncd/syncd.yaml:1:10: version: unsupported config version")


def test_config_that_is_not_a_mapping() -> None:
    assert only_problem("- version: 1\n") == (
        "/etc/syncd/syncd.yaml:1:1: the config must be a mapping")


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.problems == [f"{missing}:1:1: cannot read the config file: "
                                   "No such file or directory"]
    assert info.value.exit_code == 2


def test_find_config_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    assert find_config(None) == Path("/etc/syncd/syncd.yaml")
    monkeypatch.setenv("SYNCD_CONFIG", "/from/env.yaml")
    assert find_config(None) == Path("/from/env.yaml")
    assert find_config("/from/option.yaml") == Path("/from/option.yaml")


# -- interpolation --------------------------------------------------------------------------


def ldap_with_password(ref: str) -> str:
    return "version: 1\nconnectors:\n" + LDAP + f"    password: {ref}\n"


def password_of(cfg: Config) -> str:
    conn = cfg.connectors[0]
    password = getattr(conn, "password", None)
    assert password is not None
    value: str = password.get_secret_value()
    return value


def test_env_interpolation_anywhere_in_a_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_T_DB", "state.db")
    monkeypatch.setenv("SYNCD_T_ORG", "Example")
    text = dedent("""
        version: 1
        store: {url: "sqlite:///${env:SYNCD_T_DB}"}
        rules:
          - name: r
            group: {organisation: "org-${env:SYNCD_T_ORG}-${env:SYNCD_T_DB}"}
    """)
    cfg = parse_config(text, Path("/c.yaml"))
    assert cfg.store.url == "sqlite:///state.db"
    assert cfg.rules[0].group.organisation == "org-Example-state.db"


def test_missing_env_is_an_error_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCD_T_UNSET", raising=False)
    text = ldap_with_password("${env:SYNCD_T_UNSET}")
    line = only_problem(text)
    assert line == (f"/etc/syncd/syncd.yaml:{at(text, '${env')}: connectors.0.password: "
                    "environment variable 'SYNCD_T_UNSET' is not set")


def test_file_interpolation_drops_one_trailing_newline(tmp_path: Path) -> None:
    secret = unique_secret()
    (tmp_path / "pw").write_text(secret + "\n", encoding="utf-8")
    (tmp_path / "raw").write_text("sqlite:///no-newline.db", encoding="utf-8")
    text = ldap_with_password(f"${{file:{tmp_path / 'pw'}}}")
    assert password_of(parse_config(text, tmp_path / "c.yaml")) == secret
    text = "version: 1\nstore: {url: '${file:" + str(tmp_path / "raw") + "}'}\n"
    assert parse_config(text, tmp_path / "c.yaml").store.url == "sqlite:///no-newline.db"


def test_relative_file_is_relative_to_the_config_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    secret = unique_secret()
    conf_dir = tmp_path / "etc"
    (conf_dir / "secrets").mkdir(parents=True)
    (conf_dir / "secrets" / "ldap").write_text(secret + "\n", encoding="utf-8")
    elsewhere = tmp_path / "cwd"
    (elsewhere / "secrets").mkdir(parents=True)
    (elsewhere / "secrets" / "ldap").write_text("wrong\n", encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = parse_config(ldap_with_password("${file:secrets/ldap}"), conf_dir / "syncd.yaml")
    assert password_of(cfg) == secret


def test_relative_file_is_looked_up_in_credentials_directory_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_creds, from_conf = unique_secret(), unique_secret()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ldap").write_text(from_creds + "\n", encoding="utf-8")
    (tmp_path / "ldap").write_text(from_conf + "\n", encoding="utf-8")
    (tmp_path / "only-here").write_text(from_conf + "\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = parse_config(ldap_with_password("${file:ldap}"), tmp_path / "syncd.yaml")
    assert password_of(cfg) == from_creds
    # Not among the credentials: the config file's folder is next.
    cfg = parse_config(ldap_with_password("${file:only-here}"), tmp_path / "syncd.yaml")
    assert password_of(cfg) == from_conf


def test_missing_file_is_an_error_naming_the_key(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    text = ldap_with_password("${file:absent.txt}")
    line = only_problem(text, tmp_path / "c.yaml")
    assert line.startswith(f"{tmp_path / 'c.yaml'}:{at(text, '${file')}: "
                           "connectors.0.password: cannot read ")
    assert "absent.txt" in line
    assert "No such file or directory" in line


def test_interpolation_errors_come_with_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCD_T_UNSET", raising=False)
    text = ldap_with_password("${env:SYNCD_T_UNSET}") + "colour: red\n"
    found = problems(text)
    assert len(found) == 2, found
    assert "SYNCD_T_UNSET" in found[0]
    assert "unknown key 'colour'" in found[1]


# -- secrets --------------------------------------------------------------------------------


def test_secrets_never_in_repr_str_or_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    ldap_pw, entra_pw = unique_secret(), unique_secret()
    monkeypatch.setenv("SYNCD_T_LDAP_PW", ldap_pw)
    text = ldap_with_password("${env:SYNCD_T_LDAP_PW}") + (
        "  - name: entra\n    type: azuread\n    tenant_id: t\n    client_id: c\n"
        f"    client_secret: {entra_pw}\n")
    cfg = parse_config(text, Path("/c.yaml"))
    assert password_of(cfg) == ldap_pw
    rendered = [repr(cfg), str(cfg), cfg.model_dump_json(), str(cfg.model_dump()),
                json.dumps(cfg.model_dump(mode="json")), repr(cfg.connectors[0]),
                str(cfg.connectors[1]), cfg.connectors[1].model_dump_json()]
    for out in rendered:
        assert ldap_pw not in out
        assert entra_pw not in out
    assert "**********" in cfg.model_dump_json()
    # Remembered for log redaction.
    assert {ldap_pw, entra_pw} <= secrets.known()
    assert secrets.redact(f"bind with {ldap_pw}") == "bind with **********"


def test_a_malformed_secret_is_not_echoed_in_the_error() -> None:
    secret = unique_secret()
    line = only_problem(ldap_with_password(f"[{secret}]"))
    assert "connectors.0.password" in line
    assert secret not in line


def test_warning_for_literal_secret_in_world_readable_file(tmp_path: Path) -> None:
    text = ldap_with_password(unique_secret())
    path = tmp_path / "syncd.yaml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    with capture_logs() as logs:
        load_config(path)
    warnings = [e for e in logs if e["event"] == "config.literal_secret_readable"]
    assert len(warnings) == 1, logs
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["location"] == f"{path}:{at(text, 'pw-')}"


def test_no_warning_when_the_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "syncd.yaml"
    path.write_text(ldap_with_password(unique_secret()), encoding="utf-8")
    path.chmod(0o600)
    with capture_logs() as logs:
        load_config(path)
    assert [e for e in logs if e["event"] == "config.literal_secret_readable"] == []


def test_no_warning_when_the_secret_comes_from_env(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_T_LDAP_PW", unique_secret())
    path = tmp_path / "syncd.yaml"
    path.write_text(ldap_with_password("${env:SYNCD_T_LDAP_PW}"), encoding="utf-8")
    path.chmod(0o644)
    with capture_logs() as logs:
        load_config(path)
    assert [e for e in logs if e["event"] == "config.literal_secret_readable"] == []
