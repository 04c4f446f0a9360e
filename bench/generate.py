#!/usr/bin/env python3
"""Generate large synthetic directories as LDIF, for benchmarks of the sync engine.

The output is meant for the ``ldif`` connector and for loading into OpenLDAP (``slapadd``).
It is deterministic for a seed and written as a stream: memory stays modest for any size.

    python bench/generate.py --size medium --out /tmp/medium.ldif
    python bench/generate.py --size custom --groups 50 --users 200 --memberships 1000 --out x.ldif
    python bench/generate.py --changes 100 --base /tmp/medium.ldif --out-changed /tmp/medium2.ldif

See bench/README.md for what the directory looks like.
"""

from __future__ import annotations

import argparse
import base64
import random
import re
import resource
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

BASE_DN = "dc=example,dc=org"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
# Sub-OUs of ou=groups and the share of groups placed in each.
SUB_OUS: tuple[tuple[str, int], ...] = (
    ("engineering", 35), ("sales", 20), ("ops", 20), ("partners", 15), ("builtin", 10),
)
# (groups, users, memberships)
PRESETS: dict[str, tuple[int, int, int]] = {
    "small": (1_000, 5_000, 30_000),
    "medium": (10_000, 50_000, 300_000),
    "large": (50_000, 200_000, 2_000_000),
}
ZIPF_EXPONENT = 1.0  # group size ~ 1 / rank ** exponent
MAX_GROUP_SIZE = 50_000  # no group has more members than this (nor more than there are users)
LOCKED_SHARE = 0.03  # users with nsAccountLock: TRUE
OWNER_SHARE = 1 / 3  # groups with owner DNs
CATEGORY_SHARE = 0.2  # groups with a businessCategory
NESTING_SHARE = 0.02  # groups with 1-3 other groups as members (rfc4519 only)
CYCLE_PAIRS = 3  # deliberate 2-cycles: a is a member of b and b of a
UID_NUMBER_BASE = 10_000
GID_NUMBER_BASE = 20_000
# Fixed namespace: entryUUIDs are uuid5(namespace, "<seed>:<kind>:<index>").
UUID_NAMESPACE = uuid.UUID("6f1c4a52-3d0e-4a8b-9a51-2b7e0c9d4f10")

FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Brian", "Carol", "Dennis", "Edsger", "Frances", "Grace", "Guido",
    "Hedy", "Ivan", "Jean", "Ken", "Linus", "Margaret", "Niklaus", "Ola", "Radia", "Rob",
    "Shafi", "Tim", "Vint", "Whitfield", "Yukihiro", "José", "Zoë", "Łukasz", "Søren", "Amélie",
)
LAST_NAMES = (
    "Lovelace", "Turing", "Liskov", "Kernighan", "Ritchie", "Dijkstra", "Allen", "Hopper",
    "Rossum", "Lamarr", "Sutherland", "Sammet", "Thompson", "Torvalds", "Hamilton", "Wirth",
    "Dahl", "Perlman", "Pike", "Goldwasser", "Berners-Lee", "Cerf", "Diffie", "Matsumoto",
    "Müller", "García", "Kowalski", "Nørgaard", "Dubois", "O'Brien",
)
TOPICS = (
    "platform", "payments", "billing", "search", "mobile", "web", "data", "security", "support",
    "finance", "legal", "marketing", "recruiting", "infra", "network", "storage", "design",
    "research", "compliance", "facilities",
)
KINDS = ("team", "project", "on-call rota", "mailing list", "access group", "committee")
CATEGORIES = ("security", "distribution", "project", "department", "application-role")

# RFC 2849 SAFE-STRING: ASCII without NUL, LF, CR; not starting with space, ':' or '<'.
_SAFE = re.compile(r"[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f]"
                   r"[\x01-\x09\x0b\x0c\x0e-\x7f]*")


def ldif_line(name: str, value: str) -> str:
    """One ``name: value`` line; base64 (``name:: ...``) when the value is not a SAFE-STRING."""
    if value == "" or (_SAFE.fullmatch(value) and not value.endswith(" ")):
        return f"{name}: {value}\n"
    return f"{name}:: {base64.b64encode(value.encode()).decode('ascii')}\n"


