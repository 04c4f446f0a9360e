"""A YAML loader that keeps the line and column of every key and value.

It reads hostile input safely: text that is not UTF-8, alias "bombs" (a few hundred bytes
that expand to billions of values), self-referencing aliases and very deep nesting are each
refused with a ``YamlError`` at a position, before any of it is expanded.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]

# Bounds on a document after alias expansion. A large config (thousands of rules) stays far
# below them; a document beyond them is refused while it is being read, long before it
# could take much memory or time.
MAX_NODES = 100_000
MAX_DEPTH = 100

_MERGE_TAG = "tag:yaml.org,2002:merge"


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
    """A file that cannot be read as a YAML document, with the position of the problem."""

    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.mark = mark


def decode(data: bytes) -> str:
    """The text of a UTF-8 file, without a leading byte order mark; YamlError at the first
    byte that is not UTF-8."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise YamlError("not UTF-8 text: the file starts with a UTF-16 byte order mark "
                        "(save it as UTF-8)", Mark(1, 1))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        # The bytes before the bad one on its line are valid: count them as characters.
        col = len(data[start:exc.start].decode("utf-8")) + 1
        mark = Mark(data.count(b"\n", 0, exc.start) + 1, col)
        raise YamlError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {mark.line}, "
                        f"column {mark.col} (save the file as UTF-8)", mark) from None


def _text_mark(text: str, index: int) -> Mark:
    start = text.rfind("\n", 0, index) + 1
    return Mark(text.count("\n", 0, index) + 1, index - start + 1)


def _mark(node: yaml.Node | yaml.Event) -> Mark:
    start = node.start_mark
    return Mark(start.line + 1, start.column + 1) if start is not None else Mark(1, 1)


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing documents that are too large or too deep once their aliases
    are expanded, and aliases that refer to a node containing them.

    The bounds are checked as the document is composed: an alias counts as the whole node
    it stands for, so an alias bomb is refused after a few hundred events.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0  # nodes so far, each alias counted as the nodes it expands to
        self._depth = 0  # depth of the node being composed (the root is 1)
        self._reach = 0  # deepest expanded depth within the node being composed
        self._open: set[str] = set()  # anchors of the nodes being composed
        self._extent: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, height)

    def _grow(self, nodes: int, deepest: int, event: yaml.Event) -> None:
        self._nodes += nodes
        self._reach = max(self._reach, deepest)
        if self._nodes > MAX_NODES:
            raise YamlError(f"the document is too large: more than {MAX_NODES} values once "
                            "its aliases are expanded", _mark(event))
        if deepest > MAX_DEPTH:
            raise YamlError(f"the document is nested too deeply: more than {MAX_DEPTH} "
                            "levels once its aliases are expanded", _mark(event))

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Compose one node (the base class's work), keeping count of size and depth."""
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) and event.anchor is not None:
            if event.anchor in self._open:
                raise YamlError(f"the alias *{event.anchor} refers to a node that contains "
                                "it", _mark(event))
            node = super().compose_node(parent, index)  # reports an undefined alias
            nodes, height = self._extent[event.anchor]
            self._grow(nodes, self._depth + height, event)
            return node
        anchor = getattr(event, "anchor", None)
        outer_reach, before = self._reach, self._nodes
        self._depth += 1
        self._reach = self._depth
        self._grow(1, self._depth, event)
        if anchor is not None:
            self._open.add(anchor)
        node = super().compose_node(parent, index)
        if anchor is not None:
            self._open.discard(anchor)
            self._extent[anchor] = (self._nodes - before, self._reach - self._depth + 1)
        self._depth -= 1
        self._reach = max(outer_reach, self._reach)
        return node


def _merged_pairs(node: yaml.MappingNode, problems: list[tuple[Mark, str]],
                  ) -> list[tuple[yaml.Node, yaml.Node]]:
    """The pairs a mapping gets from its merge keys (``<<: *defaults``), in YAML's order:
    later pairs win, an earlier mapping of a merged list wins over a later one."""
    out: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [
            value_node]
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                problems.append((_mark(source), "'<<' merges a mapping or a list of mappings"))
                continue
            out += _merged_pairs(source, problems)
            out += [(k, v) for k, v in source.value if k.tag != _MERGE_TAG]
    return out


def _scalar(node: yaml.Node, problems: list[tuple[Mark, str]]) -> Any:
    # The composer resolved the tag; the safe constructor makes the value.
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        problems.append((_mark(node), f"unsupported YAML value: {exc.problem}"))
    except (ValueError, OverflowError):  # an out-of-range date, a 5000-digit number
        kind = str(node.tag).rsplit(":", 1)[-1]
        problems.append((_mark(node), f"cannot read this value as a YAML {kind}"))
    return None


def _build(node: yaml.Node, path: Path, pos: Positions, problems: list[tuple[Mark, str]]) -> Any:
    pos.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        own: set[Any] = set()
        merged = _merged_pairs(node, problems)
        pairs = [*merged, *((k, v) for k, v in node.value if k.tag != _MERGE_TAG)]
        for n, (key_node, value_node) in enumerate(pairs):
            key = _build(key_node, (*path, "<key>"), pos, problems)
            pos.values.pop((*path, "<key>"), None)
            if not isinstance(key, str | int):
                problems.append((_mark(key_node), "mapping keys must be strings"))
                continue
            if n >= len(merged):  # a key written here: a repeat is a mistake
                if key in own:
                    problems.append((_mark(key_node), f"duplicate key {key!r}"))
                own.add(key)
            child = (*path, key)
            pos.keys[child] = _mark(key_node)
            out[key] = _build(value_node, child, pos, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), pos, problems) for i, item in enumerate(node.value)]
    return _scalar(node, problems)


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_BoundedLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        raise YamlError(f"YAML syntax error: {exc.problem or exc}", where) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        where = _text_mark(text, exc.position)
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        if code == 0:
            raise YamlError("not UTF-8 text: a NUL character (is the file UTF-16? save it "
                            "as UTF-8)", where) from None
        raise YamlError(f"the character U+{code:04X} is not allowed in YAML", where) from None


def load(text: str) -> tuple[Any, Positions, list[tuple[Mark, str]]]:
    """Parse ``text``; return the plain data, its positions, and structural problems."""
    node = _compose(text.removeprefix("\ufeff"))
    pos = Positions()
    problems: list[tuple[Mark, str]] = []
    if node is None:
        return None, pos, problems
    return _build(node, (), pos, problems), pos, problems
