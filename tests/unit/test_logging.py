"""Logging set-up (syncd/logging.py): renderers, levels, and secrets masked everywhere."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog

from syncd import secrets
from syncd.logging import configure


class TtyStream(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level
              for name in ("syncd", "sqlalchemy", "alembic", "ldap3", "msal", "apscheduler",
                           "urllib3")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


@pytest.fixture
def secret() -> str:
    value = f"s3cr3t-{uuid.uuid4().hex}"
    secrets.register(value)
    return value


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_json_when_not_a_terminal() -> None:
    out = io.StringIO()
    configure("auto", stream=out)
    structlog.get_logger("syncd.test").info("member.added", group="eng", count=3)
    [event] = json_lines(out)
    assert event["event"] == "member.added"
    assert event["group"] == "eng"
    assert event["count"] == 3
    assert event["level"] == "info"
    assert event["logger"] == "syncd.test"
    ts = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert event["timestamp"].endswith("Z")
    assert ts.utcoffset() is not None
    assert ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_console_when_forced() -> None:
    out = io.StringIO()
    configure("console", stream=out)
    structlog.get_logger("syncd.test").info("member.added", group="eng")
    text = out.getvalue()
    assert "member.added" in text
    assert "group=eng" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_console_on_a_terminal() -> None:
    out = TtyStream()
    configure("auto", stream=out)
    structlog.get_logger("syncd.test").warning("run.blocked", check="max_group_deletes")
    text = out.getvalue()
    assert "run.blocked" in text
    assert "\x1b[" in text  # coloured for people
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_json_forced_on_a_terminal() -> None:
    out = TtyStream()
    configure("json", stream=out)
    structlog.get_logger("syncd.test").info("x.y")
    assert json_lines(out)[0]["event"] == "x.y"


def test_standard_library_loggers_use_the_same_format() -> None:
    out = io.StringIO()
    configure("json", stream=out)
    logging.getLogger("ldap3").warning("connection to %s lost", "ldap.example.org")
    [event] = json_lines(out)
    assert event["event"] == "connection to ldap.example.org lost"
    assert event["logger"] == "ldap3"
    assert event["level"] == "warning"
    assert "timestamp" in event


def test_context_variables_are_merged() -> None:
    out = io.StringIO()
    configure("json", stream=out)
    structlog.contextvars.bind_contextvars(run_id="r-1", connector="corp")
    structlog.get_logger("syncd.engine").info("run.started")
    logging.getLogger("ldap3").warning("from a library")
    events = json_lines(out)
    assert [(e["run_id"], e["connector"]) for e in events] == [("r-1", "corp")] * 2


@pytest.mark.parametrize(("verbosity", "shown"), [
    (-1, {"syncd-warning", "ldap3-warning"}),
    (0, {"syncd-info", "syncd-warning", "ldap3-warning"}),
    (1, {"syncd-debug", "syncd-info", "syncd-warning", "ldap3-warning"}),
    (2, {"syncd-debug", "syncd-info", "syncd-warning", "ldap3-debug", "ldap3-info",
         "ldap3-warning"}),
])
def test_verbosity(verbosity: int, shown: set[str]) -> None:
    out = io.StringIO()
    configure("json", verbosity, stream=out)
    log = structlog.get_logger("syncd.test")
    lib = logging.getLogger("ldap3")
    log.debug("syncd-debug")
    log.info("syncd-info")
    log.warning("syncd-warning")
    lib.debug("ldap3-debug")
    lib.info("ldap3-info")
    lib.warning("ldap3-warning")
    assert {e["event"] for e in json_lines(out)} == shown


# -- secrets --------------------------------------------------------------------------------


def test_secret_masked_in_structlog_fields(secret: str) -> None:
    out = io.StringIO()
    configure("json", stream=out)
    structlog.get_logger("syncd.test").info(
        f"bind as {secret}", password=secret, nested={"urls": [f"ldap://u:{secret}@h"]},
        pair=("a", secret))
    text = out.getvalue()
    assert secret not in text
    [event] = json_lines(out)
    assert event["event"] == f"bind as {secrets.MASK}"
    assert event["password"] == secrets.MASK
    assert event["nested"] == {"urls": [f"ldap://u:{secrets.MASK}@h"]}
    assert event["pair"] == ["a", secrets.MASK]


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_secret_masked_in_standard_library_messages(secret: str, fmt: str) -> None:
    out = io.StringIO()
    configure(fmt, stream=out)  # type: ignore[arg-type]
    logging.getLogger("ldap3").warning("simple bind with password %s", secret)
    logging.getLogger("sqlalchemy.engine").warning(f"url postgresql://u:{secret}@db/x")
    text = out.getvalue()
    assert secret not in text
    assert text.count(secrets.MASK) == 2
    assert "simple bind with password" in text


def log_exceptions(secret: str) -> None:
    """Four records with a traceback whose text holds ``secret``, one without."""
    log = structlog.get_logger("syncd.test")
    try:
        raise RuntimeError(f"bind failed for {secret}")
    except RuntimeError as exc:
        log.exception("bind.failed")
        logging.getLogger("ldap3").exception("library failure")
        log.error("bind.error", error=exc)
        caught = exc
    # Outside the except block: the exception object itself as exc_info.
    log.error("bind.later", exc_info=caught)
    logging.getLogger("ldap3").error("library later", exc_info=caught)


def test_secret_masked_in_exceptions_json(secret: str) -> None:
    out = io.StringIO()
    configure("json", stream=out)
    log_exceptions(secret)
    assert secret not in out.getvalue()
    events = {e["event"]: e for e in json_lines(out)}
    assert events["bind.error"]["error"] == f"bind failed for {secrets.MASK}"
    for name in ("bind.failed", "library failure", "bind.later", "library later"):
        [exc] = events[name]["exception"]
        assert exc["exc_type"] == "RuntimeError", name
        assert exc["exc_value"] == f"bind failed for {secrets.MASK}", name


def test_secret_masked_in_exceptions_console(secret: str) -> None:
    out = io.StringIO()
    configure("console", stream=out)
    log_exceptions(secret)
    text = out.getvalue()
    assert secret not in text
    # Every traceback is still rendered, only the secret is masked.
    assert text.count("Traceback (most recent call last)") == 4
    assert text.count(f"RuntimeError: bind failed for {secrets.MASK}") == 4


def test_json_traceback_of_each_record_is_kept(secret: str) -> None:
    out = io.StringIO()
    configure("json", stream=out)
    try:
        raise ValueError(f"token {secret} refused")
    except ValueError as exc:
        caught = exc
    structlog.get_logger("syncd.test").error("token.refused", exc_info=caught)
    logging.getLogger("msal").error("token refused", exc_info=caught)
    events = json_lines(out)
    assert len(events) == 2
    for event in events:
        [exc_dict] = event["exception"]
        assert exc_dict["exc_type"] == "ValueError"
        assert exc_dict["exc_value"] == f"token {secrets.MASK} refused"


def test_non_ascii_secret_masked_in_json_traceback() -> None:
    # JSON escapes non-ASCII characters, so masking only the rendered text would miss it.
    value = f"pässwörd-{uuid.uuid4().hex}"
    secrets.register(value)
    out = io.StringIO()
    configure("json", stream=out)
    try:
        raise RuntimeError(f"bind failed for {value}")
    except RuntimeError:
        structlog.get_logger("syncd.test").exception("bind.failed", who=value)
    text = out.getvalue()
    [event] = json_lines(out)
    assert value not in json.dumps(event, ensure_ascii=False)
    assert value not in text
    assert event["who"] == secrets.MASK
    assert event["exception"][0]["exc_value"] == f"bind failed for {secrets.MASK}"


def test_short_values_are_not_registered() -> None:
    secrets.register("ab")
    assert "ab" not in secrets.known()
    assert secrets.redact("a cab") == "a cab"
