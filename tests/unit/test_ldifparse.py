"""The RFC 2849 reader: record structure, folding, base64, comments, CRLF and errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import ldifparse
from connectors.ldifparse import LdifRecord, LdifSyntaxError, parse_ldif, read_ldif, value_text
from syncd.errors import SourceError


def parse(text: str | bytes, keep: set[str] | None = None) -> list[LdifRecord]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return list(parse_ldif(data.splitlines(keepends=True), file="t.ldif", keep=keep))


def error(text: str | bytes) -> LdifSyntaxError:
    with pytest.raises(LdifSyntaxError) as info:
        parse(text)
    return info.value


TWO_RECORDS = """\
dn: cn=a,dc=example,dc=org
objectClass: groupOfNames
cn: a
member: uid=x,dc=example,dc=org
member: uid=y,dc=example,dc=org

dn: cn=b,dc=example,dc=org
cn: b
"""


def test_records_attributes_and_line_numbers() -> None:
    first, second = parse(TWO_RECORDS)
    assert first.dn == "cn=a,dc=example,dc=org"
    assert first.line == 1
    assert first.values("member") == [b"uid=x,dc=example,dc=org", b"uid=y,dc=example,dc=org"]
    assert second.dn == "cn=b,dc=example,dc=org"
    assert second.line == 7
    assert second.attrs == {"cn": [b"b"]}


def test_attribute_names_are_case_insensitive() -> None:
    (record,) = parse("dn: cn=a\nObjectClass: top\nOBJECTCLASS: groupOfNames\nCN: a\n")
    assert record.values("objectclass") == [b"top", b"groupOfNames"]
    assert record.values("objectClass") == [b"top", b"groupOfNames"]
    assert record.first("Cn") == b"a"
    assert record.first("sn") is None
    assert record.values("sn") == []


def test_folded_lines_are_joined() -> None:
    text = ("dn: cn=a,dc=exa\n mple,dc=org\ndescription: the first half and\n  the second"
            "\ncn: a\n")
    (record,) = parse(text)
    assert record.dn == "cn=a,dc=example,dc=org"
    # only the single leading space of a continuation line is removed
    assert record.first("description") == b"the first half and the second"
    assert record.first("cn") == b"a"


def test_base64_values_and_base64_dn() -> None:
    text = ("dn:: Y249Wm/DqyxkYz1leGFtcGxlLGRjPW9yZw==\n"  # cn=Zoë,dc=example,dc=org
            "cn:: Wm/Dqw==\n"
            "objectGUID:: AQIDBAUGBwgJCgsMDQ4PEA==\n")
    (record,) = parse(text)
    assert record.dn == "cn=Zoë,dc=example,dc=org"
    assert record.first("cn") == "Zoë".encode()
    assert record.first("objectguid") == bytes(range(1, 17))


def test_folded_base64_value() -> None:
    (record,) = parse("dn: cn=a\ncn:: Wm/Dqy\n BNYXJ0aW4=\n")
    assert record.first("cn") == "Zoë Martin".encode()


def test_invalid_base64_names_the_line() -> None:
    err = error("dn: cn=a\ncn: a\ndescription:: not*base64\n")
    assert str(err).startswith("t.ldif:3: ")
    assert "base64" in str(err)
    assert (err.file, err.line) == ("t.ldif", 3)


def test_comments_are_ignored_even_when_folded_or_inside_a_record() -> None:
    text = ("# a comment\n#  that goes on\n  over a folded line\ndn: cn=a\n# inside\ncn: a\n"
            "#member: uid=ghost\n")
    (record,) = parse(text)
    assert record.attrs == {"cn": [b"a"]}


def test_crlf_line_ends_give_the_same_records() -> None:
    crlf = TWO_RECORDS.replace("\n", "\r\n").encode()
    assert parse(crlf) == parse(TWO_RECORDS)


def test_crlf_inside_folded_value() -> None:
    (record,) = parse(b"dn: cn=a\r\ndescription: one\r\n  two\r\n")
    assert record.first("description") == b"one two"


def test_version_line_and_byte_order_mark() -> None:
    records = parse(b"\xef\xbb\xbfversion: 1\n\ndn: cn=a\ncn: a\n")
    assert [r.dn for r in records] == ["cn=a"]
    assert parse("version: 1\ndn: cn=a\n")[0].dn == "cn=a"


def test_unsupported_version() -> None:
    assert str(error("version: 2\n\ndn: cn=a\n")).startswith("t.ldif:1: unsupported LDIF version")


def test_version_after_a_record_is_an_error() -> None:
    err = error("dn: cn=a\n\nversion: 1\n")
    assert err.line == 3
    assert "must start with 'dn:'" in str(err)


def test_several_blank_lines_and_whitespace_lines_separate_records() -> None:
    records = parse("\n\ndn: cn=a\ncn: a\n\n   \n\ndn: cn=b\ncn: b")
    assert [r.dn for r in records] == ["cn=a", "cn=b"]
    assert records[1].line == 8


def test_empty_value_and_attribute_options() -> None:
    (record,) = parse("dn: cn=a\ndescription:\ncn;lang-de: Gruppe\n")
    assert record.first("description") == b""
    assert record.first("cn;lang-de") == b"Gruppe"
    assert record.first("cn") is None


@pytest.mark.parametrize("kind", ["changetype: modify", "control: 1.2.840.113556.1.4.805 true"])
def test_change_records_are_refused(kind: str) -> None:
    err = error(f"version: 1\n\ndn: cn=a\n{kind}\n")
    assert err.line == 4
    assert str(err).startswith("t.ldif:4: change records")


def test_url_values_are_refused() -> None:
    err = error("dn: cn=a\ncn: a\njpegPhoto:< file:///tmp/photo.jpg\n")
    assert str(err).startswith("t.ldif:3: ")
    assert "URL" in str(err)


def test_record_must_start_with_dn() -> None:
    err = error("cn: a\ndn: cn=a\n")
    assert (err.line, "must start with 'dn:'" in str(err)) == (1, True)


def test_missing_blank_line_between_records() -> None:
    err = error("dn: cn=a\ncn: a\ndn: cn=b\n")
    assert err.line == 3
    assert "second 'dn:'" in str(err)


def test_line_without_colon() -> None:
    err = error("dn: cn=a\nthis is not an attribute\n")
    assert str(err).startswith("t.ldif:2: expected 'attribute: value'")


def test_invalid_attribute_name() -> None:
    assert error("dn: cn=a\nbad_name: x\n").line == 2


def test_continuation_without_a_line_before_it() -> None:
    err = error("dn: cn=a\n\n continued\n")
    assert err.line == 3
    assert "continuation" in str(err)


def test_keep_drops_other_attributes_but_still_checks_them() -> None:
    (record,) = parse("dn: cn=a\ncn: a\njpegPhoto:: /9j/4AAQ\nmember: uid=x\n",
                      keep={"cn", "member"})
    assert set(record.attrs) == {"cn", "member"}
    with pytest.raises(LdifSyntaxError):
        parse("dn: cn=a\ncn: a\njpegPhoto:: *\n", keep={"cn"})


def test_syntax_error_is_a_source_error() -> None:
    assert isinstance(error("cn: a\n"), SourceError)


def test_value_text() -> None:
    assert value_text("Jörg".encode()) == "Jörg"
    assert value_text(b"\xff\x00\x01") == "/wAB"


def test_records_stream_before_a_later_error() -> None:
    stream = parse_ldif([b"dn: cn=a\n", b"\n", b"dn: cn=b\n", b"oops\n"], file="s.ldif")
    assert next(stream).dn == "cn=a"
    with pytest.raises(LdifSyntaxError, match=r"^s\.ldif:4: "):
        next(stream)


# -- size limits --------------------------------------------------------------------------

def pulled(lines: list[bytes], taken: list[int]) -> Iterator[bytes]:
    """``lines`` one by one, counting in ``taken`` how many were asked for."""
    for line in lines:
        taken[0] += 1
        yield line


def test_a_line_longer_than_the_record_limit_fails_there(monkeypatch: pytest.MonkeyPatch,
                                                         ) -> None:
    monkeypatch.setattr(ldifparse, "MAX_RECORD_BYTES", 100)
    taken = [0]
    lines = [b"dn: cn=a\n", b"cn: a\n", b"\n", b"dn: cn=b\n",
             b"description: " + b"x" * 200 + b"\n", b"cn: b\n", b"\n", b"dn: cn=c\n"]
    stream = parse_ldif(pulled(lines, taken), file="big.ldif")
    assert next(stream).dn == "cn=a"
    with pytest.raises(LdifSyntaxError, match=r"^big\.ldif:5: .*longer than 100 bytes") as info:
        next(stream)
    assert info.value.line == 5
    assert taken == [5]  # nothing read after the line that is too long


def test_a_record_larger_than_the_limit_fails_at_its_first_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ldifparse, "MAX_RECORD_BYTES", 100)
    members = [f"member: uid=u{i},dc=example,dc=org\n".encode() for i in range(5)]  # 33 B each
    taken = [0]
    lines = [b"dn: cn=a\n", b"cn: a\n", b"\n", b"dn: cn=big\n", *members, b"\n", b"dn: cn=c\n"]
    stream = parse_ldif(pulled(lines, taken), file="big.ldif")
    assert next(stream).dn == "cn=a"
    with pytest.raises(LdifSyntaxError, match=r"^big\.ldif:4: .*record.*larger than 100 bytes"):
        next(stream)
    assert taken == [7]  # 11 + 33 + 33 + 33 bytes: the third member line passes the limit


def test_records_up_to_the_limit_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    record = b"dn: cn=a\ncn: a\n" + b"member: " + b"m" * 76 + b"\n"
    assert len(record) == 100
    monkeypatch.setattr(ldifparse, "MAX_RECORD_BYTES", 100)
    # each record at the limit, the file far beyond it: the limit is per record
    records = parse((record + b"\n") * 50)
    assert len(records) == 50
    assert records[0].first("member") == b"m" * 76


def test_the_limit_is_generous() -> None:
    assert ldifparse.MAX_RECORD_BYTES == 64 * 1024 * 1024
    # a group of a million members, as long DNs as usual, is under it
    assert 1_000_000 * len(b"member: uid=u0000000,ou=people,dc=example,dc=org\n") \
        < ldifparse.MAX_RECORD_BYTES


def test_read_ldif_stops_at_a_line_over_the_limit(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(ldifparse, "MAX_RECORD_BYTES", 1000)
    path = tmp_path / "one-line.ldif"
    path.write_bytes(b"dn: cn=a\ncn: a\n\n" + b"y" * 5_000_000)   # no line end at all
    stream = read_ldif(path)
    assert next(stream).dn == "cn=a"
    with pytest.raises(LdifSyntaxError, match=rf"^{path}:4: .*longer than 1000 bytes"):
        next(stream)


def test_endless_white_space_is_not_a_blank_line(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(ldifparse, "MAX_RECORD_BYTES", 1000)
    path = tmp_path / "spaces.ldif"
    path.write_bytes(b"dn: cn=a\n\n" + b" " * 5_000)
    with pytest.raises(LdifSyntaxError, match=rf"^{path}:3: line longer than 1000 bytes"):
        list(read_ldif(path))


# -- records that repeat a DN (issue 17, item 5b) ------------------------------------------

def test_duplicate_dns_tells_the_repeats_of_a_dn_and_keeps_their_lines() -> None:
    seen = ldifparse.DuplicateDns()
    records = parse("dn: cn=a\n\ndn: cn=b\n\ndn: CN=A\n\ndn: cn=a\n\ndn: cn=c\n")
    keys = ["cn=a", "cn=b", "cn=a", "cn=a", "cn=c"]   # as the connector normalises them
    assert [seen.is_repeat(key, r) for key, r in zip(keys, records, strict=True)] == [
        False, False, True, True, False]
    (repeat,) = seen.repeats.values()
    assert (repeat.dn, repeat.lines, repeat.count) == ("CN=A", [1, 5, 7], 3)


def test_duplicate_dns_keeps_a_bounded_number_of_lines() -> None:
    seen = ldifparse.DuplicateDns()
    for line in range(1, 1001):
        seen.is_repeat("cn=a", LdifRecord(dn="cn=a", line=line))
    (repeat,) = seen.repeats.values()
    assert repeat.count == 1000
    assert repeat.lines == list(range(1, ldifparse.DuplicateDns.LINES_KEPT + 1))


def test_no_duplicates_no_repeats() -> None:
    seen = ldifparse.DuplicateDns()
    assert not any(seen.is_repeat(r.dn, r) for r in parse(TWO_RECORDS))
    assert seen.repeats == {}
