"""The transport's one-pass decoder of search entries agrees with ldap3's own decoder."""

from __future__ import annotations

import pytest
from ldap3.protocol.rfc4511 import (
    LDAPDN,
    AttributeDescription,
    AttributeValue,
    LDAPMessage,
    MessageID,
    PartialAttribute,
    PartialAttributeList,
    ProtocolOp,
    SearchResultEntry,
    Vals,
)
from ldap3.utils.asn1 import decode_message_fast
from pyasn1.codec.ber import encoder

from connectors.ldaptransport import decode_entry, message_ends


def message(message_id: int, dn: str, attrs: dict[str, list[bytes]]) -> bytes:
    """A searchResEntry LDAPMessage, BER-encoded by pyasn1 through ldap3's ASN.1 classes."""
    entry = SearchResultEntry()
    entry["object"] = LDAPDN(dn)
    parts = PartialAttributeList()
    for n, (name, values) in enumerate(attrs.items()):
        part = PartialAttribute()
        part["type"] = AttributeDescription(name)
        vals = Vals()
        for m, value in enumerate(values):
            vals[m] = AttributeValue(value)
        part["vals"] = vals
        parts[n] = part
    entry["attributes"] = parts
    op = ProtocolOp()
    op["searchResEntry"] = entry
    msg = LDAPMessage()
    msg["messageID"] = MessageID(message_id)
    msg["protocolOp"] = op
    return bytes(encoder.encode(msg))


@pytest.mark.parametrize(("message_id", "dn", "attrs"), [
    (7, "cn=a,dc=x", {"cn": [b"a"]}),
    (300, "cn=Zoë\\, Å+uid=z,dc=x", {"cN": ["Zoë".encode()], "member": [
        f"uid=u{i:05d},ou=people,dc=example,dc=org".encode() for i in range(3000)]}),
    (2 ** 31 - 1, "cn=b,dc=x", {"objectGUID": [bytes(range(16))], "empty": [b""],
                                "jpegPhoto": [b"\xff" * 70000]}),
    (1, "", {}),
])
def test_decode_entry_matches_ldap3(message_id: int, dn: str,
                                    attrs: dict[str, list[bytes]]) -> None:
    raw = message(message_id, dn, attrs)
    decoded = decode_entry(raw)
    assert decoded is not None
    reference = decode_message_fast(raw)
    assert decoded[0] == reference["messageID"] == message_id
    assert decoded[1]["dn"] == dn
    assert decoded[1]["raw_attributes"] == {k.lower(): v for k, v in attrs.items()}
    assert decoded[1]["raw_attributes"] == {
        bytes(a[3][0][3]).decode().lower(): [bytes(v[3]) for v in a[3][1][3]]
        for a in reference["payload"][1][3]}


def test_other_messages_and_garbage_are_left_to_ldap3() -> None:
    good = message(5, "cn=a,dc=x", {"cn": [b"a"]})
    assert decode_entry(good[:-3]) is None  # truncated
    assert decode_entry(b"\x30\x05\x02\x01\x05\x65\x00") is None  # searchResDone-like
    assert decode_entry(b"") is None


def test_messages_are_cut_by_offset_and_decoded_in_place() -> None:
    first = message(9, "cn=a,dc=x", {"cn": [b"a"]})
    big = message(9, "cn=b,dc=x", {"member": [b"uid=u%05d,dc=x" % i for i in range(2000)]})
    done = b"\x30\x0c\x02\x01\x09\x65\x07\x0a\x01\x00\x04\x00\x04\x00"  # searchResDone
    block = first + big + done
    ends = message_ends(block)
    assert ends == [len(first), len(first) + len(big), len(block)]
    assert decode_entry(block, 0, ends[0]) == decode_entry(first)
    decoded = decode_entry(block, ends[0], ends[1])
    assert decoded is not None and decoded[1]["dn"] == "cn=b,dc=x"
    assert len(decoded[1]["raw_attributes"]["member"]) == 2000
    assert decode_entry(block, ends[1], ends[2]) is None  # not an entry: ldap3 decodes it
    # a message not all received yet is not cut
    for cut in (1, 2, 3, len(first) + 1, len(first) + 4, len(block) - 1):
        assert message_ends(block[:cut]) == [end for end in ends if end <= cut]


def test_inconsistent_lengths_are_left_to_ldap3() -> None:
    good = bytearray(message(5, "cn=a,dc=x", {"cn": [b"a"], "sn": [b"b"]}))
    assert decode_entry(bytes(good)) is not None
    # the value set of "cn" claims one octet more, or one less, than it holds
    at = bytes(good).index(b"\x31\x03\x04\x01a")
    for delta in (1, -1):
        broken = good[:]
        broken[at + 1] += delta
        assert decode_entry(bytes(broken)) is None
    # two values, the set claiming only the first
    two = bytearray(message(5, "cn=a,dc=x", {"cn": [b"a", b"b"]}))
    at = bytes(two).index(b"\x31\x06")
    two[at + 1] = 3
    assert decode_entry(bytes(two)) is None
    # a message length that runs past the block
    assert decode_entry(bytes(good), 0, len(good) - 1) is None
