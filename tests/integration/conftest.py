"""Integration fixtures: a real OpenLDAP slapd per test (see ``slapd.py``)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slapd import Slapd, slapd_problem

SlapdFactory = Callable[..., Slapd]


def _root_conftest() -> ModuleType:
    """tests/conftest.py under its own name: this file is ``conftest`` too, so modules that
    run ``from conftest import X`` after it loads find X here (re-exported below)."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("syncd_tests_root_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_root = _root_conftest()
REPO_ROOT = _root.REPO_ROOT
Result = _root.Result
in_ci = _root.in_ci
os_user = _root.os_user
require_server = _root.require_server
run_syncd_command = _root.run_syncd_command
syncd_command = _root.syncd_command
write_config_file = _root.write_config_file


@pytest.fixture
def slapd_factory(tmp_path: Path) -> Iterator[SlapdFactory]:
    """``slapd_factory(data=None, start=True)``: a new slapd loaded with ``data`` (LDIF)."""
    problem = slapd_problem()
    if problem is not None:
        require_server("slapd", problem)
    servers: list[Slapd] = []

    def make(data: str | Path | None = None, *, start: bool = True) -> Slapd:
        server = Slapd(tmp_path / f"slapd{len(servers)}")
        servers.append(server)
        server.setup(data)
        if start:
            server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A provisioned Samba AD DC answering LDAPS on 127.0.0.1:636 (one per session)."""
    from samba import SambaDc, samba_problem

    problem = samba_problem()
    if problem is not None:
        require_server("samba", problem)
    dc = SambaDc(tmp_path_factory.mktemp("samba"))
    dc.provision()
    dc.start()
    try:
        yield dc
    finally:
        dc.stop()
