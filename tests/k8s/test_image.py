"""The image every workflow step runs: built here with podman (`make image`) and checked by running it.

The tests build it first through scripts/build-image.sh (a no-op when nothing changed), so they
always check the image of the source tree under test. Container runs use the WorkflowTemplate's
securityContext as podman flags (tests/k8s_e2e/runner.py maps the full pod spec).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.k8s_e2e import podman

ROOT = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", re.sub(r"\[.*\]", "", name)).lower()] = version
    return pins


def test_image_pins_equal_what_ci_tested() -> None:
    image = _pins(ROOT / "image" / "requirements.txt")
    tested = _pins(ROOT / "requirements" / "constraints.txt")
    assert image, "image/requirements.txt is empty"
    for name, version in image.items():
        assert tested.get(name) == version, f"{name}=={version} in the image, {tested.get(name)} in CI"


def _locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """``name -> (version, hashes)`` of a ``--require-hashes`` lock file."""
    text = path.read_text().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            spec, *options = line.split()
            name, version = spec.split("==")
            out[name] = (
                version,
                [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=")],
            )
    return out


def test_the_image_installs_only_locked_files_at_the_tested_versions() -> None:
    """Every file the image installs is checked against its sha256 (pip --require-hashes), and
    the lock is what `make image-lock` derives from the pins: no package left out, none drifted."""
    locked = _locked(ROOT / "image" / "requirements.lock")
    tested = _pins(ROOT / "requirements" / "constraints.txt")
    for name in _pins(ROOT / "image" / "requirements.txt"):
        assert name in locked, f"{name} is in image/requirements.txt but not locked: run `make image-lock`"
    for name, (version, hashes) in locked.items():
        assert tested.get(name) == version, (
            f"{name}=={version} locked, {tested.get(name)} in CI: `make image-lock`"
        )
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert any("--require-hashes" in line and "requirements.lock" in line for line in installs)
    assert all("--require-hashes" in line or "--no-deps ." in line for line in installs), installs


@pytest.fixture(scope="module")
def image() -> str:
    return podman.ensure_image()


@pytest.fixture(scope="module")
def step_flags() -> list[str]:
    """The template's container securityContext as podman flags (the same for every step)."""
    template = yaml.safe_load((ROOT / "k8s" / "base" / "workflowtemplate.yaml").read_text())
    sc = next(t for t in template["spec"]["templates"] if "container" in t)["container"]["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    return [f"--user={sc['runAsUser']}:{sc['runAsGroup']}", "--read-only", "--read-only-tmpfs=false",
            "--cap-drop=all", "--security-opt=no-new-privileges", "--network=none", "--pull=never"]  # fmt: skip


def python_in(image: str, flags: list[str], code: str) -> str:
    return podman.run("run", "--rm", *flags, "--entrypoint=python", image, "-c", code, timeout=120).stdout


@pytest.mark.integration
def test_tritonops_runs_as_the_steps_run_it(image: str, step_flags: list[str]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = podman.run("run", "--rm", *step_flags, image, "--version").stdout
    assert out.strip() == f"tritonops, version {version}"


@pytest.mark.integration
def test_the_image_runs_as_10001_with_nothing_writable_in_it(image: str) -> None:
    # Without any flags: the image's own user, as a pod without runAsUser would get.
    assert (
        podman.run("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip() == "10001:10001"
    )
    probe = """
import json, os, sys
writable = [d for d, _, _ in os.walk("/") if not d.startswith(("/proc", "/sys", "/dev", "/tmp", "/run", "/var/tmp"))
            and os.access(d, os.W_OK)]
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "writable": writable, "exe": sys.executable}))
"""
    seen = json.loads(python_in(image, ["--pull=never", "--network=none"], probe))
    assert (seen["uid"], seen["gid"]) == (10001, 10001)
    # Even with a writable root filesystem the step's user cannot change the code it runs.
    assert seen["writable"] == [], seen["writable"]
    assert seen["exe"].startswith("/opt/tritonops/")


@pytest.mark.integration
def test_the_clients_the_steps_need_import_at_the_pinned_versions(image: str, step_flags: list[str]) -> None:
    """pandas (MLflow reads a logged input example with it), boto3 (s3:// artefacts), MLflow's
    client, ONNX Runtime (parity gate), Triton's client: present, importable under the read-only
    root, at exactly the versions CI tested."""
    pins = _pins(ROOT / "image" / "requirements.txt")
    code = f"""
import importlib.metadata as md, json
import pandas, boto3, mlflow, onnxruntime, onnx, tritonclient.http, prometheus_client
print(json.dumps({{name: md.version(name) for name in {sorted(pins)!r}}}))
"""
    installed = json.loads(python_in(image, step_flags, code))
    assert {k.lower(): v for k, v in installed.items()} == pins


@pytest.mark.integration
def test_steps_start_without_importing_what_they_load_lazily(image: str, step_flags: list[str]) -> None:
    """A step that does not talk to MLflow must not pay for importing it (nor pandas, boto3,
    ONNX Runtime) at start-up; every module is precompiled (the root is read-only)."""
    out = podman.run(
        "run", "--rm", *step_flags, "--tmpfs=/tmp", "--env=PYTHONPROFILEIMPORTTIME=1", "--entrypoint=python",
        image, "-c", "import sys; sys.argv = ['tritonops', 'step', 'ready', '--help']; "
        "from tritonops.cli import main; main()",
        check=False,
    )  # fmt: skip
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "tritonops" in imported, out.stderr[-2000:]
    assert not imported & {"mlflow", "pandas", "boto3", "botocore", "onnxruntime"}
    stale = python_in(
        image,
        step_flags,
        "import pathlib, importlib.util as u; "
        "print([str(p) for p in pathlib.Path('/opt/tritonops/lib').rglob('tritonops/**/*.py') "
        "if not pathlib.Path(u.cache_from_source(str(p))).exists()])",
    )
    assert stale.strip() == "[]", f"modules without bytecode (compiled at every start): {stale}"


@pytest.mark.integration
def test_the_image_carries_no_installer(image: str, step_flags: list[str]) -> None:
    out = python_in(
        image,
        step_flags,
        "import importlib.util as u; print([m for m in ('pip', 'setuptools') if u.find_spec(m)])",
    )
    assert out.strip() == "[]"
