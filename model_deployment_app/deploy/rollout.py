"""Canary rollouts in git: `mda canary MODEL --weight N` and `mda promote MODEL`.

Both edit the model's `values.yaml` in place, keeping its comments, order and quoting (a
round-trip YAML edit), and print the change as a diff: with GitOps (Argo CD, Flux) the
rollout is the commit. A model without an enabled canary is refused in one line.
"""

from typing import Any

from model_deployment_app.deploy.layout import Repo
from model_deployment_app.deploy.values_file import load_values, write_values
from model_deployment_app.errors import UserError


def _enabled_canary(values: Any, model: str) -> Any:
    canary: Any = values.get("canary") if hasattr(values, "get") else None
    if not hasattr(canary, "get") or canary.get("enabled") is not True:
        raise UserError(
            f"model {model!r} has no enabled canary (canary.enabled is not true in its "
            "values.yaml): enable one first (docs: guides/canary.md)"
        )
    return canary


def _merge(target: Any, changes: Any) -> None:
    """`changes` over `target`, key by key (maps merge, a null removes the key), keeping the
    comments of the keys that stay."""
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        elif hasattr(value, "items") and hasattr(target.get(key), "items"):
            _merge(target[key], value)
        else:
            target[key] = value


def set_weight(repo: Repo, model: str, weight: int) -> str:
    """Send `weight` percent of the model's requests to its canary; the diff of values.yaml."""
    if not 0 <= weight <= 100:
        raise UserError(f"--weight must be between 0 and 100 (percent), got {weight}")
    path = repo.chart_dir(model) / "values.yaml"
    values, before = load_values(path)
    _enabled_canary(values, model)["weight"] = weight
    return write_values(path, values, before)


def promote(repo: Repo, model: str) -> str:
    """Make the canary the stable track: `canary.config` merged into `config` (and its image
    tag into `image.tag`), the canary switched off and emptied; the diff of values.yaml."""
    from ruamel.yaml.comments import CommentedMap

    path = repo.chart_dir(model) / "values.yaml"
    values, before = load_values(path)
    canary = _enabled_canary(values, model)
    _merge(values["config"], canary.get("config") or {})
    tag = (canary.get("image") or {}).get("tag")
    if tag:
        values["image"]["tag"] = tag
        canary["image"]["tag"] = ""
    canary["enabled"] = False
    canary["weight"] = 0
    trailing = _trailing_comment(canary["config"])
    canary["config"] = CommentedMap()
    if trailing is not None:  # the comment lines that followed the old value (the next key's)
        value = trailing.value
        if not value.startswith("\n") and "\n" in value:  # an end-of-line comment of the old value
            trailing.value = value[value.index("\n") :]
            trailing.start_mark.column = 0
        canary.ca.items["config"] = [None, None, trailing, None]
    return write_values(path, values, before)


def _trailing_comment(node: Any) -> Any:
    """The comment block after a nested map's last value, where a round-trip YAML parser
    keeps the comment lines of the key that follows it."""
    while hasattr(node, "items") and len(node):
        last = list(node)[-1]
        if not hasattr(node[last], "items") or not len(node[last]):
            items = getattr(node, "ca", None)
            found = items.items.get(last) if items is not None else None
            return found[2] if found and len(found) > 2 else None
        node = node[last]
    return None
