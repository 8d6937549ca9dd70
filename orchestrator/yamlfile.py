"""YAML as clicloop reads it: PyYAML's safe loader, except that a key written twice in one
mapping is an error (PyYAML keeps the last one without a word, so a second ``stop:`` section
silently dropped the first one's ``max_cost``). Merge keys (``<<: *anchor``) still let an
explicit key override a merged one."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError

MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice, naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = lines.get(key)
                except TypeError:  # an unhashable key: the safe loader's own error names it
                    continue
                if first is not None:
                    raise ConstructorError("while constructing a mapping", node.start_mark,
                                           f"found the key {key!r} twice (first on line {first + 1}); keep one",
                                           key_node.start_mark)
                lines[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """The document in ``text``, as ``yaml.safe_load`` reads it but refusing duplicate keys."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
