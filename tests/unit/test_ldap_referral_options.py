"""The ldap connector's ``referrals`` and ``aliases`` keys: defaults, values, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.ldap import LdapConfig, LdapConnector
from syncd.config.loader import parse_config
from syncd.errors import ConfigError

FILE = Path("/etc/syncd/syncd.yaml")


def config(extra: str = "") -> str:
    return f"""\
version: 1
connectors:
  - name: corp
    type: ldap
    url: ldap://127.0.0.1:3389
    groups: {{base: "ou=groups,dc=example,dc=org"}}
    users: {{base: "ou=people,dc=example,dc=org"}}
{extra}"""


def connector(extra: str = "") -> LdapConnector:
    (cfg,) = parse_config(config(extra), FILE).connectors
    assert isinstance(cfg, LdapConfig)
    return LdapConnector(cfg, base_dir=FILE.parent)


def test_defaults_ignore_references_and_never_dereference() -> None:
    endpoint = connector().endpoint()
    assert (endpoint.referrals, endpoint.aliases) == ("ignore", "never")


def test_values_reach_the_endpoint_and_aliases_the_cursor() -> None:
    strict = connector("    referrals: fail\n    aliases: search\n")
    assert (strict.endpoint().referrals, strict.endpoint().aliases) == ("fail", "search")
    # what aliases bring into scope changes what a cursor holds; refusing references not
    fingerprints = {connector(f"    aliases: {a}\n").fingerprint()
                    for a in ("never", "search", "always")}
    assert len(fingerprints) == 3
    assert connector("    referrals: fail\n").fingerprint() == connector().fingerprint()


def test_bad_values_name_the_line() -> None:
    text = config("    referrals: follow\n    aliases: sometimes\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, FILE)
    assert info.value.problems == [
        f"{FILE}:8:16: connectors.0.referrals: Input should be 'ignore' or 'fail'",
        f"{FILE}:9:14: connectors.0.aliases: Input should be 'never', 'search' or 'always'"]
