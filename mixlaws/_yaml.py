"""YAML and JSON reading that rejects duplicated keys (private; used by every config reader).

PyYAML's ``safe_load`` and :func:`json.loads` keep the last of two equal keys and drop the
first silently; a constraint or paths file with a key written twice is a mistake the user
must see.  :func:`safe_load` raises :class:`yaml.constructor.ConstructorError` (a
:class:`yaml.YAMLError`, with the line) and :func:`json_loads` a :class:`json.JSONDecodeError`
subclass of :class:`ValueError`, so the callers' existing handlers turn them into
one-line :class:`~mixlaws.errors.MixlawsError` messages.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from yaml.constructor import ConstructorError

__all__ = ["safe_load", "json_loads"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse a key given twice."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            dup = key in seen
        except TypeError:  # unhashable keys are refused by construct_mapping itself
            dup = False
        if dup:
            raise ConstructorError("while constructing a mapping", node.start_mark,
                                   f"found duplicate key {key!r} (the first would be ignored)",
                                   key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` that raises on duplicated mapping keys."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} (the first would be ignored)")
        out[key] = value
    return out


def json_loads(text: str) -> Any:
    """``json.loads`` that raises :class:`ValueError` on duplicated object keys."""
    return json.loads(text, object_pairs_hook=_pairs)
