"""The rules for names and values the store keeps (``syncd.store.names``): pure functions."""

from __future__ import annotations

import pytest

from syncd.errors import UsageError
from syncd.store.names import (
    InvalidValue,
    check_description,
    check_email,
    check_icon,
    check_name,
    description_problem,
    email_problem,
    icon_problem,
    name_problem,
    shown,
    storable,
)


@pytest.mark.parametrize("value", [
    "eng", "Ünïcode group", "a b", "x" * 200, "o'brien", "eng-platform/2", "日本語",
])
def test_good_names(value: str) -> None:
    assert name_problem(value) is None
    assert check_name("group name", value) == value


@pytest.mark.parametrize(("value", "problem"), [
    ("", "is empty"),
    ("   ", "is blank"),
    ("\t", "is blank"),
    (" eng", "has leading or trailing white space"),
    ("eng ", "has leading or trailing white space"),
    ("eng\u00a0", "has leading or trailing white space"),  # a no-break space is white space
    ("a\nb", "contains a control character (U+000A)"),
    ("a\tb", "contains a control character (U+0009)"),
    ("a\rb", "contains a control character (U+000D)"),
    ("a\x00b", "contains a control character (U+0000)"),
    ("a\x7fb", "contains a control character (U+007F)"),
    ("a\x85b", "contains a control character (U+0085)"),
    ("a\u2028b", "contains a control character (U+2028)"),  # Zl
    ("a\u2029b", "contains a control character (U+2029)"),  # Zp
    ("x" * 201, "is longer than 200 characters"),
    ("x" * 10_000, "is longer than 200 characters"),
])
def test_bad_names(value: str, problem: str) -> None:
    assert name_problem(value) == problem


def test_check_name_says_what_and_shows_the_value_escaped() -> None:
    with pytest.raises(InvalidValue) as info:
        check_name("group name", "a\nb")
    assert str(info.value) == r"group name 'a\nb' contains a control character (U+000A)"
    # One error for both kinds of caller: a usage error (exit 2) and a ValueError.
    assert isinstance(info.value, UsageError)
    assert isinstance(info.value, ValueError)
    assert info.value.exit_code == 2


def test_a_long_value_is_shown_cut() -> None:
    with pytest.raises(InvalidValue) as info:
        check_name("user name", "x" * 10_000)
    assert str(info.value) == (f"user name {'x' * 40!r}… (10000 characters) is longer than "
                               "200 characters")
    assert shown("short") == "'short'"
    assert shown("\x1b[31m") == r"'\x1b[31m'"


def test_descriptions_keep_new_lines_and_tabs_only() -> None:
    assert description_problem("") is None
    assert description_problem("line one\nline two\n\tindented") is None
    assert description_problem("d" * 4000) is None
    assert description_problem("d" * 4001) == "is longer than 4000 characters"
    assert description_problem("windows\r\nline") == "contains a control character (U+000D)"
    assert description_problem("a\u2028b") == "contains a control character (U+2028)"
    assert description_problem("bell\a") == "contains a control character (U+0007)"
    with pytest.raises(InvalidValue, match=r"^description 'bell\\x07' contains"):
        check_description("description", "bell\a")


def test_icons() -> None:
    assert icon_problem("https://example.org/icons/eng.png") is None
    assert icon_problem("i" * 1024) is None
    assert icon_problem("i" * 1025) == "is longer than 1024 characters"
    assert icon_problem("a\nb") == "contains a control character (U+000A)"
    assert check_icon("icon", "rocket") == "rocket"


@pytest.mark.parametrize("value", [
    "alice@example.org",
    "Alice.Smith+tag@mail.example.org",
    "o'brien@example.co.uk",
    "x@xn--bcher-kva.example",
    "ünï@exämple.org",  # RFC 6531: international local part and domain
    "a!#$%&'*+/=?^_`{|}~-@example.org",
    f"{'l' * 64}@example.org",
])
def test_good_emails(value: str) -> None:
    assert email_problem(value) is None
    assert check_email("email", value) == value


@pytest.mark.parametrize(("value", "problem"), [
    ("", "is not an email address (no '@')"),
    ("alice", "is not an email address (no '@')"),
    ("alice example.org", "is not an email address (it contains white space)"),
    (" alice@example.org", "is not an email address (it contains white space)"),
    ("Alice <alice@example.org>", "is not an email address (it contains white space)"),
    ("<alice@example.org>", "is not one plain email address"),
    ("alice@example.org, bob@example.org", "is not an email address (it contains white space)"),
    ("alice@example.org,bob@example.org", "is not one plain email address"),
    ("a@b@example.org", "is not one plain email address"),
    ("@example.org", "is not a valid email address: it has nothing before the '@'"),
    ("alice@", "is not one plain email address"),
    ("alice@localhost", "is not a valid email address: it has a domain 'localhost' that is "
                        "not a full domain name"),
    ("alice@10.0.0.1", "is not a valid email address: it has a domain '10.0.0.1' that is "
                       "not a full domain name"),
    ("alice@exa_mple.org", "is not a valid email address: it has an invalid domain "
                           "'exa_mple.org'"),
    ("alice@-example.org", "is not a valid email address: it has an invalid domain "
                           "'-example.org'"),
    ("alice@example..org", "is not a valid email address: it has an invalid domain "
                           "'example..org'"),
    (".alice@example.org", "is not a valid email address: it has a dot at the start or end of "
                           "the part before the '@', or two in a row"),
    ("al..ice@example.org", "is not a valid email address: it has a dot at the start or end "
                            "of the part before the '@', or two in a row"),
    ("al(ice)@example.org", "is not one plain email address"),
    ('"al"ice@example.org', "is not a valid email address: it has '\"' before the '@'"),
    (f"{'l' * 65}@example.org", "is not a valid email address: it has a local part (before "
                                "the '@') longer than 64 bytes"),
    ("alice@example.org\n", "contains a control character (U+000A)"),
    (f"{'a' * 310}@example.org", "is longer than 320 characters"),
])
def test_bad_emails(value: str, problem: str) -> None:
    assert email_problem(value) == problem
    with pytest.raises(InvalidValue, match=r"^email "):
        check_email("email", value)


def test_storable() -> None:
    assert storable("any\ntext at all")
    assert not storable("a\x00b")
