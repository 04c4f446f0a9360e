"""Secret values: wrapped so they never print, and remembered so logs can mask them."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import SecretStr

MASK = "**********"

_lock = threading.Lock()
_known: set[str] = set()


def register(value: str) -> None:
    """Remember a secret value so the log redaction step masks it wherever it appears."""
    # Very short values would mask innocent text everywhere; they are still never printed
    # directly because they stay wrapped in SecretStr.
    if len(value) >= 4:
        with _lock:
            _known.add(value)


def known() -> frozenset[str]:
    """The secret values registered so far."""
    with _lock:
        return frozenset(_known)


def redact(text: str) -> str:
    """Replace every registered secret value in ``text`` with the mask."""
    for value in sorted(known(), key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def register_all(obj: Any) -> None:
    """Walk a validated config object and register every SecretStr it holds."""
    if isinstance(obj, SecretStr):
        register(obj.get_secret_value())
    elif isinstance(obj, dict):
        for v in obj.values():
            register_all(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            register_all(v)
    elif hasattr(obj, "__pydantic_fields__"):
        for name in type(obj).model_fields:
            register_all(getattr(obj, name))
