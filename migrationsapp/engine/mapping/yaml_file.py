"""Reading a mapping file's YAML text: a safe load that also refuses duplicate keys, aliases
and deep nesting, and a syntax error that names its line; ``parse.py`` reads what it gives."""

from __future__ import annotations

from typing import Any

import yaml

from migrationsapp.engine.errors import MappingError

from .parse import parse_mapping
from .spec import MappingFile

# A mapping file nests a handful of levels; PyYAML composes nodes recursively, so thousands
# of nested brackets would end in a RecursionError instead of a refusal.
MAX_YAML_DEPTH = 64


class _SafeLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that also refuses duplicate keys, aliases and deep nesting.

    PyYAML silently keeps the last of two equal keys (a typo would then drop a setting
    without a word), and aliases let a small file expand into a huge one.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not supported in a mapping file", event.start_mark
            )
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nested deeper than {MAX_YAML_DEPTH} levels",
                self.peek_event().start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def load_mapping_yaml(text: str) -> MappingFile:
    """Parse and check a mapping file's YAML text; a syntax error names its line."""
    try:
        # _SafeLoader is a SafeLoader subclass (safe_load's constructors): not an unsafe load.
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506  # nosec B506
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise MappingError(f"YAML syntax error{where}: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"YAML syntax error: {exc}") from exc
    if data is None:
        raise MappingError("the mapping file is empty")
    return parse_mapping(data)
