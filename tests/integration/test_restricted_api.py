"""Triton's model-repository API locked with a key: tritonops sends it, never shows it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import Env, Registry
from tritonops.local.processes import start_triton
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration

KEY = "s3cret-Key-4-tests"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    pvc = tmp_path_factory.mktemp("locked")
    (pvc / "models").mkdir()
    proc, url = start_triton(pvc / "models", pvc / "triton.log", restricted_api=f"triton-api-key={KEY}")
    yield pvc, url
    proc.stop()


def test_loads_need_the_key(locked: tuple[Path, str], registry: Registry, model_name: str) -> None:
    pvc, url = locked
    env = Env(repo=pvc / "models", state=pvc / "state", tracking_uri=registry.tracking_uri, triton_urls=[url])
    registry.register(model_name, linear_model(seed=1))

    # Triton itself refuses a repository call without the header.
    raw = requests.post(f"{url}/v2/repository/index", timeout=10)
    assert raw.status_code != 200
    assert requests.post(f"{url}/v2/repository/index", headers={"triton-api-key": KEY}, timeout=10).ok

    refused = env.cli("deploy", "--model", model_name, "--alias", "champion")
    assert refused.returncode == 2
    assert "TRITONOPS_TRITON_API_KEY" in refused.stderr
    assert env.current(model_name) is None

    wrong = env.cli("deploy", "--model", model_name, "--alias", "champion", TRITONOPS_TRITON_API_KEY="wrong")
    assert wrong.returncode == 2

    ok = env.cli("deploy", "--model", model_name, "--alias", "champion", "-v", TRITONOPS_TRITON_API_KEY=KEY)
    assert ok.returncode == 0, ok.stderr
    assert env.current(model_name)["active_version"] == 1

    # The key never appears in output, journals, history or the repository.
    assert KEY not in ok.stdout + ok.stderr + refused.stderr + wrong.stderr
    for path in [*(pvc / "state").rglob("*"), *(pvc / "models").rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_logging_and_trace_settings_need_the_key(locked: tuple[Path, str]) -> None:
    """An open /v2/logging let anyone raise the log level (or redirect the log); trace likewise."""
    _, url = locked
    for path, body in (("/v2/logging", {"log_verbose_level": 1}), ("/v2/trace/setting", {"trace_rate": "1"})):
        refused = requests.post(f"{url}{path}", json=body, timeout=10)
        assert refused.status_code != 200, (path, refused.text)
        allowed = requests.post(f"{url}{path}", json=body, headers={"triton-api-key": KEY}, timeout=10)
        assert allowed.ok, (path, allowed.text)
    assert requests.get(f"{url}/v2/health/ready", timeout=10).ok  # health and inference stay open


def test_the_local_launcher_redacts_the_key() -> None:
    from tritonops.local.triton import redact

    argv = ["tritonserver", f"--http-restricted-api=model-repository:triton-api-key={KEY}",
            f"--grpc-restricted-protocol=model-repository:triton-api-key={KEY}", "--http-port=1"]  # fmt: skip
    assert KEY not in " ".join(redact(argv))


def test_the_local_triton_listens_on_loopback_only(locked: tuple[Path, str]) -> None:
    """Triton's default is every interface; this 2.51 predates NVIDIA's August 2025 fixes."""
    _, url = locked
    port = int(url.rsplit(":", 1)[1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # LISTEN
                listening.append(address)
    assert listening == ["0100007F"], listening  # 127.0.0.1, and nothing on other interfaces
