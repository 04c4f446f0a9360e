"""bench/generate.py: the synthetic directory generator used by the benchmarks."""

from __future__ import annotations

import base64
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "generate.py"
TINY = ["--size", "custom", "--groups", "50", "--users", "200", "--memberships", "1000"]

Entry = dict[str, list[str]]


def run(*args: str | Path) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                          capture_output=True, text=True, check=True)
    return done.stderr


def parse(path: Path) -> dict[str, Entry]:
    """A deliberately separate, minimal LDIF reader: entries by lower-cased DN."""
    entries: dict[str, Entry] = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines: list[str] = []
        for line in block.splitlines():
            if line.startswith(" "):
                lines[-1] += line[1:]
            elif line and not line.startswith("#"):
                lines.append(line)
        if not lines:
            continue
        entry: Entry = {}
        for line in lines:
            name, _, rest = line.partition(":")
            value = (base64.b64decode(rest[1:].strip()).decode() if rest.startswith(":")
                     else rest.strip())
            entry.setdefault(name.lower(), []).append(value)
        entries[entry["dn"][0].lower()] = entry
    return entries


def groups_of(entries: dict[str, Entry]) -> dict[str, Entry]:
    return {dn: e for dn, e in entries.items()
            if {"groupofnames", "posixgroup"} & {c.lower() for c in e["objectclass"]}}


def users_of(entries: dict[str, Entry]) -> dict[str, Entry]:
    return {dn: e for dn, e in entries.items()
            if "inetorgperson" in {c.lower() for c in e["objectclass"]}}


def by_uuid(entries: dict[str, Entry]) -> dict[str, Entry]:
    return {e["entryuuid"][0]: e for e in entries.values()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "tiny.ldif"
    run(*TINY, "--seed", "7", "--out", out)
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(tiny: Path, tmp_path: Path) -> None:
    again, other = tmp_path / "again.ldif", tmp_path / "other.ldif"
    run(*TINY, "--seed", "7", "--out", again)
    run(*TINY, "--seed", "8", "--out", other)
    assert again.read_bytes() == tiny.read_bytes()
    assert other.read_bytes() != tiny.read_bytes()


def test_directory_shape(tiny: Path) -> None:
    entries = parse(tiny)
    groups, users = groups_of(entries), users_of(entries)
    assert len(groups) == 50
    assert len(users) == 200
    assert "uid=u000123,ou=people,dc=example,dc=org" in users
    sizes = [len(g.get("member", [])) for g in groups.values()]
    assert min(sizes) >= 1, "a groupOfNames without member"
    assert abs(sum(sizes) - 1000) <= 10, sum(sizes)
    assert max(sizes) >= 5 * statistics.median(sizes), "sizes are not skewed"
    dangling = {m for g in groups.values() for m in g["member"] if m.lower() not in entries}
    assert not dangling
    owners = {o for g in groups.values() for o in g.get("owner", [])}
    assert owners, "no group has an owner"
    assert all(o.lower() in users for o in owners)
    nested = {dn: {m.lower() for m in g["member"]} & groups.keys() for dn, g in groups.items()}
    assert any(nested.values()), "no nested groups"
    assert any(dn in nested[kid] for dn, kids in nested.items() for kid in kids), "no 2-cycle"
    uuids = [e["entryuuid"][0] for e in entries.values()]
    assert len(set(uuids)) == len(uuids) == len(entries)
    assert any(u.get("nsaccountlock") == ["TRUE"] for u in users.values())


@pytest.mark.parametrize("changes", [1, 10])
def test_changes_touch_exactly_n_groups(tiny: Path, tmp_path: Path, changes: int) -> None:
    changed = tmp_path / "changed.ldif"
    summary = run("--changes", str(changes), "--base", tiny, "--out-changed", changed)
    assert f"{changes} of 50 groups changed" in summary
    before, after = parse(tiny), parse(changed)
    old, new = by_uuid(groups_of(before)), by_uuid(groups_of(after))
    assert set(new) <= set(old), "a group appeared"
    differing = {u for u in old if old[u] != new.get(u)}
    assert len(differing) == changes
    assert by_uuid(users_of(before)) == by_uuid(users_of(after))
    assert all(m.lower() in after for g in new.values() for m in g["member"])
    if changes == 10:
        renamed = {u for u in new if old[u]["dn"] != new[u]["dn"]}
        assert len(renamed) == 2, "renames must keep the entryUUID"
        assert set(old) - set(new), "nothing deleted"


def test_rfc2307(tmp_path: Path) -> None:
    out = tmp_path / "posix.ldif"
    run(*TINY, "--schema", "rfc2307", "--out", out)
    entries = parse(out)
    groups, users = groups_of(entries), users_of(entries)
    uids = {u["uid"][0] for u in users.values()}
    assert len(groups) == 50
    assert all("posixAccount" in u["objectclass"] and u["uidnumber"] for u in users.values())
    members = [m for g in groups.values() for m in g["memberuid"]]
    assert abs(len(members) - 1000) <= 10
    assert set(members) <= uids
