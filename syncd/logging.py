"""structlog set-up: JSON off a terminal, the console renderer on one, secrets masked.

Masking follows syncd.secrets: library log records, exceptions and tracebacks are text from
outside and get ``secrets.redact``; syncd's own events get the safety net
``secrets.redact_own``, which leaves syncd's identifiers (a connector's name) readable.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable
from typing import Any, Literal

import structlog
import structlog.tracebacks

from syncd import secrets

LogFormat = Literal["auto", "json", "console"]


def _redact_value(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v, redact) for v in value]
    if isinstance(value, BaseException):  # an exception's text comes from outside
        return secrets.redact(str(value))
    return value


def redact_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Mask registered secret values in every field of the event: everywhere in a library's
    record and in rendered exceptions, outside syncd's identifiers in syncd's own events."""
    if not secrets.known():
        return event_dict
    # A standard-library record is a library's text, but for the context syncd bound.
    foreign = event_dict.get("_from_structlog") is False
    bound = structlog.contextvars.get_contextvars() if foreign else {}

    def redactor(key: str) -> Callable[[str], str]:
        if key == "exception" or (foreign and key not in bound):
            return secrets.redact
        return secrets.redact_own

    # exc_info stays as given so the renderers can format the traceback; their output is
    # masked afterwards (dict tracebacks by a second pass, text by _redacting_formatter).
    return {k: v if k == "exc_info" else _redact_value(v, redactor(k))
            for k, v in event_dict.items()}


def _redact_rendered(_logger: Any, _name: str, rendered: Any) -> Any:
    # A last safety net on the final line (whose parts were masked already).
    return secrets.redact_own(rendered) if isinstance(rendered, str) else rendered


def _redacting_formatter(sio: Any, exc_info: Any) -> None:
    """The console's traceback: plain text, masked whole before it is written.

    Plain, because a pretty traceback wraps long lines, cuts long values and colours parts
    of a line, any of which can split a secret so that masking misses it.
    """
    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(secrets.redact(buffer.getvalue()))


def configure(fmt: LogFormat = "auto", verbosity: int = 0, stream: Any = None) -> None:
    """Route structlog and the standard-library loggers through one processor chain.

    ``verbosity``: -1 quiet (warnings and errors), 0 info, 1 debug for syncd,
    2 debug for the libraries too (SQLAlchemy, ldap3, msal).
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        redact_secrets,
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        # Tracebacks as data, without local variables (noise in a log, and they may hold
        # values nobody meant to log); masked again once formatted.
        tracebacks = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False))
        shared += [tracebacks, redact_secrets]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty(),
                                                 exception_formatter=_redacting_formatter)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
                _redact_rendered,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    library_level = logging.DEBUG if verbosity >= 2 else max(level, logging.WARNING)
    for name in ("sqlalchemy", "alembic", "ldap3", "msal", "apscheduler", "urllib3"):
        logging.getLogger(name).setLevel(library_level)
    logging.getLogger("syncd").setLevel(level)
