"""Ids read many at once (an id-only scan) are the ids ``entry_id`` reads one by one."""

from __future__ import annotations

import uuid

from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.ldapcommon import Attributes
from connectors.ldapmap import Mapper

UUIDS = [str(uuid.UUID(int=n * 7919)) for n in range(5)]
VALUES = st.sampled_from([
    *(u.encode() for u in UUIDS),  # as OpenLDAP gives entryUUIDs
    UUIDS[0].upper().encode(),  # capitals: lowered where it is a UUID
    b"Plain-Id", b"id-7",
    b" padded ", b"in side", b"", b"  ", b"two\nlines",  # white space, blank
    "Zoë".encode(), b"\xff\xfe",  # not ASCII, not UTF-8
])


def mapper(schema: str = "rfc4519") -> Mapper:
    return Mapper(schema, Attributes(), frozenset(), event="test")


@settings(max_examples=500)
@given(raws=st.lists(VALUES, max_size=8))
@example(raws=[u.encode() for u in UUIDS])
@example(raws=[b"in side", b""])  # two words in one value, none in the other
def test_plain_ids_are_the_ids_entry_id_reads(raws: list[bytes]) -> None:
    m = mapper()
    one_by_one = [m.entry_id({m.id_attr: [raw]}) for raw in raws]
    plain = m.plain_ids(raws)
    if plain is not None:
        assert plain == one_by_one
    if all(raw in [u.encode() for u in UUIDS] for raw in raws):
        assert plain == one_by_one  # the common case takes the fast way


def test_objectguid_is_never_taken_as_plain_text() -> None:
    m = mapper("ad")
    assert m.id_attr == "objectguid"
    assert m.plain_ids([b"abcdefghijklmnop"]) is None
