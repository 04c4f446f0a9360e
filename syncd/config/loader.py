"""Load a config file: parse with positions, interpolate, validate, report every problem."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, get_args

import structlog
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd import secrets
from syncd.config.model import Config, config_model
from syncd.config.rules import Rule
from syncd.config.yamlpos import Mark, Positions, YamlError, decode, load
from syncd.config.yamlpos import Path as DataPath
from syncd.errors import ConfigError
from syncd.store.schema import ROLES

DEFAULT_PATH = "/etc/syncd/syncd.yaml"
_REF = re.compile(r"\$\{(env|file):([^}]*)\}")

# Files are read whole, but never more than this: a config or a secret that points at an
# endless file (/dev/zero, an endless pipe) fails instead of filling the memory. A config
# as large as yamlpos.MAX_NODES allows takes a few MiB; parsing 4 MiB takes seconds.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_SECRET_BYTES = 1024 * 1024

# Where values were read from ``${env:...}``/``${file:...}``, or typed into a secret field:
# data path -> the strings that messages must not echo.
Hidden = dict[DataPath, list[str]]

log = structlog.get_logger("syncd.config")


def find_config(option: str | None) -> Path:
    """``-c`` if given, else ``$SYNCD_CONFIG``, else the system default."""
    return Path(option or os.environ.get("SYNCD_CONFIG") or DEFAULT_PATH)


def _read_bytes(path: Path, limit: int) -> bytes | None:
    """The content of ``path``, or None when it holds more than ``limit`` bytes."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    return data if len(data) <= limit else None


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB"


def _read_ref(kind: str, name: str, base_dir: Path) -> str:
    if kind == "env":
        if name not in os.environ:
            raise LookupError(f"environment variable {name!r} is not set")
        value = os.environ[name]
        try:  # bytes that are not UTF-8 arrive as lone surrogates
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise LookupError(f"environment variable {name!r} is not UTF-8 text") from None
        return value
    path = Path(name).expanduser()
    if not path.is_absolute():
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        in_creds = Path(creds) / path if creds else None
        path = in_creds if in_creds is not None and in_creds.exists() else base_dir / path
    try:
        data = _read_bytes(path, MAX_SECRET_BYTES)
    except OSError as exc:
        raise LookupError(f"cannot read {path}: {exc.strerror}") from None
    if data is None:
        raise LookupError(f"{path} is larger than {_size(MAX_SECRET_BYTES)}")
    try:
        # Nothing of the content is shown: it is most likely a secret.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LookupError(f"{path} is not UTF-8 text") from None
    return text[:-1] if text.endswith("\n") else text