def ascii_word(text: str) -> str:
    """A lower-case ASCII form of a name, for mail addresses."""
    table = {"é": "e", "ë": "e", "ł": "l", "ø": "o", "ü": "u", "í": "i", "'": "", "-": ""}
    folded = "".join(table.get(c, c) for c in text.lower())
    return "".join(c for c in folded if c.isascii() and c.isalnum())


def entry_uuid(seed: int, kind: str, index: int) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, f"{seed}:{kind}:{index}"))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    groups: int
    users: int
    memberships: int
    seed: int
    schema: str  # rfc4519 | rfc2307


@dataclass
class Layout:
    """What is decided before streaming: O(groups) integers, never the members themselves."""

    sizes: list[int]  # member values per group (nested group DNs included)
    ous: list[str]  # sub-OU of each group
    children: dict[int, list[int]] = field(default_factory=dict)  # nested group members

    def cycle_pairs(self) -> int:
        """How many pairs of groups are members of each other."""
        mutual = [g for g, kids in self.children.items()
                  if any(g in self.children.get(k, ()) for k in kids)]
        return len(mutual) // 2


def group_sizes(spec: Spec, rng: random.Random) -> list[int]:
    """Power-law group sizes summing to exactly ``spec.memberships`` where that is possible.

    Size of the group of rank r is about scale / r ** ZIPF_EXPONENT, at least 1 and at most
    the cap; the scale is found by bisection and the rounding remainder spread one by one.
    """
    n, target = spec.groups, spec.memberships
    cap = max(1, min(spec.users, MAX_GROUP_SIZE))
    weights = [1.0 / (rank + 1) ** ZIPF_EXPONENT for rank in range(n)]

    def sizes_at(scale: float) -> list[int]:
        return [min(cap, max(1, round(scale * w))) for w in weights]

    lo, hi = 0.0, cap / weights[-1]
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(sizes_at(mid)) < target:
            lo = mid
        else:
            hi = mid
    sizes = sizes_at(hi)
    diff = target - sum(sizes)
    while diff:
        moved = False
        for i in range(n):  # largest first
            if diff > 0 and sizes[i] < cap:
                sizes[i] += 1
                diff -= 1
                moved = True
            elif diff < 0 and sizes[i] > 1:
                sizes[i] -= 1
                diff += 1
                moved = True
            if not diff:
                break
        if not moved:
            break
    rng.shuffle(sizes)
    return sizes


