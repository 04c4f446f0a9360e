"""Secret values: wrapped so they never print, and remembered so that output can mask them.

Text reaches syncd's messages and logs from two places, and each is masked its own way:

- Text from outside: a library's or a driver's message, an exception's text, a traceback, a
  validation message that echoes an input. A secret may stand anywhere in it, so ``redact``
  masks every registered secret. Wrap such text with ``redact`` where it enters a message.
- syncd's own text: the sentences and fields it composes around its own identifiers
  (connector and rule names, config keys, file paths from the config). ``redact_own`` is the
  safety net for it: it masks every registered secret except where the secret lies inside
  one of those identifiers. A password ``corp`` for a connector named ``corp`` (or
  ``east`` for ``corp-east``) then leaves "connector 'corp' failed" readable, where masking
  it would hide which connector failed and protect nothing, since the name is printed on
  purpose.

So a secret that coincides with an identifier is masked in text from outside (which must
therefore pass through ``redact``) but not in syncd's own words; every other secret is
masked everywhere. syncd/logging.py applies ``redact`` to library log records, exceptions
and tracebacks, and ``redact_own`` to syncd's own events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import SecretStr

MASK = "**********"

_lock = threading.Lock()
_known: set[str] = set()
_identifiers: set[str] = set()
_guards: frozenset[str] = frozenset()  # the identifiers that contain a registered secret


def _update_guards() -> None:
    global _guards  # noqa: PLW0603  (recomputed under _lock whenever either set grows)
    _guards = frozenset(i for i in _identifiers if any(s in i for s in _known))


def register(value: str) -> None:
    """Remember a secret value so the redaction steps mask it wherever it appears."""
    # Very short values would mask innocent text everywhere; they are still never printed
    # directly because they stay wrapped in SecretStr.
    if len(value) >= 4:
        with _lock:
            _known.add(value)
            _update_guards()


def register_identifiers(values: Iterable[str]) -> None:
    """Remember syncd's own identifiers (names, config keys, paths): ``redact_own`` leaves a
    secret that lies inside one of them as it is."""
    with _lock:
        _identifiers.update(v for v in values if v)
        _update_guards()


def known() -> frozenset[str]:
    """The secret values registered so far."""
    with _lock:
        return frozenset(_known)


def _occurrences(text: str, value: str) -> Iterator[int]:
    index = text.find(value)
    while index >= 0:
        yield index
        index = text.find(value, index + 1)


def mask(text: str, values: Iterable[str], keep: Iterable[str] = ()) -> str:
    """Replace every occurrence of ``values`` in ``text`` with the mask, except those lying
    inside an occurrence of one of ``keep``."""
    hits = [(i, i + len(v)) for v in values if v and v in text for i in _occurrences(text, v)]
    if not hits:
        return text
    kept = [(i, i + len(k)) for k in keep if k in text for i in _occurrences(text, k)]
    hits = [(a, b) for a, b in hits if not any(s <= a and b <= e for s, e in kept)]
    # Overlapping or touching secrets become one mask, so no part of either shows.
    spans: list[list[int]] = []
    for start, end in sorted(hits):
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    out: list[str] = []
    last = 0
    for start, end in spans:
        out += [text[last:start], MASK]
        last = end
    return "".join(out) + text[last:]


def redact(text: str) -> str:
    """Mask every registered secret in ``text`` that came from outside syncd (a library's
    message, an exception, a traceback)."""
    return mask(text, known())


def redact_own(text: str) -> str:
    """Mask every registered secret in text syncd composed, except inside its identifiers."""
    with _lock:
        values, guards = frozenset(_known), _guards
    return mask(text, values, guards)


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
