"""Pool charts: `mda new-pool POOL` writes k8s_dev/POOL, a chart whose `config:` is a list of
`models:` (docs: guides/pools.md), and `mda new-model NAME --into POOL` adds a model to it.

A pool's chart routes `/<name>` of each of its models to the one Service; its budget is
`memoryBudget` or, unset, half of `resources.limits.memory` (the server reads the cgroup).
Adding a model edits values.yaml round-trip (comments kept) and returns the diff.
"""

import json
from pathlib import Path
from typing import Any

import yaml

from model_deployment_app.config import parse_served
from model_deployment_app.deploy.layout import DEFAULT_IMAGE, Repo, validate_name
from model_deployment_app.deploy.scaffold import (
    ModelSpec,
    check_config,
    common_replacements,
    model_config,
    model_env,
    refuse_existing_chart,
    refuse_taken_name,
    write_chart,
)
from model_deployment_app.deploy.values_file import (
    append_keeping_comments,
    load_values,
    write_values,
)
from model_deployment_app.errors import StartupError, UserError
from model_deployment_app.memory import parse_bytes


def new_pool(repo: Repo, name: str, image: str = DEFAULT_IMAGE, memory_budget: str = "") -> Path:
    """Create k8s_dev/<name>, a pool of no models yet; UserError (nothing written) for a bad
    or taken name, or a budget that is not a size."""
    validate_name(name)
    refuse_existing_chart(repo, name)
    refuse_taken_name(repo, name)
    if memory_budget:
        try:
            parse_bytes(memory_budget)
        except ValueError as error:
            raise UserError(f"--memory-budget {error}") from None
    section = (repo.starter_dir / "config-pool.yaml").read_text().rstrip("\n")
    if memory_budget:
        section = section.replace('memoryBudget: ""', f'memoryBudget: "{memory_budget}"')
    replacements = {
        "<CONFIG_SECTION>": section,
        "<DESCRIPTION>": f"the {name} pool of models (each under /<name>)",
        **common_replacements(repo, name, image),
        "<ENV>": "{}",
        "<IMAGE_VARIANT>": "",
    }

    def check(chart: Path) -> None:
        values = yaml.safe_load((chart / "values.yaml").read_text())
        if values.get("config") != {"models": []} or values["image"]["repository"] != image:
            raise UserError(f"pool {name!r} with image {image!r} cannot be written as plain YAML")

    return write_chart(repo, name, replacements, check)


def is_pool(values: Any) -> bool:
    config: Any = values.get("config") if isinstance(values, dict) else None
    return isinstance(config, dict) and isinstance(config.get("models"), list)


def add_to_pool(repo: Repo, pool: str, spec: ModelSpec) -> str:
    """Add the model `spec` describes to the pool chart `pool`; the diff of its values.yaml.
    The model's name must be free as a path; the pool's image variant and MLflow tracking
    server must fit it."""
    path = repo.chart_dir(pool) / "values.yaml"
    values, before = load_values(path)
    if not is_pool(values):
        raise UserError(
            f"chart {pool!r} is not a pool (its config has no models: list); create one with "
            f"`mda new-pool POOL`"
        )
    validate_name(spec.name)
    refuse_taken_name(repo, spec.name)
    check_config(spec)
    _fit_image(values, pool, spec)
    for key, value in model_env(spec).items():
        env = values.setdefault("env", {})
        if env.get(key, value) != value:
            raise UserError(
                f"pool {pool!r} has {key}={env[key]}, model {spec.name!r} needs {value}"
            )
        env[key] = value
    append_keeping_comments(values["config"]["models"], model_config(spec))
    try:
        parse_served(json.loads(json.dumps({"models": values["config"]["models"]})))
    except StartupError as error:
        raise UserError(f"pool {pool!r}: {error}") from None
    return write_values(path, values, before)


def _fit_image(values: Any, pool: str, spec: ModelSpec) -> None:
    """One image serves every model of a pool: a model of a family the plain image lacks
    sets the pool's variant, unless the pool already runs another."""
    wanted = spec.image_variant
    image = values.setdefault("image", {})
    current = image.get("variant") or ""
    if not wanted or wanted == current:
        return
    if current:
        raise UserError(
            f"model {spec.name!r} needs the image variant {wanted!r}, but pool {pool!r} runs "
            f"{current!r}: build one image with both (make docker-base FAMILIES=...) and set "
            "image.variant, or serve the model from its own chart"
        )
    image["variant"] = wanted
