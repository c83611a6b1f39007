"""`make bump-version PART=patch|minor|major`: one version for the package, the base image
and every chart's appVersion.

The image is tagged with the version in pyproject.toml (`make docker-base`), and each chart's
appVersion names the image it runs, so the two move together. Each chart's own version gets a
patch bump too, since its content changed. Edits are line-based, so comments stay.
"""

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from model_deployment_app.deploy.layout import Repo
from model_deployment_app.errors import UserError

PARTS = ("major", "minor", "patch")

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
# The first `version = "..."` in pyproject.toml is [project]'s (the Makefile reads the same).
_PYPROJECT_VERSION = re.compile(r'^version = "([^"]*)"$', re.MULTILINE)
_APP_VERSION = re.compile(r"^appVersion:.*$", re.MULTILINE)
_CHART_VERSION = re.compile(r"^version:\s*\"?([^\"\s]*)\"?\s*$", re.MULTILINE)


def bump(version: str, part: str) -> str:
    """`1.2.3` bumped by `part`: major 2.0.0, minor 1.3.0, patch 1.2.4."""
    match = _SEMVER.match(version)
    if not match:
        raise UserError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(x) for x in match.groups())
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    if part == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise UserError(f"unknown version part {part!r}: use one of {', '.join(PARTS)}")


def package_version(repo: Repo) -> str:
    """The version in pyproject.toml: the package's, the image tag and every appVersion."""
    try:
        text = repo.pyproject.read_text()
    except OSError as error:
        raise UserError(f"cannot read {repo.pyproject}: {error.strerror}") from None
    match = _PYPROJECT_VERSION.search(text)
    if not match:
        raise UserError(f'no `version = "..."` line in {repo.pyproject}')
    return match.group(1)


def bump_repo(repo: Repo, part: str) -> tuple[str, str, list[Path]]:
    """Bump pyproject's version and set every chart's appVersion to it.

    Returns (old version, new version, the Chart.yaml files changed). Everything is computed
    before anything is written, so a bad file leaves the checkout untouched.
    """
    old = package_version(repo)
    new = bump(old, part)
    writes = {
        repo.pyproject: _PYPROJECT_VERSION.sub(f'version = "{new}"', _read(repo.pyproject), 1)
    }
    charts = [repo.charts_dir / name / "Chart.yaml" for name in repo.model_names()]
    for chart in charts:
        text = _read(chart)
        version = _CHART_VERSION.search(text)
        if not version or not _APP_VERSION.search(text):
            raise UserError(f"{chart}: expected `version:` and `appVersion:` lines")
        text = _APP_VERSION.sub(f'appVersion: "{new}"', text, count=1)
        text = _CHART_VERSION.sub(f"version: {bump(version.group(1), 'patch')}", text, count=1)
        writes[chart] = text
    for path, text in writes.items():
        path.write_text(text)
    return old, new, charts


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_deployment_app.deploy.versioning",
        description="Bump the version in pyproject.toml and every chart's appVersion together.",
    )
    parser.add_argument("part", choices=PARTS, help="which part of MAJOR.MINOR.PATCH to bump")
    parser.add_argument("--root", help="repository root (default: $MDA_REPO_ROOT or .)")
    args = parser.parse_args(argv)
    try:
        old, new, charts = bump_repo(Repo.find(args.root), args.part)
    except UserError as error:
        print(f"bump-version: error: {error}", file=sys.stderr)
        return 1
    print(f"version {old} -> {new}: pyproject.toml and the appVersion of {len(charts)} chart(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
