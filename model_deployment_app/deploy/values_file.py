"""A chart's `values.yaml` edited in place: read and written round-trip, so its comments,
order and quoting stay, and the change is returned as a diff (with GitOps, the commit)."""

import difflib
import io
from pathlib import Path
from typing import Any


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load_values(path: Path) -> tuple[Any, str]:
    """The round-trip document and the text it was read from."""
    text = path.read_text()
    return _yaml().load(text), text


def write_values(path: Path, data: Any, before: str) -> str:
    """Write `data` back; the unified diff from `before`."""
    buffer = io.StringIO()
    _yaml().dump(data, buffer)
    after = buffer.getvalue()
    path.write_text(after)
    name = str(path)
    return "".join(
        difflib.unified_diff(before.splitlines(True), after.splitlines(True), name, name)
    )


def append_keeping_comments(sequence: Any, item: Any) -> None:
    """Append `item` to a block sequence of `load_values`. The comment lines that follow the
    sequence (the next key's) are held by its last item's deepest last key: they move to the
    new last item's, so they stay after the sequence."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def converted(value: Any) -> Any:
        if isinstance(value, dict):
            return CommentedMap((key, converted(inner)) for key, inner in value.items())
        if isinstance(value, list):
            return CommentedSeq(converted(inner) for inner in value)
        return value

    def deepest_last(node: Any) -> tuple[Any, Any, int]:
        """The container, key and comment slot that hold what follows `node`."""
        while True:
            key = len(node) - 1 if isinstance(node, list) else list(node)[-1]
            value: Any = node[key]
            style: Any = getattr(value, "fa", None)  # a round-trip node: flow or block style
            if isinstance(value, dict | list) and len(value) and not style.flow_style():
                node = value
                continue
            return node, key, 0 if isinstance(node, list) else 2

    trailing = None
    if len(sequence):
        node, key, slot = deepest_last(sequence)
        entry = node.ca.items.get(key)
        if entry is not None and len(entry) > slot:
            trailing, entry[slot] = entry[slot], None
    sequence.fa.set_block_style()
    sequence.append(converted(item))
    if trailing is not None:
        node, key, slot = deepest_last(sequence)
        node.ca.items[key] = [None] * 4 if slot == 2 else [None, None]
        node.ca.items[key][slot] = trailing
