"""A YAML loader that keeps the line and column of every key and value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column in a file."""

    line: int
    col: int


@dataclass
class Positions:
    """Where each value (and each mapping key) of a loaded document stands."""

    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)

    def of_value(self, path: Path) -> Mark:
        """The position of the value at ``path``, or of its nearest existing ancestor."""
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, Mark(1, 1))

    def of_key(self, path: Path) -> Mark:
        """The position of the key naming ``path``; falls back to the value's position."""
        return self.keys.get(path) or self.of_value(path)


class YamlError(Exception):
    """A syntax error, with its position."""

    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.mark = mark


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _build(node: yaml.Node, path: Path, pos: Positions, problems: list[tuple[Mark, str]]) -> Any:
    pos.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, (*path, "<key>"), pos, problems)
            pos.values.pop((*path, "<key>"), None)
            if not isinstance(key, str | int):
                problems.append((_mark(key_node), "mapping keys must be strings"))
                continue
            if key in out:
                problems.append((_mark(key_node), f"duplicate key {key!r}"))
            child = (*path, key)
            pos.keys[child] = _mark(key_node)
            out[key] = _build(value_node, child, pos, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), pos, problems) for i, item in enumerate(node.value)]
    # Scalars: the composer resolved their tags; the safe constructor makes the values.
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def load(text: str) -> tuple[Any, Positions, list[tuple[Mark, str]]]:
    """Parse ``text``; return the plain data, its positions, and structural problems."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        raise YamlError(f"YAML syntax error: {exc.problem or exc}", where) from None
    pos = Positions()
    problems: list[tuple[Mark, str]] = []
    if node is None:
        return None, pos, problems
    return _build(node, (), pos, problems), pos, problems