def make_layout(spec: Spec) -> Layout:
    rng = random.Random(f"{spec.seed}:layout")
    sizes = group_sizes(spec, rng)
    names = [name for name, _ in SUB_OUS]
    ous = rng.choices(names, weights=[w for _, w in SUB_OUS], k=spec.groups)
    layout = Layout(sizes, ous)
    if spec.schema != "rfc4519" or spec.groups < 10:
        return layout  # memberUid cannot name a group: no nesting in rfc2307
    # Acyclic nesting: a group only contains groups with a higher index. The 2-cycle pairs have
    # no other outgoing edges, so the only cycles are those pairs.
    order = rng.sample(range(spec.groups), spec.groups)
    pairs = min(CYCLE_PAIRS, spec.groups // 10)
    for k in range(pairs):
        a, b = order[2 * k], order[2 * k + 1]
        layout.children[a], layout.children[b] = [b], [a]
    parents = [g for g in order[2 * pairs:] if g < spec.groups - 1]
    for g in parents[: max(1, round(NESTING_SHARE * spec.groups))]:
        count = min(rng.randint(1, 3), sizes[g], spec.groups - 1 - g)
        layout.children[g] = sorted(rng.sample(range(g + 1, spec.groups), count))
    return layout


def user_dn(i: int) -> str:
    return f"uid={user_uid(i)},{PEOPLE_DN}"


def user_uid(i: int) -> str:
    return f"u{i:06d}"


def group_cn(i: int) -> str:
    return f"g{i:05d}"


def write_tree(out: TextIO, spec: Spec) -> None:
    out.write(
        f"dn: {BASE_DN}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n"
        f"dc: example\no: Example Org\nentryUUID: {entry_uuid(spec.seed, 'ou', 0)}\n\n"
    )
    ous = [("people", BASE_DN), ("groups", BASE_DN)] + [(n, GROUPS_DN) for n, _ in SUB_OUS]
    for i, (name, parent) in enumerate(ous, start=1):
        out.write(
            f"dn: ou={name},{parent}\nobjectClass: top\nobjectClass: organizationalUnit\n"
            f"ou: {name}\nentryUUID: {entry_uuid(spec.seed, 'ou', i)}\n\n"
        )


def write_users(out: TextIO, spec: Spec) -> int:
    """Write the users; returns how many are locked."""
    rng = random.Random(f"{spec.seed}:users")
    posix = spec.schema == "rfc2307"
    classes = "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n" \
              "objectClass: inetOrgPerson\n" + ("objectClass: posixAccount\n" if posix else "")
    locked = 0
    for i in range(spec.users):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        uid = user_uid(i)
        parts = [
            f"dn: {user_dn(i)}\n", classes, f"uid: {uid}\n", ldif_line("cn", f"{first} {last}"),
            ldif_line("sn", last), ldif_line("givenName", first),
            f"mail: {ascii_word(first)}.{ascii_word(last)}.{i}@example.org\n",
            f"entryUUID: {entry_uuid(spec.seed, 'user', i)}\n",
        ]
        if posix:
            parts.append(f"uidNumber: {UID_NUMBER_BASE + i}\ngidNumber: {GID_NUMBER_BASE}\n"
                         f"homeDirectory: /home/{uid}\nloginShell: /bin/bash\n")
        if rng.random() < LOCKED_SHARE:
            # extensibleObject: OpenLDAP allows nsAccountLock (bench/nsaccountlock.ldif) with it
            parts.insert(2, "objectClass: extensibleObject\n")
            parts.append("nsAccountLock: TRUE\n")
            locked += 1
        parts.append("\n")
        out.write("".join(parts))
    return locked


def group_dn(layout: Layout, i: int) -> str:
    return f"cn={group_cn(i)},ou={layout.ous[i]},{GROUPS_DN}"


def write_groups(out: TextIO, spec: Spec, layout: Layout) -> int:
    """Write the groups, members streamed group by group; returns the member values written."""
    rng = random.Random(f"{spec.seed}:groups")
    posix = spec.schema == "rfc2307"
    total = 0
    for g in range(spec.groups):
        cn = group_cn(g)
        ou = layout.ous[g]
        topic = rng.choice(TOPICS)
        parts = [f"dn: {group_dn(layout, g)}\nobjectClass: top\n"]
        if posix:
            parts.append(f"objectClass: posixGroup\ncn: {cn}\ngidNumber: {GID_NUMBER_BASE + g}\n")
        else:
            parts.append(f"objectClass: groupOfNames\ncn: {cn}\n")
        parts.append(f"description: {topic.capitalize()} {rng.choice(KINDS)} ({ou})\n")
        owners = rng.random() < OWNER_SHARE
        category = rng.random() < CATEGORY_SHARE
        owner_ids = rng.sample(range(spec.users), min(spec.users, rng.randint(1, 2)))
        if not posix:  # posixGroup allows neither owner nor businessCategory
            if owners:
                parts.extend(f"owner: {user_dn(u)}\n" for u in sorted(owner_ids))
            if category:
                parts.append(f"businessCategory: {rng.choice(CATEGORIES)}\n")
        parts.append(f"entryUUID: {entry_uuid(spec.seed, 'group', g)}\n")
        kids = layout.children.get(g, [])
        count = min(spec.users, layout.sizes[g] - len(kids))
        members = sorted(rng.sample(range(spec.users), count)) if count > 0 else []
        if not members and not kids:
            members = [0]  # groupOfNames needs a member: the first user
        if posix:
            parts.extend(f"memberUid: {user_uid(u)}\n" for u in members)
        else:
            parts.extend(f"member: {user_dn(u)}\n" for u in members)
            parts.extend(f"member: {group_dn(layout, k)}\n" for k in kids)
        parts.append("\n")
        out.write("".join(parts))
        total += len(members) + len(kids)
    return total


def generate(spec: Spec, path: Path) -> None:
    started = time.monotonic()
    if spec.memberships > spec.groups * min(spec.users, MAX_GROUP_SIZE):
        raise SystemExit(f"{spec.memberships} memberships do not fit in {spec.groups} groups "
                         f"of at most {min(spec.users, MAX_GROUP_SIZE)} members")
    if spec.memberships < spec.groups:
        print(f"warning: every group has a member, so there will be {spec.groups} memberships, "
              f"not {spec.memberships}", file=sys.stderr)
    layout = make_layout(spec)
    with path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        write_tree(out, spec)
        locked = write_users(out, spec)
        total = write_groups(out, spec, layout)
    nested = sum(1 for g, kids in layout.children.items() if kids)
    print(
        f"wrote {path}: {spec.users} users ({locked} locked), {spec.groups} groups "
        f"(largest {max(layout.sizes)}, {nested} with nested groups, "
        f"{layout.cycle_pairs()} 2-cycles), {total} memberships (target {spec.memberships}), "
        f"schema {spec.schema}, seed {spec.seed}, {path.stat().st_size / 2**20:.1f} MiB "
        f"in {time.monotonic() - started:.1f}s; peak RSS {peak_rss_mib():.0f} MiB",
        file=sys.stderr,
    )


# ---------------------------------------------------------------------------------------------
# Changed copies
# ---------------------------------------------------------------------------------------------

GROUP_CLASSES = {"groupofnames", "groupofuniquenames", "posixgroup"}
USER_CLASSES = {"person", "inetorgperson", "posixaccount"}
MEMBER_ATTRS = {"member", "uniquemember", "memberuid"}


@dataclass
class Record:
    """One LDIF record: (attribute name, decoded value) pairs and the original text."""

    lines: list[tuple[str, str]]
    raw: str

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.lines if n.lower() == name]

    @property
    def dn(self) -> str:
        return next(iter(self.values("dn")), "")

    def classes(self) -> set[str]:
        return {v.lower() for v in self.values("objectclass")}


