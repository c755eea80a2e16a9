"""Load a YAML document and remember where each value came from.

Compose files are YAML; diagnostics point at JSON pointers, so the loader maps every
pointer of the document to its 1-based line and column, and reports duplicate keys
(YAML loaders silently keep the last one; docker compose refuses the file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from r1deploy.diagnostics import json_pointer


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
    def __init__(self, message: str, line: int | None, column: int | None):
        super().__init__(message)
        self.line, self.column = line, column


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, path: tuple, source: YamlSource) -> None:
    source.positions[json_pointer(path)] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
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


def load_yaml(text: str) -> YamlSource:
    """Parse ``text``; raises :class:`YamlSyntaxError` with the line of the problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise YamlSyntaxError(problem, line, column) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), None, None) from exc
    source = YamlSource(document)
    if root is not None:
        _walk(root, (), source)
    return source
