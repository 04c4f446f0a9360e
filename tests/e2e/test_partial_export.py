"""An LDIF export cut short or edited fails ``syncd sync`` and changes nothing: through the
installed command, on a copy of the demo (config/demo.yaml, every entry with its entryUUID)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

pytestmark = pytest.mark.e2e

RunSyncd = Callable[..., Result]
REPO_ROOT = Path(__file__).resolve().parents[2]
ENG = "ou=engineering,ou=groups,dc=example,dc=org"
PLATFORM = f"cn=platform,{ENG}"
PORTAL = "cn=partner-portal,ou=partners,ou=groups,dc=example,dc=org"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A copy of config/demo (config and LDIF) whose store is made in tmp_path."""
    shutil.copy(REPO_ROOT / "config" / "demo.yaml", tmp_path / "demo.yaml")
    (tmp_path / "demo").mkdir()
    shutil.copy(REPO_ROOT / "config" / "demo" / "directory.ldif",
                tmp_path / "demo" / "directory.ldif")
    return tmp_path / "demo.yaml"


def line_of(text: str, dn: str) -> int:
    """The line on which the record of ``dn`` starts."""
    return text.splitlines().index(f"dn: {dn}") + 1


def without_entry_uuid(text: str, dn: str) -> str:
    """The export edited: the entryUUID line of ``dn``'s record taken out."""
    head, start, rest = text.partition(f"dn: {dn}\n")
    record, blank, tail = rest.partition("\n\n")
    kept = [line for line in record.splitlines() if not line.startswith("entryUUID: ")]
    assert len(kept) == len(record.splitlines()) - 1
    return head + start + "\n".join(kept) + blank + tail


def cut_short(text: str, dn: str) -> str:
    """The export cut short in the middle of a member line of ``dn``'s record."""
    record = text.index(f"dn: {dn}\n")
    member = text.index("member: uid=katrin", record)
    return text[:member + len("member: uid=kat")]


def listed(run_syncd: RunSyncd, config: Path) -> list[dict[str, Any]]:
    result = run_syncd("groups", "list", "--format", "json", config=config)
    assert result.code == 0, result
    groups: list[dict[str, Any]] = json.loads(result.stdout)
    return groups


@pytest.mark.parametrize(("damage", "dn"), [
    ("edited", PLATFORM),
    ("cut", PORTAL),
])
def test_partial_export_fails_the_sync_and_changes_nothing(
        demo: Path, run_syncd: RunSyncd, damage: str, dn: str) -> None:
    first = run_syncd("sync", "--format", "json", config=demo)
    assert first.code == 0, first
    assert json.loads(first.stdout)["status"] == "applied"
    before = listed(run_syncd, demo)
    names = {g["name"] for g in before}
    assert {"eng-platform", "partner-portal"} <= names and len(before) == 10

    ldif = demo.parent / "demo" / "directory.ldif"
    text = ldif.read_text(encoding="utf-8")
    ldif.write_text(without_entry_uuid(text, dn) if damage == "edited" else cut_short(text, dn),
                    encoding="utf-8")
    where = f"{ldif}:{line_of(text, dn)}"
    expected = f"ldif connector 'demo': group {dn} ({where}) has no entryUUID while "

    result = run_syncd("sync", config=demo)
    assert result.code == 1, result
    assert "Traceback" not in result.stderr
    # one line on stderr tells what failed, and where
    (line,) = [line for line in result.stderr.splitlines() if "entryUUID" in line]
    assert json.loads(line)["error"].startswith(expected)
    assert f"FAILED: {expected}" in result.stdout

    doc = json.loads(run_syncd("sync", "--format", "json", config=demo).stdout)
    report = doc["connectors"]["demo"]
    assert (doc["status"], report["status"], doc["changes"]) == ("failed", "failed", [])
    assert report["error"].startswith(expected) and "\n" not in report["error"]

    assert listed(run_syncd, demo) == before   # same groups, same ids, same member counts
    audit = run_syncd("audit", "--format", "json", config=demo)
    records = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [r["op"] for r in records[-2:]] == ["run_failed", "run_failed"]
    assert records[-1]["extra"]["error"].startswith(expected)
