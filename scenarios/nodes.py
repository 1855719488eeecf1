"""YAML text to located nodes: every value with the line that names it, so that each later check can
say `file:line: key`. Aliases are counted before anything expands them, tags and non-text keys refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scenarios.errors import ScenarioError, scenario_error
from scenarios.limits import MAX_YAML_NODES


@dataclass(frozen=True)
class Node:
    """A YAML value with the line that names it: dict[str, Node] | list[Node] | a scalar."""

    value: Any
    line: int


@dataclass
class Context:
    """Where a scenario comes from (`source`, `base` for relative paths) and the line of each dotted key
    seen so far, for errors."""

    source: str
    base: Path
    lines: dict[str, int]

    def error(self, key: str, problem: str, line: int | None = None, near: str = "") -> ScenarioError:
        """An error about `key` at `line`, else at the line of `key`, of its block, of `near`, or line 1."""
        line = line or self.line(key) or self.line(near) or 1
        return scenario_error(self.source, line, key, problem)

    def line(self, key: str) -> int | None:
        while key and key not in self.lines:
            key = key.rpartition(".")[0]
        return self.lines.get(key)


def parse(text: str, context: Context) -> Node:
    """The YAML document `text` as located nodes; invalid YAML, tags, non-text keys, repeated keys and
    alias bombs are `ScenarioError`s at their line."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:  # a character YAML does not allow
        line = text.count("\n", 0, error.position) + 1
        problem = f"invalid YAML: character {error.character:#x} is not allowed"
        raise context.error("", problem, line) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise context.error("", "expected a mapping of scenario keys, found an empty document", 1)
        _require_bounded_expansion(node, context)
        return _locate(node, loader, context, node.start_mark.line + 1, frozenset())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        raise context.error("", f"invalid YAML: {error.problem or error.context}", line) from None
    except yaml.YAMLError as error:
        raise context.error("", f"invalid YAML: {error}", None) from None
    except RecursionError:
        raise context.error("", "expected plain data, found nesting too deep to read", None) from None
    finally:
        loader.dispose()


def _require_bounded_expansion(root: yaml.Node, context: Context) -> None:
    """Refuse YAML whose aliases expand to more than MAX_YAML_NODES values ("billion laughs"), counted over
    the composed graph in time linear in its distinct nodes, before anything expands it."""
    sizes: dict[int, int] = {}
    pending: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in pending:
            raise context.error("", "expected plain data, found a recursive alias", node.start_mark.line + 1)
        pending.add(id(node))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_NODES:
                raise context.error(
                    "",
                    f"expected at most {MAX_YAML_NODES} values, found more once YAML aliases are expanded",
                    node.start_mark.line + 1,
                )
        pending.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root)


_PLAIN_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _locate(node: yaml.Node, loader: yaml.SafeLoader, context: Context, line: int, path: frozenset) -> Node:
    if id(node) in path:
        raise context.error("", "expected plain data, found a recursive alias", line)
    path = path | {id(node)}
    plain_tag = _PLAIN_TAGS.get(type(node))
    if plain_tag is not None and node.tag != plain_tag:
        kind = "mapping" if isinstance(node, yaml.MappingNode) else "list"
        raise context.error("", f"expected plain data, found the YAML tag {node.tag!r} on a {kind}", line)
    if isinstance(node, yaml.MappingNode):
        children: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                raise context.error(
                    "", "expected text keys, found a key of another kind (or a merge key)", key_line
                )
            if key_node.value in children:
                raise context.error("", f"expected each key once, found '{key_node.value}' twice", key_line)
            children[key_node.value] = _locate(value_node, loader, context, key_line, path)
        return Node(children, line)
    if isinstance(node, yaml.SequenceNode):
        return Node(
            [_locate(item, loader, context, item.start_mark.line + 1, path) for item in node.value], line
        )
    return Node(loader.construct_object(node), line)


def plain(node: Node) -> Any:
    """The plain YAML value (dicts, lists, scalars) a node holds."""
    if isinstance(node.value, dict):
        return {key: plain(child) for key, child in node.value.items()}
    if isinstance(node.value, list):
        return [plain(child) for child in node.value]
    return node.value


# ---- located nodes -> schema values --------------------------------------------------------------------
