"""podman as this project's machines need it, and the image `make image` builds.

Rootful podman with ``--runtime runc`` and ``image/containers.conf`` (see that file for why).
The image is built by ``scripts/build-image.sh`` (a no-op when its inputs did not change), so a
test always runs the image of the source tree it is testing; a build that fails fails the test.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("TRITONOPS_TEST_IMAGE", "localhost/tritonops:dev")
CONTAINERS_CONF = ROOT / "image" / "containers.conf"


def env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str) -> list[str]:
    binary = shutil.which("podman")
    assert binary, "podman is not installed: run `make system-deps`"
    return [binary, "--runtime", "runc", *args]


def run(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        podman(*args), env=env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


@functools.cache
def ensure_image() -> str:
    """Build (or confirm up to date) the image, once per test process; its name."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image.sh")],
        env={**env(), "IMAGE": IMAGE},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, f"scripts/build-image.sh failed:\n{result.stdout}\n{result.stderr}"
    return IMAGE


def image_label(image: str, label: str) -> str:
    return run("image", "inspect", "--format", f'{{{{index .Labels "{label}"}}}}', image).stdout.strip()
