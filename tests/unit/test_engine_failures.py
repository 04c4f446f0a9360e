"""A connector that fails, however it fails, fails its run and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from sqlalchemy import Engine, select

import syncd.engine
from syncd.audit import AuditWriter, records
from syncd.config.model import BaseConfig
from syncd.connector import Connector, ConnectorConfig
from syncd.engine import RunOptions, SyncEngine
from syncd.errors import SourceError
from syncd.source import Snapshot, SourceGroup, SourceUser
from syncd.store.db import open_engine, upgrade
from syncd.store.schema import tables


class FlakyConfig(ConnectorConfig):
    """A connector whose snapshot fails partway through the groups."""

    type: Literal["flaky"]


class FlakyConnector(Connector):
    """Yields one group, then fails with ``error``."""

    type_name = "flaky"
    config_model: ClassVar[type[ConnectorConfig]] = FlakyConfig
    error: ClassVar[Exception] = RuntimeError("boom")

    def snapshot(self) -> Snapshot:
        def groups() -> Iterator[SourceGroup]:
            yield SourceGroup("g1", "g1", "cn=g1", "g1", members=["u1"])
            raise type(self).error

        return Snapshot([SourceUser("u1", "u1", "alice")], groups())


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setattr(syncd.engine, "available", lambda: {"flaky": FlakyConnector})
    eng = open_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.mark.parametrize("error", [SourceError("page 3 was lost"), KeyError("objectGUID"),
                                   RuntimeError("boom")])
def test_a_failing_snapshot_fails_the_run_and_changes_nothing(engine: Engine,
                                                              error: Exception) -> None:
    FlakyConnector.error = error
    cfg = BaseConfig(version=1, connectors=[FlakyConfig(name="flaky", type="flaky")],
                     rules=[])
    result = SyncEngine(cfg, engine, AuditWriter(None)).run([], RunOptions())
    assert result.status == "failed"
    report = result.plan.connectors["flaky"]
    assert report.error is not None
    assert str(error).strip("'") in report.error
    with engine.connect() as conn:
        for name in ("groups", "users", "memberships", "mirror_groups", "cursors"):
            assert conn.execute(select(tables[name])).all() == [], name
        (record,) = conn.execute(records()).all()
        (run,) = conn.execute(select(tables["runs"])).all()
    assert record.op == "run_failed"
    assert (run.status, run.connector) == ("failed", "flaky")