def parse_line(line: str) -> tuple[str, str]:
    name, sep, rest = line.partition(":")
    if not sep:
        raise ValueError(f"not an LDIF attribute line: {line[:80]!r}")
    if rest.startswith(":"):
        return name, base64.b64decode(rest[1:].strip()).decode("utf-8")
    if rest.startswith("<"):
        raise ValueError(f"URL values are not supported: {line[:80]!r}")
    return name, rest.lstrip(" ")


def read_records(path: Path) -> Iterator[Record]:
    """Stream the records of an LDIF file (folded lines joined, comments skipped)."""
    raw: list[str] = []
    logical: list[str] = []
    in_comment = False
    with path.open(encoding="utf-8", newline="\n") as f:
        for text in f:
            line = text.rstrip("\r\n")
            if not line:
                if raw:
                    yield Record([parse_line(x) for x in logical], "".join(raw) + "\n")
                raw, logical = [], []
                continue
            raw.append(text if text.endswith("\n") else text + "\n")
            if line.startswith(" "):
                if logical and not in_comment:
                    logical[-1] += line[1:]
            elif line.startswith("#"):
                in_comment = True
            else:
                in_comment = False
                logical.append(line)
    if raw:
        yield Record([parse_line(x) for x in logical], "".join(raw) + "\n")


@dataclass
class Scan:
    """What the first pass learns: the groups (in file order) and a sample of users."""

    groups: list[tuple[str, int]] = field(default_factory=list)  # (dn, member values)
    referenced: set[str] = field(default_factory=set)  # lower-cased member DNs, uid=... left out
    users: list[tuple[str, str]] = field(default_factory=list)  # reservoir of (dn, uid)
    users_seen: int = 0


def scan(path: Path, rng: random.Random, sample: int = 4096) -> Scan:
    result = Scan()
    for rec in read_records(path):
        classes = rec.classes()
        if classes & GROUP_CLASSES:
            members = [v for n, v in rec.lines if n.lower() in MEMBER_ATTRS]
            result.groups.append((rec.dn, len(members)))
            # Values that may name a group (uid=... DNs and memberUid names do not).
            result.referenced.update(v.lower() for v in members
                                     if "," in v and v[:4].lower() != "uid=")
        elif classes & USER_CLASSES:
            uid = (rec.values("uid") or [""])[0]
            result.users_seen += 1
            if len(result.users) < sample:
                result.users.append((rec.dn, uid))
            else:
                j = rng.randrange(result.users_seen)
                if j < sample:
                    result.users[j] = (rec.dn, uid)
    return result


