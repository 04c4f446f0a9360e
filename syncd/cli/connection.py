"""``syncd test-connection CONNECTOR``: connect, count what is in scope, print timings."""

from __future__ import annotations

from typing import Any

import click

from syncd.cli.app import format_option, get_app, print_json, print_table
from syncd.connector import available
from syncd.errors import UsageError
from syncd.rules import needed_attributes, rules_for


@click.command("test-connection")
@click.argument("connector")
@format_option
def test_connection(connector: str, fmt: str) -> None:
    """Connect to a connector's source, count groups and users in scope, print timings."""
    app = get_app()
    config = app.config
    try:
        cfg = config.connector(connector)
    except KeyError:
        known = ", ".join(c.name for c in config.connectors) or "none"
        raise UsageError(f"no connector named {connector!r} (configured: {known})") from None
    cls = available()[cfg.type]
    instance = cls(cfg, base_dir=config.base_dir,
                   needed_attributes=needed_attributes(rules_for(config.rules, connector)))
    try:
        report: dict[str, Any] = {"connector": connector, "type": cfg.type,
                                  **instance.test_connection(), "ok": True}
    finally:
        instance.close()
    if fmt == "json":
        print_json(report)
        return
    timings = report.pop("timings", {}) or {}
    references = report.pop("references", None)
    rows = [[key, value] for key, value in report.items()]
    if references is not None:  # search continuation references met (not followed)
        rows.append(["continuation references", references["count"]])
        rows += [["  not followed", uri] for uri in references["uris"]]
    rows += [[f"time: {key.removesuffix('_s')}", f"{value:.3f} s"]
             for key, value in timings.items()]
    print_table(None, ["", "value"], rows)
