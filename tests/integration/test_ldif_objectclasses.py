"""Object class inheritance in the LDIF filter evaluator, held against OpenLDAP itself: the
class table agrees with the schema files slapd installs, and a filter selects from a file
the entries slapd selects from the same entries."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require_server
from ldap3 import SUBTREE
from slapd import SCHEMA_DIR, SUFFIX, Slapd

from connectors.dn import normalise_dn
from connectors.ldapfilter import compile_filter
from connectors.ldifparse import read_ldif
from connectors.objectclass import SUPERIORS

pytestmark = pytest.mark.slapd
SlapdFactory = Callable[..., Slapd]

# Active Directory's classes are not in OpenLDAP's schemas as AD defines them (msuser.schema
# derives them from an "mstop" of its own); the table takes them from Microsoft's schema.
AD_CLASSES = {"user", "group", "computer"}


def schema_classes() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every object class of /etc/ldap/schema/*.schema: each name -> (OID, superiors)."""
    if not SCHEMA_DIR.is_dir() or not any(SCHEMA_DIR.glob("*.schema")):
        require_server("slapd", f"OpenLDAP's schema files are not in {SCHEMA_DIR}")
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(SCHEMA_DIR.glob("*.schema")))
    text = re.sub(r"\n[ \t]+", " ", text)  # continuation lines
    macros = dict(re.findall(r"(?im)^objectidentifier\s+(\S+)\s+(\S+)", text))

    def oid(value: str) -> str:
        prefix, _, rest = value.partition(":")
        return f"{oid(macros[prefix])}.{rest}" if rest else macros.get(value, value)

    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for number, names, rest in re.findall(
            r"(?im)^objectclass\s+\(\s*(\S+)\s+NAME\s+(\([^)]*\)|'[^']*')(.*)$", text):
        sup = re.search(r"\bSUP\s+(\([^)]*\)|\S+)", rest)
        superiors = tuple(s for s in re.split(r"[\s$()]+", sup.group(1)) if s) if sup else ()
        for name in re.findall(r"'([^']+)'", names):
            out[name] = (oid(number), superiors)
    return out


def test_the_class_table_agrees_with_openldap_schema_files() -> None:
    found = schema_classes()
    assert "inetOrgPerson" in found  # the parse above found the schemas at all
    for name, (oid, superiors) in SUPERIORS.items():
        if name in AD_CLASSES:
            continue
        if name == "top":  # core.schema has it commented out (slapd builds it in)
            assert oid == "2.5.6.0"
            continue
        assert name in found, name
        assert found[name] == (oid, superiors), name


def test_the_table_holds_every_subclass_the_schemas_give_its_person_and_group_classes(
        ) -> None:
    # a schema class whose superiors are in the table (top aside) is in the table itself;
    # pilotOrganization and other subclasses of organization/unit are not persons or groups
    found = schema_classes()
    missing = [name for name, (_, superiors) in found.items()
               if name not in SUPERIORS and name not in AD_CLASSES | {"mstop"}
               and any(s in SUPERIORS and s != "top" for s in superiors)]
    assert missing == []


ENTRIES = f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: uid=ann,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: ann
cn: Ann
sn: A

dn: uid=ben,ou=people,{SUFFIX}
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: inetOrgPerson
uid: ben
cn: Ben
sn: B

dn: cn=cat,ou=people,{SUFFIX}
objectClass: residentialPerson
cn: cat
sn: C
l: Home

dn: cn=dan,ou=people,{SUFFIX}
objectClass: pilotPerson
cn: dan
sn: D

dn: cn=eve,ou=people,{SUFFIX}
objectClass: newPilotPerson
cn: eve
sn: E

dn: uid=fay,ou=people,{SUFFIX}
objectClass: account
objectClass: posixAccount
uid: fay
cn: fay
uidNumber: 1001
gidNumber: 1001
homeDirectory: /home/fay

dn: cn=gus,ou=people,{SUFFIX}
objectClass: organizationalPerson
cn: gus
sn: G

dn: ou=groups,{SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: cn=staff,ou=groups,{SUFFIX}
objectClass: groupOfNames
cn: staff
member: uid=ann,ou=people,{SUFFIX}

dn: cn=unix,ou=groups,{SUFFIX}
objectClass: posixGroup
cn: unix
gidNumber: 1001
"""

FILTERS = [
    "(objectClass=person)", "(objectClass=organizationalPerson)",
    "(objectClass=inetOrgPerson)", "(objectClass=residentialPerson)",
    "(objectClass=pilotPerson)", "(objectClass=newPilotPerson)", "(objectClass=top)",
    "(objectClass=PERSON)", "(objectClass=2.5.6.6)", "(objectClass=2.5.6.7)",
    "(objectClass=0.9.2342.19200300.100.4.4)", "(objectClass~=organizationalPerson)",
    "(!(objectClass=person))", "(&(objectClass=person)(!(objectClass=inetOrgPerson)))",
    "(|(objectClass=groupOfNames)(objectClass=posixGroup))", "(objectClass=posixAccount)",
    "(&(objectClass=organizationalPerson)(cn=a*))", "(objectClass=account)",
]


def test_ldif_filters_select_the_entries_slapd_selects(slapd_factory: SlapdFactory,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "entries.ldif"
    path.write_text(ENTRIES, encoding="utf-8")
    server = slapd_factory(path)
    conn = server.connection()
    records = list(read_ldif(path))
    for text in FILTERS:
        conn.search(SUFFIX, text, SUBTREE, attributes=[])
        assert conn.result["result"] == 0, (text, conn.result)
        by_slapd = {normalise_dn(e.entry_dn) for e in conn.entries}
        flt = compile_filter(text)
        by_file = {normalise_dn(r.dn) for r in records if flt.matches(r.attrs)}
        assert by_file == by_slapd, text
        assert by_slapd, text  # each filter selects something: no empty agreement
    conn.unbind()
