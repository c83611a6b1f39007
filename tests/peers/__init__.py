"""Peers' real client libraries (MLServer, KServe, tritonclient), run from their own venv.

They pin FastAPI versions of their own, so they cannot share `.venv` with this package;
`make peers` builds `.venv-peers`, and the tests call into it through `run_peer`.
"""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEER_PYTHON = ROOT / ".venv-peers" / "bin" / "python"


def run_peer(script: str, *args: str, timeout: float = 120) -> Any:
    """Run `tests/peers/<script>` in the peers' venv; its stdout is JSON."""
    if not PEER_PYTHON.exists():
        pytest.fail(f"{PEER_PYTHON} is missing: `make peers` (or `make test`) builds it")
    done = subprocess.run(
        [str(PEER_PYTHON), str(Path(__file__).parent / script), *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"{script} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # the last line: libraries chat
