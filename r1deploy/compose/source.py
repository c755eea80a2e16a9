"""Load a YAML document and remember where each value came from.

Compose files are YAML; diagnostics point at JSON pointers, so the loader maps every
pointer of the document to its 1-based line and column, and reports duplicate keys
(YAML loaders silently keep the last one; docker compose refuses the file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from r1deploy.compose.registry import RULES
from r1deploy.diagnostics import json_pointer
from r1deploy.doclimits import MAX_NESTING_DEPTH, MAX_VALUES, too_deep, too_many

YAML_SYNTAX = RULES["yaml-syntax"]
YAML_LIMIT = RULES["yaml-limit"]


@dataclass
class YamlSource:
    document: object
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    duplicate_keys: list[str] = field(default_factory=list)

    def position(self, pointer: str, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column of the value (or key) at ``pointer``, else of its nearest parent."""
        while True:
            table = self.key_positions if key else self.positions
            if pointer in table:
                return table[pointer]
            if not pointer:
                return None, None
            pointer, key = pointer.rsplit("/", 1)[0], False


class YamlSyntaxError(Exception):
    """The text is not a YAML document this validator reads: the rule, where, the fix."""

    def __init__(
        self,
        message: str,
        line: int | None,
        column: int | None,
        rule: str = YAML_SYNTAX.id,
        fix: str = "correct the YAML at this line "
        "(indentation and unquoted colons are the usual causes)",
    ):
        super().__init__(message)
        self.line, self.column, self.rule, self.fix = line, column, rule, fix


def _limit_error(problem: str, fix: str, mark) -> YamlSyntaxError:
    return YamlSyntaxError(problem, mark.line + 1, mark.column + 1, YAML_LIMIT.id, fix)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting, recursive aliases and alias bombs.

    PyYAML shares one node per anchor, so a 400-byte file of aliases of aliases
    ("billion laughs") composes in microseconds; what explodes is everything that
    walks it afterwards (the position map, the schema, the rules). So each node's
    expanded size is counted as it is composed, an alias costs the whole size of its
    anchor, and the document stops at MAX_VALUES (and MAX_NESTING_DEPTH).
    """

    def __init__(self, text: str):
        super().__init__(text)
        self._depth = 0
        self._expanded = 0
        self._anchor_sizes: dict[int, int] = {}

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._anchor_sizes.get(id(node))
            if size is None:
                raise _limit_error(
                    f"alias *{event.anchor} refers to a node that contains it",
                    "remove the alias: a value cannot contain itself",
                    event.start_mark,
                )
            self._count(size, event)
            return node
        self._depth += 1
        if self._depth > MAX_NESTING_DEPTH:
            raise _limit_error(*too_deep(MAX_NESTING_DEPTH), event.start_mark)
        before = self._expanded
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._count(1, event)
        if event.anchor is not None:
            self._anchor_sizes[id(node)] = self._expanded - before
        return node

    def _count(self, nodes: int, event) -> None:
        self._expanded += nodes
        if self._expanded > MAX_VALUES:
            problem, fix = too_many(MAX_VALUES)
            if nodes > 1:
                problem += f": alias *{event.anchor} repeats {nodes} of them"
                fix = "use fewer aliases of large anchors; " + fix
            raise _limit_error(problem, fix, event.start_mark)

    def construct_object(self, node, deep=False):
        # Python refuses some scalars PyYAML resolves (a 5000-digit int, 2001-02-30):
        # report them at their node instead of as a traceback.
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value: {exc}", node.start_mark
            ) from None


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, path: tuple, source: YamlSource) -> None:
    source.positions[json_pointer(path)] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or map as a key: construction refuses it
            key = key_node.value
            child = path + (key,)
            if key in seen:
                source.duplicate_keys.append(json_pointer(child))
            seen.add(key)
            source.key_positions[json_pointer(child)] = _mark(key_node)
            _walk(value_node, child, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), source)


def _compose_and_construct(text: str) -> YamlSource:
    loader = _BoundedLoader(text)
    try:
        source = YamlSource(None)
        root = loader.get_single_node()
        if root is not None:
            # Walk before constructing: construction flattens merge keys (<<) in place.
            _walk(root, (), source)
            source.document = loader.construct_document(root)
        return source
    finally:
        loader.dispose()


def load_yaml(text: str) -> YamlSource:
    """Parse ``text``; raises :class:`YamlSyntaxError` with the line of the problem."""
    try:
        return _compose_and_construct(text)
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (NUL, other control characters).
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        problem = f"character {exc.character:#x} is not allowed in YAML"
        raise YamlSyntaxError(problem, line, column) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise YamlSyntaxError(problem, line, column) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), None, None) from exc
