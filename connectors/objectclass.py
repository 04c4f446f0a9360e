"""The standard object class hierarchy, for filters evaluated against an LDIF file.

A directory server knows its schema: ``(objectClass=person)`` finds an entry that names only
``inetOrgPerson``, a subclass of person, and so does ``(objectClass=2.5.6.6)``. A file has no
schema, so the LDIF connector's filter evaluator (``connectors/ldapfilter.py``) takes the
superiors from the table below, the classes of the presets' schemas and their common
subclasses. A class the table does not know (a site's own) only matches literally.

Sources, each class as its schema defines it (OpenLDAP's ``/etc/ldap/schema/*.schema`` hold
all but the Active Directory ones): RFC 4512 and RFC 4519 (``core.schema``), RFC 2798
(``inetorgperson.schema``), RFC 1274 (``cosine.schema``), RFC 2307 and its draft successor
"rfc2307bis" (``nis.schema``; the same OIDs and superiors), OpenLDAP's ``openldap.schema``,
and Active Directory's schema (``msuser.schema`` mirrors it).

Active Directory derives its inetOrgPerson from ``user``, where RFC 2798 derives it from
organizationalPerson; the table follows the RFC. AD exports (``ldifde``) list every class of
an entry's chain, so literal matching finds AD's inetOrgPerson users under ``user`` anyway.
"""

from __future__ import annotations

from functools import cache

# Each class: its OID and its superiors (SUP). Two names for one class share the OID.
SUPERIORS: dict[str, tuple[str, tuple[str, ...]]] = {
    # RFC 4512 and RFC 4519
    "top": ("2.5.6.0", ()),
    "person": ("2.5.6.6", ("top",)),
    "organizationalPerson": ("2.5.6.7", ("person",)),
    "residentialPerson": ("2.5.6.10", ("person",)),
    "groupOfNames": ("2.5.6.9", ("top",)),
    "groupOfUniqueNames": ("2.5.6.17", ("top",)),
    # RFC 2798
    "inetOrgPerson": ("2.16.840.1.113730.3.2.2", ("organizationalPerson",)),
    # RFC 1274 (COSINE)
    "pilotPerson": ("0.9.2342.19200300.100.4.4", ("person",)),
    "newPilotPerson": ("0.9.2342.19200300.100.4.4", ("person",)),
    "account": ("0.9.2342.19200300.100.4.5", ("top",)),
    # RFC 2307 and rfc2307bis (posixGroup is structural in one, auxiliary in the other)
    "posixAccount": ("1.3.6.1.1.1.2.0", ("top",)),
    "shadowAccount": ("1.3.6.1.1.1.2.1", ("top",)),
    "posixGroup": ("1.3.6.1.1.1.2.2", ("top",)),
    # OpenLDAP
    "OpenLDAPperson": ("1.3.6.1.4.1.4203.1.4.5", ("pilotPerson", "inetOrgPerson")),
    # Active Directory
    "user": ("1.2.840.113556.1.5.9", ("organizationalPerson",)),
    "group": ("1.2.840.113556.1.5.8", ("top",)),
    "computer": ("1.2.840.113556.1.3.30", ("user",)),
}

TOP_NAMES = frozenset({"top", "2.5.6.0"})  # every class derives from top

# folded name or OID -> the class's OID, its identity here
_OID_OF = {key.casefold(): oid for name, (oid, _) in SUPERIORS.items() for key in (name, oid)}


@cache
def _ancestors(oid: str) -> frozenset[str]:
    """The OIDs of the class ``oid``, its superiors, theirs, and so on."""
    superiors = {_OID_OF[sup.casefold()] for own, sups in SUPERIORS.values() if own == oid
                 for sup in sups}
    return frozenset({oid}).union(*(_ancestors(sup) for sup in superiors))


@cache
def satisfying(object_class: str) -> frozenset[str]:
    """The folded names and OIDs an entry's ``objectClass`` may hold for the entry to be of
    ``object_class`` (a name or an OID): the class itself and every class derived from it.

    For ``top`` that is every class the table knows; callers take ``TOP_NAMES`` as "any
    class at all" instead.
    """
    folded = object_class.casefold()
    oid = _OID_OF.get(folded)
    if oid is None:  # a class the table does not know: itself only
        return frozenset({folded})
    return frozenset(key.casefold() for name, (own, _) in SUPERIORS.items()
                     if oid in _ancestors(own) for key in (name, own))