@dataclass
class Plan:
    deletes: set[int]  # group ordinals (position among the groups of the file)
    renames: dict[int, str]  # group ordinal -> new parent DN (same parent: a plain rename)
    descriptions: set[int]
    members: set[int]
    largest: int  # the largest group always gets a membership change


def make_plan(found: Scan, changes: int, rng: random.Random) -> Plan:
    n = len(found.groups)
    if changes > n:
        raise SystemExit(f"--changes {changes}: the base has only {n} groups")
    n_del = 0 if changes < 5 else 1 if changes < 20 else 2
    n_ren = 0 if changes < 4 else 1 if changes < 10 else 2
    n_desc = max(1, changes // 10) if changes >= 2 else 0
    # Deleted and renamed groups are ones no other group names as a member (no dangling DNs).
    free = [i for i, (dn, _) in enumerate(found.groups)
            if dn.lower() not in found.referenced and dn.lower().startswith("cn=")]
    if len(free) < n_del + n_ren:
        n_del = n_ren = 0
    picked = rng.sample(free, n_del + n_ren)
    deletes, renamed = set(picked[:n_del]), picked[n_del:]
    parents = sorted({dn.split(",", 1)[1] for dn, _ in found.groups if "," in dn})
    renames: dict[int, str] = {}
    for k, g in enumerate(renamed):
        parent = found.groups[g][0].split(",", 1)[1]
        others = [p for p in parents if p.lower() != parent.lower()]
        renames[g] = rng.choice(others) if k == 1 and others else parent  # the 2nd one moves
    rest = [i for i in range(n) if i not in deletes and i not in renames]
    n_mem = changes - n_del - n_ren - n_desc
    assert n_mem >= 1
    largest = max(rest, key=lambda i: found.groups[i][1])
    rest.remove(largest)
    chosen = rng.sample(rest, n_mem - 1 + n_desc)
    members = {largest, *chosen[: n_mem - 1]}
    return Plan(deletes, renames, set(chosen[n_mem - 1:]), members, largest)


def write_changed(base: Path, path: Path, changes: int, seed: int) -> None:
    """Copy ``base`` with ``changes`` groups changed; every other record is copied verbatim."""
    started = time.monotonic()
    rng = random.Random(f"{seed}:changes")
    found = scan(base, rng)
    plan = make_plan(found, changes, rng)
    count = {"membership": 0, "description": 0, "added": 0, "removed": 0}
    renamed: list[str] = []
    deleted: list[str] = []
    largest = ""
    ordinal = -1
    with path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        for rec in read_records(base):
            if not rec.classes() & GROUP_CLASSES:
                out.write(rec.raw)
                continue
            ordinal += 1
            rdn = rec.dn.split(",", 1)[0]
            lines = rec.lines
            if ordinal in plan.deletes:
                deleted.append(rdn)
                continue
            if ordinal in plan.renames:
                parent = plan.renames[ordinal]
                lines = rename(lines, rdn, parent)
                moved = "" if rec.dn.lower().endswith(parent.lower()) else f" moved to {parent}"
                renamed.append(f"{rdn} -> {lines[0][1].split(',', 1)[0]}{moved}")
            elif ordinal in plan.members:
                lines, plus, minus = change_members(lines, found, rng)
                if plus or minus:
                    count["membership"] += 1
                    count["added"] += plus
                    count["removed"] += minus
                    if ordinal == plan.largest:
                        largest = f"{rdn} +{plus}/-{minus}"
                else:  # a single member and no user to add: change the description instead
                    lines = change_description(lines)
                    count["description"] += 1
            elif ordinal in plan.descriptions:
                lines = change_description(lines)
                count["description"] += 1
            else:
                out.write(rec.raw)
                continue
            out.write("".join(ldif_line(n, v) for n, v in lines) + "\n")
    print(
        f"wrote {path}: {changes} of {len(found.groups)} groups changed from {base} "
        f"(seed {seed}): {count['membership']} membership (+{count['added']}/"
        f"-{count['removed']} values; largest group {largest or 'unchanged'}), "
        f"{count['description']} description, {len(renamed)} renamed [{'; '.join(renamed)}], "
        f"{len(deleted)} deleted [{', '.join(deleted)}] in {time.monotonic() - started:.1f}s; "
        f"peak RSS {peak_rss_mib():.0f} MiB",
        file=sys.stderr,
    )


def rename(lines: list[tuple[str, str]], rdn: str, parent: str) -> list[tuple[str, str]]:
    """New RDN value ``<old>-renamed`` under ``parent``; the entryUUID stays."""
    attr, _, old = rdn.partition("=")
    new = f"{old}-renamed"
    return [("dn", f"{attr}={new},{parent}")] + [
        (n, new if n.lower() == attr.lower() and v == old else v)
        for n, v in lines if n.lower() != "dn"
    ]


def change_members(lines: list[tuple[str, str]], found: Scan,
                   rng: random.Random) -> tuple[list[tuple[str, str]], int, int]:
    """Remove and/or add a few member values; never leaves the group empty."""
    attrs = [n for n, _ in lines if n.lower() in MEMBER_ATTRS]
    attr = attrs[0] if attrs else "member"
    by_uid = attr.lower() == "memberuid"
    present = [v for n, v in lines if n.lower() in MEMBER_ATTRS]
    have = {v.lower() for v in present}
    candidates = [uid if by_uid else dn for dn, uid in found.users]
    candidates = [c for c in candidates if c and c.lower() not in have]
    big = len(present) >= 1000
    mode = rng.choice(("add", "remove", "both"))
    n_add = 0 if mode == "remove" else rng.randint(1, 50 if big else 5)
    n_rem = 0 if mode == "add" else rng.randint(1, 50 if big else 5)
    n_rem = min(n_rem, len(present) - 1)
    n_add = min(n_add, len(candidates))
    if n_add == 0 and n_rem == 0:  # e.g. "add" to a group holding every sampled user
        n_add, n_rem = (1, 0) if candidates else (0, min(1, len(present) - 1))
    gone = {v.lower() for v in rng.sample(present, n_rem)}
    kept = [(n, v) for n, v in lines if not (n.lower() in MEMBER_ATTRS and v.lower() in gone)]
    kept.extend((attr, v) for v in rng.sample(candidates, n_add))
    return kept, n_add, n_rem


def change_description(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if not any(n.lower() == "description" for n, _ in lines):
        return [*lines, ("description", "Description added by the change generator")]
    return [(n, f"{v} (changed)" if n.lower() == "description" else v) for n, v in lines]


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--size", choices=[*PRESETS, "custom"])
    p.add_argument("--groups", type=int)
    p.add_argument("--users", type=int)
    p.add_argument("--memberships", type=int)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--schema", choices=["rfc4519", "rfc2307"], default="rfc4519")
    p.add_argument("--out", type=Path, help="the LDIF file to generate")
    p.add_argument("--changes", type=int, help="groups to change in a copy of the base")
    p.add_argument("--base", type=Path, help="base LDIF for --changes (default: --out)")
    p.add_argument("--out-changed", type=Path, help="where --changes writes the changed copy")
    args = p.parse_args(argv)
    if args.changes is not None:
        if args.changes < 1 or args.out_changed is None:
            p.error("--changes needs a positive count and --out-changed")
        if args.base is None and args.out is None:
            p.error("--changes needs --base (or --out to generate the base first)")
        if args.base is not None and args.out is not None:
            p.error("--base and --out are exclusive: with --base nothing is generated")
    elif args.base is not None or args.out_changed is not None:
        p.error("--base and --out-changed go with --changes")
    if args.out is not None:
        if args.size is None:
            p.error("--out needs --size")
        if args.size == "custom":
            if None in (args.groups, args.users, args.memberships):
                p.error("--size custom needs --groups, --users and --memberships")
            if min(args.groups, args.users, args.memberships) < 1:
                p.error("--groups, --users and --memberships must be positive")
        elif (args.groups, args.users, args.memberships) != (None, None, None):
            p.error("--groups/--users/--memberships go with --size custom")
        else:
            args.groups, args.users, args.memberships = PRESETS[args.size]
    elif args.changes is None:
        p.error("--out is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out is not None:
        spec = Spec(args.groups, args.users, args.memberships, args.seed, args.schema)
        generate(spec, args.out)
    if args.changes is not None:
        write_changed(args.base or args.out, args.out_changed, args.changes, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
