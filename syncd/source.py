"""What connectors produce: source users and groups, streamed as a snapshot or a delta.

Member references (``SourceGroup.members``) are *refs*: the connector's normalised key of
another entry (a normalised DN for LDAP, an object id for Graph). A ref of the form
``name:USER`` points at a user by user name (posixGroup's memberUid). Each user and group
carries its own ``ref``; the engine resolves references through those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # syncd.rules imports this module
    from syncd.rules import Warning

NAME_REF_PREFIX = "name:"


@dataclass(slots=True)
class SourceUser:
    """A user as the source sees it."""

    external_id: str
    ref: str
    user_name: str
    email: str | None = None
    display_name: str | None = None
    disabled: bool = False
    external: bool = False


@dataclass(slots=True)
class SourceGroup:
    """A group as the source sees it.

    ``attributes`` holds only the attributes the rules use, keyed by lower-case name.
    ``owners`` are refs of owners the source itself records (Graph); LDAP owners come from
    attributes named in rules.
    """

    external_id: str
    ref: str
    dn: str
    name: str
    description: str = ""
    attributes: dict[str, list[str]] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    """A complete pull: iterating both streams to the end without error means complete.

    The iterators raise ``SourceError`` on any failure (unreachable, a page lost, a limit
    exceeded); the engine then fails the run and changes nothing. ``warnings`` are what the
    connector found worth saying without failing (a duplicate entry, a filter that matched
    nothing): the connector fills the list as the streams are read, so it is complete once
    both are read to the end; the engine adds them to the run's warnings.
    """

    users: Iterable[SourceUser]
    groups: Iterable[SourceGroup]
    cursor: dict[str, Any] | None = None
    warnings: list[Warning] = field(default_factory=list)


# What a delta still finding its removals gives once done: removed user ids, removed group
# ids, and the new cursor.
Removals = tuple[Iterable[str], Iterable[str], dict[str, Any]]


@dataclass
class Delta:
    """Changes since a cursor: changed or new entries, removed external ids, the new cursor.

    A connector may return it from ``begin_delta`` while it is still finding the removals
    (a scan of the source): ``pending`` then gives them, and the cursor, and ``settle``
    fills them in. Until then ``removed_users``, ``removed_groups`` and ``cursor`` are not
    to be read. ``warnings`` as for ``Snapshot``.
    """

    users: Iterable[SourceUser]
    groups: Iterable[SourceGroup]
    removed_users: Iterable[str]
    removed_groups: Iterable[str]
    cursor: dict[str, Any]
    pending: Callable[[], Removals] | None = field(default=None, repr=False)
    warnings: list[Warning] = field(default_factory=list)

    def settle(self) -> None:
        """Wait for removals still being found, and fill them in (raises what finding
        them raised, a ``SourceError`` when the source failed)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.removed_users, self.removed_groups, self.cursor = pending()

