"""Secrets that coincide with syncd's own identifiers (syncd/secrets.py): a password ``corp``
for the connector ``corp`` is masked in text from outside, never in syncd's own words."""

from __future__ import annotations

import io
import json
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import structlog
from pydantic import SecretStr, field_validator, model_validator
from sqlalchemy import Engine

import syncd.config.loader
import syncd.config.model
import syncd.engine
from syncd import secrets
from syncd.audit import AuditWriter
from syncd.config.loader import parse_config
from syncd.config.model import BaseConfig
from syncd.connector import Connector, ConnectorConfig
from syncd.engine import RunOptions, SyncEngine
from syncd.errors import ConfigError
from syncd.logging import configure
from syncd.source import Snapshot
from syncd.store.db import open_engine, upgrade

MASK = secrets.MASK
FILE = Path("/etc/syncd/syncd.yaml")

CONFIG = textwrap.dedent("""\
    version: 1
    connectors:
      - name: corp
        type: ldap
        url: ldap://ldap.example.org
        bind_dn: cn=admin,dc=example,dc=org
        password: ${env:SYNCD_T_CORP_PW}
        groups: {base: "ou=groups,dc=example,dc=org"}
        users: {base: "ou=people,dc=example,dc=org"}
    rules:
      - name: corp
        source: corp
""")


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test registers its own secrets: ``corp`` must not leak into other tests."""
    monkeypatch.setattr(secrets, "_known", set())
    monkeypatch.setattr(secrets, "_identifiers", set())
    monkeypatch.setattr(secrets, "_guards", frozenset())


@pytest.fixture
def corp_config(monkeypatch: pytest.MonkeyPatch) -> BaseConfig:
    """The connector ``corp`` whose password is ``corp``, loaded as syncd loads it."""
    monkeypatch.setenv("SYNCD_T_CORP_PW", "corp")
    cfg = parse_config(CONFIG, FILE)
    assert "corp" in secrets.known()
    return cfg


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


# -- the two functions ----------------------------------------------------------------------


def test_redact_masks_every_secret_and_redact_own_spares_identifiers() -> None:
    secrets.register("corp")
    secrets.register("east")
    secrets.register_identifiers(["corp", "corp-east", "rules"])
    text = "connector 'corp-east' (corp): bind as corp refused, east said"
    assert secrets.redact(text) == (
        f"connector '{MASK}-{MASK}' ({MASK}): bind as {MASK} refused, {MASK} said")
    # "east" alone is masked; inside "corp-east" it is part of the name.
    assert secrets.redact_own(text) == (
        f"connector 'corp-east' (corp): bind as corp refused, {MASK} said")


def test_a_secret_outside_every_identifier_is_masked_by_both() -> None:
    secrets.register("hunter2-pw")
    secrets.register_identifiers(["corp"])
    text = "connector 'corp' failed: password hunter2-pw refused"
    expected = f"connector 'corp' failed: password {MASK} refused"
    assert secrets.redact(text) == secrets.redact_own(text) == expected


def test_overlapping_secrets_leave_no_part_visible() -> None:
    secrets.register("abcdef")
    secrets.register("defghi")
    secrets.register("****")  # the mask itself must not be masked again
    assert secrets.redact("x abcdefghi y") == f"x {MASK} y"
    assert secrets.redact("**** abcdef") == f"{MASK} {MASK}"


# -- through the config loader and the engine -----------------------------------------------


def test_a_config_error_about_the_connector_names_it(corp_config: BaseConfig) -> None:
    del corp_config
    text = CONFIG + "  - name: corp\n    source: nothere\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, FILE)
    lines = len(CONFIG.splitlines())
    assert info.value.problems == [
        f"{FILE}:{lines + 1}:11: rules.1.name: duplicate rule name 'corp'",
        f"{FILE}:{lines + 2}:13: rules.1.source: 'nothere' is not a connector name",
    ]


class FailingConfig(ConnectorConfig):
    """A connector whose library fails with a message that holds its password."""

    type: Literal["failing"]


class FailingConnector(Connector):
    type_name = "failing"
    config_model: ClassVar[type[ConnectorConfig]] = FailingConfig

    def snapshot(self) -> Snapshot:
        raise RuntimeError("bind as cn=admin with password corp: invalid credentials")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setattr(syncd.engine, "available", lambda: {"failing": FailingConnector})
    engine = open_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_failed_run_names_the_connector_and_masks_the_library_text(
        corp_config: BaseConfig, store: Engine, restore_logging: None) -> None:
    out = io.StringIO()
    configure("json", stream=out)
    cfg = BaseConfig(version=1, connectors=[FailingConfig(name="corp", type="failing")])
    result = SyncEngine(cfg, store, AuditWriter(None)).run([], RunOptions(dry_run=True))
    report = result.plan.connectors["corp"]
    assert report.error == ("connector 'corp' failed unexpectedly: RuntimeError: bind as "
                            f"cn=admin with password {MASK}: invalid credentials")
    events = {e["event"]: e for e in map(json.loads, out.getvalue().splitlines())}
    assert events["sync.run"]["connector"] == "corp"
    assert events["sync.run"]["error"] == report.error
    # The traceback of the crash is the library's text: masked whole.
    [crash] = events["sync.connector_crashed"]["exception"]
    assert crash["exc_value"] == f"bind as cn=admin with password {MASK}: invalid credentials"
    assert "password corp" not in out.getvalue()


# -- through the log pipeline ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_log_lines_about_the_connector_name_it(corp_config: BaseConfig, fmt: str,
                                               restore_logging: None) -> None:
    del corp_config
    out = io.StringIO()
    configure(fmt, stream=out)  # type: ignore[arg-type]
    structlog.contextvars.bind_contextvars(connector="corp")
    log = structlog.get_logger("syncd.engine")
    log.info("sync.run", rule="corp", error="ldap connector 'corp' (ldap://ldap.example.org): "
             "cannot connect")
    logging.getLogger("ldap3").warning("simple bind for %s with password %s", "cn=admin",
                                       "corp")
    try:
        raise RuntimeError("password corp refused")
    except RuntimeError as exc:
        log.error("bind.failed", error=exc)
        log.exception("bind.crashed")
    text = out.getvalue()
    assert "ldap connector 'corp' (ldap://ldap.example.org): cannot connect" in text
    assert "simple bind for cn=admin with password " + MASK in text
    assert "password corp" not in text
    if fmt == "json":
        events = [json.loads(line) for line in text.splitlines()]
        assert [e["connector"] for e in events] == ["corp"] * 4
        assert events[0]["rule"] == "corp"
        assert events[2]["error"] == f"password {MASK} refused"
        assert events[3]["exception"][0]["exc_value"] == f"password {MASK} refused"
    else:
        assert text.count("connector=corp") == 4
        assert f"RuntimeError: password {MASK} refused" in text


# -- the loader never echoes an interpolated value ------------------------------------------


@pytest.mark.parametrize(("line", "env", "message"), [
    pytest.param("rules: [{name: r, when: {name: {regex: '${env:SYNCD_T_X}'}}}]",
                 "([a-{secret}", "rules.0.when.name.regex: invalid regular expression "
                 f"'{MASK}': ", id="regex"),
    pytest.param("connectors: [{name: c, type: '${env:SYNCD_T_X}'}]", "t-{secret}",
                 f"connectors.0.type: unknown connector type '{MASK}'", id="union-tag"),
    pytest.param("connectors: [{name: c, type: ldif, path: x, schedule: "
                 "{delta: 'x${env:SYNCD_T_X}'}}]", "{secret}",
                 f"connectors.0.schedule.delta: invalid duration '{MASK}'", id="duration"),
])
def test_an_interpolated_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch, line: str,
                                             env: str, message: str) -> None:
    secret = "s3cr3t-value"
    monkeypatch.setenv("SYNCD_T_X", env.format(secret=secret))
    with pytest.raises(ConfigError) as info:
        parse_config(f"version: 1\n{line}\n", FILE)
    [problem] = info.value.problems
    assert message in problem
    assert "s3cr3t" not in problem


class EchoConfig(ConnectorConfig):
    """A plugin whose validator quotes its secret field, as a careless plugin might."""

    type: Literal["echo"]
    token: SecretStr

    @field_validator("token", mode="before")
    @classmethod
    def _long_enough(cls, v: Any) -> Any:
        if isinstance(v, str) and len(v) < 40:
            raise ValueError(f"token {v!r} is too short")
        return v

    @model_validator(mode="after")
    def _not_weak(self) -> EchoConfig:
        token = self.token.get_secret_value()
        if token.endswith("-weak"):
            raise ValueError(f"the token {token!r} is weak")
        return self


class EchoConnector(Connector):
    type_name = "echo"
    config_model: ClassVar[type[ConnectorConfig]] = EchoConfig


@pytest.fixture
def echo_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(syncd.config.model, "available", lambda: {"echo": EchoConnector})
    syncd.config.model.config_model.cache_clear()
    syncd.config.loader._secret_keys.cache_clear()
    yield
    monkeypatch.undo()
    syncd.config.model.config_model.cache_clear()
    syncd.config.loader._secret_keys.cache_clear()


@pytest.mark.usefixtures("echo_plugin")
def test_a_literal_secret_is_not_echoed() -> None:
    weak = "hunter2-" * 5 + "weak"
    text = ("version: 1\nconnectors:\n  - {name: c, type: echo, token: hunter2-literal}\n"
            f"  - {{name: d, type: echo, token: {weak}}}\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, FILE)
    assert info.value.problems == [
        f"{FILE}:3:34: connectors.0.token: token '{MASK}' is too short",
        f"{FILE}:4:5: connectors.1: the token '{MASK}' is weak"]
