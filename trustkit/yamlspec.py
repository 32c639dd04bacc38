"""Strict YAML reading: plain data plus the line of every value, so errors can say where.

``load_yaml(text, source)`` returns a :class:`Located` tree: mappings and sequences whose items remember
their 1-based line. Validation code asks ``node.line`` when it rejects something.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from trustkit.errors import InvalidArgumentError


@dataclass
class Located:
    """A YAML value (``value`` holds plain Python for scalars, Located children otherwise) and its line."""

    value: Any
    line: int
    key_lines: dict[str, int] | None = None  # mappings: the line of each key

    def plain(self) -> Any:
        """The value with all location information stripped."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


class SpecError(InvalidArgumentError):
    """A configuration file is malformed; the message names the file, the line and the fix."""


def _convert(node: yaml.Node, source: str) -> Located:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[str, Located] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, source).value
            if not isinstance(key, str):
                raise SpecError(f"{source}, line {key_node.start_mark.line + 1}: keys must be names, got {key!r}")
            if key in mapping:
                raise SpecError(f"{source}, line {key_node.start_mark.line + 1}: key '{key}' appears twice")
            mapping[key] = _convert(value_node, source)
            key_lines[key] = key_node.start_mark.line + 1
        return Located(mapping, line, key_lines)
    if isinstance(node, yaml.SequenceNode):
        return Located([_convert(item, source) for item in node.value], line)
    return Located(yaml.safe_load(yaml.serialize(node)), line)  # scalars: let safe_load type them


def refuse_anchors(text: str, source: str) -> None:
    """Anchors (``&a``) and aliases (``*a``) are refused with their line, before anything is expanded.

    An alias repeats a whole subtree, so a few lines of nested aliases expand to millions of values
    ("billion laughs"); a recursive one (``models: &a [*a]``) never ends. Suites are short: write values out.
    """
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            kind = "alias" if isinstance(event, yaml.AliasEvent) else "anchor"
            raise SpecError(f"{source}, line {event.start_mark.line + 1}: YAML {kind} "
                            f"'{'*' if kind == 'alias' else '&'}{event.anchor}' is not allowed in trustkit files "
                            "(aliases can expand without bound); write the values out")


def load_yaml(text: str, source: str) -> Located:
    """Parse ``text`` (from ``source``, named in errors) safely; malformed YAML is a one-line SpecError."""
    try:
        refuse_anchors(text, source)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}{where}: malformed YAML ({problem}); fix the syntax") from None
    if node is None:
        raise SpecError(f"{source} is empty; see configs/suites/ for examples")
    return _convert(node, source)


def check_keys(node: Located, allowed: dict[str, bool], source: str, what: str) -> None:
    """``node`` must be a mapping whose keys are among ``allowed`` (name -> required)."""
    if not isinstance(node.value, dict):
        raise SpecError(f"{source}, line {node.line}: {what} must be a mapping of keys, got {type(node.plain()).__name__}")
    for key, child in node.value.items():
        if key not in allowed:
            import difflib

            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            line = (node.key_lines or {}).get(key, child.line)
            raise SpecError(f"{source}, line {line}: unknown key '{key}' in {what}{hint}; allowed: "
                            f"{', '.join(allowed)}")
    for key, required in allowed.items():
        if required and key not in node.value:
            raise SpecError(f"{source}, line {node.line}: {what} needs the key '{key}'")
