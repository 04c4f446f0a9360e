"""A small directory for the LDAP connector tests, as LDIF for slapadd."""

from __future__ import annotations

import base64
import uuid

SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
OUTSIDE = f"ou=outside,{SUFFIX}"
POSIX = f"ou=posix,{SUFFIX}"
ESCAPED_GROUP = f"cn=R&D\\, Team\\+1,{GROUPS}"
ESCAPED_USER = f"cn=Smith\\, John,{PEOPLE}"
BIG_SIZE = 25


def uid_for(name: str) -> str:
    """The deterministic entryUUID of a test entry."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"syncd-test-{name}"))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def entry(dn: str, *lines: str, key: str | None = None) -> str:
    """An LDIF record; ``key`` gives it a deterministic entryUUID."""
    out = [f"dn: {dn}", *lines]
    if key:
        out.append(f"entryUUID: {uid_for(key)}")
    return "\n".join(out) + "\n\n"


def person(uid: str, parent: str = PEOPLE, *, rdn: str | None = None, cn: str | None = None,
           posix: int | None = None, locked: bool = False) -> str:
    """An inetOrgPerson (also posixAccount with a uidNumber)."""
    name = cn or uid.title()
    # slapadd wants the values of one attribute together: object classes first.
    classes = ["objectClass: inetOrgPerson"]
    lines = [f"uid: {uid}", f"cn:: {_b64(name)}", "sn: Test", f"mail: {uid}@example.org"]
    if posix is not None:
        classes.append("objectClass: posixAccount")
        lines += [f"uidNumber: {posix}", "gidNumber: 100", f"homeDirectory: /home/{uid}"]
    if locked:
        classes.append("objectClass: extensibleObject")
        lines.append("nsAccountLock: TRUE")
    lines = classes + lines
    return entry(rdn or f"uid={uid},{parent}", *lines, key=f"user-{uid}")


def group(cn: str, members: list[str], parent: str = GROUPS, *, rdn: str | None = None,
          description: str | None = None, extra: tuple[str, ...] = ()) -> str:
    """A groupOfNames."""
    lines = ["objectClass: groupOfNames", f"cn: {cn}", *(f"member: {m}" for m in members)]
    if description:
        lines.append(f"description: {description}")
    return entry(rdn or f"cn={cn},{parent}", *lines, *extra, key=f"group-{cn}")


def user_dn(uid: str) -> str:
    """The DN of a test user in ou=people."""
    return f"uid={uid},{PEOPLE}"


BIG_USERS = [f"b{i:03d}" for i in range(BIG_SIZE)]


def directory() -> str:
    """The whole test directory."""
    parts = [
        entry(SUFFIX, "objectClass: organization", "objectClass: dcObject", "o: Example",
              "dc: example"),
        entry(PEOPLE, "objectClass: organizationalUnit", "ou: people"),
        entry(GROUPS, "objectClass: organizationalUnit", "ou: groups"),
        entry(OUTSIDE, "objectClass: organizationalUnit", "ou: outside"),
        entry(POSIX, "objectClass: organizationalUnit", "ou: posix"),
        entry(f"cn=limited,{SUFFIX}", "objectClass: organizationalRole",
              "objectClass: simpleSecurityObject", "cn: limited", "userPassword: limited-pw"),
        person("alice", posix=1001),
        person("bob", posix=1002),
        person("jsmith", rdn=ESCAPED_USER, cn="Smith, John"),
        person("zoe", cn="Zoë Ångström"),
        person("locked", locked=True),
        person("outsider", OUTSIDE),
        *(person(u) for u in BIG_USERS),
        group("staff", [user_dn("alice"), user_dn("bob"), ESCAPED_USER,
                        f"cn=devs,{GROUPS}"], description="All staff"),
        group("devs", [user_dn("zoe"), f"cn=staff,{GROUPS}"], description="Développeurs",
              extra=("businessCategory: sync",)),
        group("R&D, Team+1", [user_dn("alice")], rdn=ESCAPED_GROUP),
        entry(f"cn=unique,{GROUPS}", "objectClass: groupOfUniqueNames", "cn: unique",
              f"uniqueMember: {user_dn('bob')}#'0101'B", f"uniqueMember: {user_dn('zoe')}",
              key="group-unique"),
        group("big", [user_dn(u) for u in BIG_USERS]),
        group("external", [f"uid=outsider,{OUTSIDE}", f"uid=ghost,{OUTSIDE}",
                           user_dn("ghost2"), user_dn("locked")]),
        group("spare", [user_dn("bob")], description="to be deleted"),
        entry(f"cn=pg,{POSIX}", "objectClass: posixGroup", "cn: pg", "gidNumber: 500",
              "memberUid: alice", "memberUid: bob", key="group-pg"),
    ]
    return "".join(parts)


GROUP_NAMES = ["staff", "devs", "R&D, Team+1", "unique", "big", "external", "spare"]