def _interpolate(
    data: Any, path: DataPath, base_dir: Path, errors: list[tuple[DataPath, str]],
    interpolated: Hidden,
) -> Any:
    if isinstance(data, dict):
        return {k: _interpolate(v, (*path, k), base_dir, errors, interpolated)
                for k, v in data.items()}
    if isinstance(data, list):
        return [_interpolate(v, (*path, i), base_dir, errors, interpolated)
                for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    pieces: list[str] = []

    def sub(m: re.Match[str]) -> str:
        try:
            value = _read_ref(m.group(1), m.group(2), base_dir)
        except LookupError as exc:
            key = ".".join(str(p) for p in path)
            errors.append((path, f"{key}: {exc}"))
            return ""
        pieces.append(value)
        return value

    result = _REF.sub(sub, data)
    interpolated[path] = [result, *pieces]
    return result


@cache
def _secret_keys() -> frozenset[str]:
    """The names of the config's secret fields (typed SecretStr), in every model."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def leaves(tp: Any) -> Iterator[Any]:
        args = get_args(tp)
        if not args:
            yield tp
        for arg in args:
            yield from leaves(arg)

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            for tp in leaves(info.annotation):
                if tp is SecretStr:
                    names.add(info.alias or name)
                elif isinstance(tp, type) and issubclass(tp, BaseModel):
                    walk(tp)

    walk(config_model())
    return frozenset(names)


def _hidden(data: Any, interpolated: Hidden) -> Hidden:
    """Every value messages must not echo: interpolated ones and literal secrets."""
    hidden = dict(interpolated)
    secret_keys = _secret_keys()

    def walk(value: Any, path: DataPath) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k in secret_keys and isinstance(v, str):
                    hidden.setdefault((*path, k), [v])
                walk(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, (*path, i))

    walk(data, ())
    return hidden


def _hide(msg: str, values: list[str]) -> str:
    """``msg`` without the values: their quoted form always, their bare form when long
    enough not to be mistaken for a word of the message (as secrets.register decides)."""
    for value in sorted(values, key=len, reverse=True):
        if value:
            msg = msg.replace(repr(value), repr(secrets.MASK))
    return secrets.mask(msg, [v for v in values if len(v) >= 4])


def _identifiers(data: dict[str, Any], file: Path, interpolated: Hidden) -> set[str]:
    """syncd's own words in this config: its path, keys, names and file paths."""
    out = {str(file), str(file.resolve())}

    def walk(value: Any, path: DataPath) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                out.add(str(k))
                if isinstance(v, str) and (*path, k) not in interpolated and (
                        k in ("path", "file") or str(k).endswith(("_file", "_dir"))):
                    out.update((v, str(file.parent / Path(v).expanduser())))
                walk(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, (*path, i))

    walk(data, ())
    for section in ("connectors", "rules"):
        items = data.get(section)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                out.add(item["name"])
    roles = data.get("custom_roles")
    if isinstance(roles, list):
        out.update(r for r in roles if isinstance(r, str))
    return out


def _data_path(loc: tuple[int | str, ...], data: Any) -> DataPath:
    """Map a pydantic error location onto the data, dropping union tags and the like."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
            out.append(part)
        elif isinstance(cur, dict) and isinstance(part, str) and part.rstrip("_") in cur:
            # fields named schema_/in_/not_ are written schema/in/not in the file
            cur = cur[part.rstrip("_")]
            out.append(part.rstrip("_"))
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
            out.append(part)
    return tuple(out)


def _message(err: Any, path: DataPath, hidden: Hidden) -> str:
    kind = err["type"]
    field = ".".join(str(p) for p in path) or "(top level)"
    if kind == "extra_forbidden":
        parent = ".".join(str(p) for p in path[:-1]) or "the top level"
        return f"unknown key {str(err['loc'][-1])!r} in {parent}"
    if kind == "union_tag_not_found":  # a connector without ``type``
        return f"missing required key 'type' in {field}"
    if kind == "missing":
        missing = str(err["loc"][-1]).rstrip("_")
        where = field if path else "the top level"
        return f"missing required key {missing!r} in {where}"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind == "union_tag_invalid":
        msg = f"unknown connector type {err.get('input', {}).get('type')!r}" if isinstance(
            err.get("input"), dict) else msg
    elif kind == "literal_error" and path and path[-1] == "version":
        msg = f"unsupported config version {err.get('input')!r}: this syncd reads version 1"
    # The message may echo the value, or one inside it: never a secret's or an env's.
    echoed = [v for p, values in hidden.items() if p[:len(path)] == path for v in values]
    return f"{field}: {_hide(msg, echoed) if echoed else msg}"


def _position(err: Any, path: DataPath, pos: Positions) -> Mark:
    if err["type"] == "extra_forbidden":
        return pos.of_key(path)
    return pos.of_value(path)


def _secret_warnings(cfg: Config, file: Path, pos: Positions, interpolated: Hidden,
                     raw: Any) -> None:
    try:
        mode = file.stat().st_mode
    except OSError:
        return
    if not mode & stat.S_IROTH:
        return
    for i, conn in enumerate(cfg.connectors):
        for key in type(conn).model_fields:
            if isinstance(getattr(conn, key), SecretStr):
                path: DataPath = ("connectors", i, key)
                if path not in interpolated:
                    mark = pos.of_value(path)
                    log.warning(
                        "config.literal_secret_readable",
                        location=f"{file}:{mark.line}:{mark.col}",
                        hint="use ${env:NAME} or ${file:PATH}, or chmod o-r the file",
                    )


def _cross_checks(data: dict[str, Any], pos: Positions, hidden: Hidden | None = None,
                  ) -> list[tuple[Mark, str]]:
    """Checks across sections, done on the raw data so they are reported with the rest."""
    found: list[tuple[Mark, str, DataPath]] = []

    def named(section: str) -> list[tuple[int, str]]:
        items = data.get(section)
        if not isinstance(items, list):
            return []
        return [(i, it["name"]) for i, it in enumerate(items)
                if isinstance(it, dict) and isinstance(it.get("name"), str)]

    connector_names = set()
    for section, what in (("connectors", "connector"), ("rules", "rule")):
        seen: set[str] = set()
        for i, name in named(section):
            if name in seen:
                found.append((pos.of_value((section, i, "name")),
                              f"{section}.{i}.name: duplicate {what} name {name!r}",
                              (section, i, "name")))
            seen.add(name)
        if section == "connectors":
            connector_names = seen
    custom = data.get("custom_roles")
    roles = {*ROLES, *(r for r in custom if isinstance(r, str))} if isinstance(
        custom, list) else set(ROLES)
    rules = data.get("rules")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        source = rule.get("source", "*")
        if isinstance(source, str) and source != "*" and source not in connector_names:
            found.append((pos.of_value(("rules", i, "source")),
                          f"rules.{i}.source: {source!r} is not a connector name",
                          ("rules", i, "source")))
        rule_roles = rule.get("roles")
        for role in rule_roles if isinstance(rule_roles, dict) else {}:
            if role not in roles:
                found.append((pos.of_key(("rules", i, "roles", role)),
                              f"rules.{i}.roles: unknown role {role!r} (declare custom roles "
                              "under custom_roles)", ()))
    hide = hidden or {}
    return [(mark, _hide(msg, hide[path]) if path in hide else msg)
            for mark, msg, path in found]


def _validate(model: Any, data: Any, pos: Positions, problems: list[tuple[Mark, str]],
              prefix: DataPath = (), hidden: Hidden | None = None) -> Any:
    """Validate ``data`` with a model or TypeAdapter; add each error with its position."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(data)
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path = _data_path(tuple(err["loc"]), data)
            if err["type"] == "union_tag_invalid":
                path = _data_path((*path, "type"), data)
            full = (*prefix, *path)
            problems.append((_position(err, full, pos), _message(err, full, hidden or {})))
    return None


def _raise_problems(file: Path, problems: list[tuple[Mark, str]]) -> None:
    if not problems:
        return
    seen: set[str] = set()
    lines = []
    for mark, msg in sorted(problems, key=lambda p: (p[0].line, p[0].col)):
        # A safety net for secrets registered before (a reload); the config's own names,
        # keys and paths stay readable (see syncd.secrets).
        line = secrets.redact_own(f"{file}:{mark.line}:{mark.col}: {msg}")
        if line not in seen:
            seen.add(line)
            lines.append(line)
    raise ConfigError(lines)


def load_rules_file(path: Path, cfg: Config) -> list[Rule]:
    """Rules from a separate file (a list, or a mapping with ``rules:``), checked against
    the config's connectors and roles as the config's own rules are."""
    text = _read_text(path, "rules file")
    try:
        raw, pos, structural = load(text)
    except YamlError as exc:
        raise ConfigError([f"{path}:{exc.mark.line}:{exc.mark.col}: {exc}"]) from None
    problems = list(structural)
    prefix: DataPath = ()
    if isinstance(raw, dict) and "rules" in raw:
        raw, prefix = raw["rules"], ("rules",)
    if not isinstance(raw, list):
        raise ConfigError([f"{path}:1:1: expected a list of rules, or a mapping with 'rules'"])
    rules = _validate(TypeAdapter(list[Rule]), raw, pos, problems, prefix)
    shaped = {"connectors": [{"name": c.name} for c in cfg.connectors],
              "custom_roles": list(cfg.custom_roles), "rules": raw}
    problems += [(m, msg) for m, msg in _cross_checks(shaped, _Shifted(pos, prefix))]
    _raise_problems(path, problems)
    assert rules is not None
    return list(rules)


class _Shifted(Positions):
    """Positions of a rules list found under ``prefix`` in its own file."""

    def __init__(self, inner: Positions, prefix: DataPath) -> None:
        super().__init__(inner.values, inner.keys)
        self.prefix = prefix

    def _shift(self, path: DataPath) -> DataPath:
        if path[:1] == ("rules",):
            return (*self.prefix, *path[1:])
        return path

    def of_value(self, path: DataPath) -> Mark:
        return super().of_value(self._shift(path))

    def of_key(self, path: DataPath) -> Mark:
        return super().of_key(self._shift(path))


def parse_config(text: str, file: Path) -> Config:
    """Validate config text; raise ConfigError with every problem as FILE:LINE:COL: message."""
    try:
        raw, pos, structural = load(text)
    except YamlError as exc:
        raise ConfigError([f"{file}:{exc.mark.line}:{exc.mark.col}: {exc}"]) from None
    problems = [(m, msg) for m, msg in structural]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{file}:1:1: the config must be a mapping"])
    errors: list[tuple[DataPath, str]] = []
    interpolated: Hidden = {}
    data = _interpolate(raw, (), file.parent, errors, interpolated)
    secrets.register_identifiers(_identifiers(data, file, interpolated))
    hidden = _hidden(raw, interpolated)
    problems += [(pos.of_value(p), msg) for p, msg in errors]
    problems += _cross_checks(data, pos, hidden)
    cfg: Config | None = _validate(config_model(), data, pos, problems, hidden=hidden)
    _raise_problems(file, problems)
    assert cfg is not None
    cfg._path = file.resolve()
    secrets.register_all(cfg)
    _register_store_password(cfg.store.url)
    _secret_warnings(cfg, file, pos, interpolated, raw)
    return cfg


def _register_store_password(url: str) -> None:
    """A password in the store URL is a secret too."""
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):  # refused by validation already
        return
    if password:
        secrets.register(str(password))


def _read_text(path: Path, what: str) -> str:
    """The UTF-8 text of a config or rules file; ConfigError with the position otherwise."""
    try:
        data = _read_bytes(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise ConfigError([f"{path}:1:1: cannot read the {what}: {exc.strerror}"]) from None
    if data is None:
        raise ConfigError([f"{path}:1:1: the {what} is larger than "
                           f"{_size(MAX_CONFIG_BYTES)}"])
    try:
        return decode(data)
    except YamlError as exc:
        raise ConfigError([f"{path}:{exc.mark.line}:{exc.mark.col}: {exc}"]) from None


def load_config(path: Path) -> Config:
    """Read and validate the config file at ``path``."""
    return parse_config(_read_text(path, "config file"), path)
