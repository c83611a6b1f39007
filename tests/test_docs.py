"""The docs: the site builds with `mkdocs --strict`, and every snippet marked runnable in the
README and the docs runs as written, printing what the page shows.

Markers, an HTML comment on the line before a code block (invisible on the site):
- `<!-- run: python -->` runs the block with the venv's Python;
- `<!-- run: shell -->` runs it with bash, `set -e`;
- `<!-- file: NAME -->` writes it to NAME (a config the next blocks use);
- `<!-- run: serve demo -->` runs it while the `make run` demo serves (on a free port that
  replaces the page's localhost:8080).
A page's blocks run in order in one fresh folder (where `.venv` is this checkout's). In a
shell block, a comment line `# => TEXT` after a command is its output, checked in order;
`# e.g. ...` marks an output that varies and is not checked.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from tests.conftest import MDA, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- (?P<marker>[^>]+?) -->\n```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUNNABLE = [p for p in PAGES if BLOCK.search(p.read_text())]


def expected_outputs(code: str) -> list[str]:
    return [line[5:] for line in code.splitlines() if line.startswith("# => ")]


def run_block(lang: str, code: str, cwd: Path) -> str:
    command = [sys.executable, "-c", code] if lang == "python" else ["bash", "-e", "-c", code]
    process = subprocess.Popen(
        command, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # a server the block starts in the background goes with it
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    assert process.returncode == 0, f"{lang} block failed ({process.returncode}):\n{code}\n{err}"
    return out


def check_outputs(code: str, out: str) -> None:
    """Each shown output is printed, in order (curl ends its output without a newline, so
    outputs are found in the text, not line by line)."""
    position = 0
    for want in expected_outputs(code):
        found = out.find(want, position)
        assert found >= 0, f"expected {want!r} in the output:\n{out}"
        position = found + len(want)


def serve_demo(cwd: Path) -> tuple[subprocess.Popen[str], int]:
    subprocess.run([*MDA[:1], "-m", "model_deployment_app.demo", "demo"], cwd=cwd, check=True)
    port = free_port()
    env = {**os.environ, "MDA_CONFIG_PATH": "demo/config.yaml", "PORT": str(port),
           "MDA_GRPC_PORT": "0", "MDA_HOST": "127.0.0.1"}  # fmt: skip
    server = subprocess.Popen([*MDA, "serve"], cwd=cwd, env=env, text=True)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                return server, port
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise AssertionError("the demo server did not become ready")


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_marked_snippet_runs_as_written(page: Path, tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    demo: tuple[subprocess.Popen[str], int] | None = None
    try:
        for block in BLOCK.finditer(page.read_text()):
            marker, code = block["marker"], block["code"]
            if marker.startswith("file: "):
                (tmp_path / marker[6:]).write_text(code)
            elif marker == "run: serve demo":
                demo = demo or serve_demo(tmp_path)
                code = code.replace("localhost:8080", f"localhost:{demo[1]}")
                check_outputs(code, run_block("shell", code, tmp_path))
            elif marker in ("run: python", "run: shell"):
                out = run_block(marker[5:], code, tmp_path)
                if marker == "run: shell":
                    check_outputs(code, out)
            else:
                raise AssertionError(f"unknown snippet marker {marker!r} in {page}")
    finally:
        if demo is not None:
            demo[0].terminate()
            demo[0].wait(timeout=30)


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    build = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "site" / "guides" / "text-models" / "index.html").is_file()


def test_the_readme_is_short_and_points_into_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link


def test_every_setting_is_on_the_settings_page() -> None:
    from model_deployment_app import settings

    page = (ROOT / "docs" / "reference" / "settings.md").read_text()
    classes = [settings.ServerSettings, settings.CacheSettings, settings.BatchingSettings,
               settings.TextModelSettings, settings.AccessSettings, settings.CompileSettings,
               settings.PoolSettings, settings.PayloadLogSettings]  # fmt: skip
    missing = [
        variable
        for cls in classes
        for name in cls.model_fields
        if f"`{(variable := 'PORT' if name == 'port' else f'MDA_{name.upper()}')}`" not in page
    ]
    assert missing == []


DIAGRAMS = sorted((ROOT / "docs" / "explanations" / "diagrams").glob("*.dot"))
LABEL = re.compile(r'label="([^"]*)"')


def modules_in(source: Path) -> set[str]:
    """The module paths the boxes' labels name (one a label line, ending in .py)."""
    lines = (line for label in LABEL.findall(source.read_text()) for line in label.split("\\n"))
    return {line for line in lines if line.endswith(".py")}


@pytest.mark.parametrize("source", DIAGRAMS, ids=lambda p: p.name)
def test_each_box_of_the_architecture_names_a_module_that_exists(source: Path) -> None:
    named = modules_in(source)
    assert named, f"{source.name} names no module"
    missing = [m for m in sorted(named) if not (ROOT / "model_deployment_app" / m).is_file()]
    assert not missing, f"{source.name} names modules that no longer exist: {missing}"
    drawn = source.with_suffix(".svg").read_text()
    stale = [m for m in sorted(named) if f">{m}<" not in drawn]
    assert not stale, f"{source.with_suffix('.svg').name} is older than its source: make diagrams"


IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.svg)\)")


def test_every_chart_a_page_shows_is_there_and_the_speed_page_says_what_drew_them() -> None:
    shown = [(page, page.parent / src) for page in PAGES for src in IMAGE.findall(page.read_text())]
    speed = ROOT / "docs" / "explanations" / "speed.md"
    charts = [path for page, path in shown if page == speed]
    assert len(charts) >= 4, "the speed page shows the bench's charts"
    for page, path in shown:
        assert path.is_file(), f"{page.name} shows {path}, which is missing"
        assert ElementTree.parse(path).getroot().tag.endswith("svg"), path
    for folder in {path.parent for path in charts}:
        drew = f"CHARTS={folder.relative_to(ROOT)}"
        assert drew in speed.read_text(), f"the speed page does not say which run drew {folder}"
