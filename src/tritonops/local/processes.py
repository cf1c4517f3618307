"""Start and stop local server processes (Triton, MLflow, Pushgateway, Prometheus) for demo and tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return bool(200 <= resp.status < 300)
    except OSError:
        return False


def wait_for(
    check: Callable[[], bool],
    timeout_s: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``check`` until true; fail early if ``proc`` died, with the tail of its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = ""
    if log is not None and log.is_file():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"{what} did not come up within {timeout_s:.0f}s{tail}")


class Process:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.argv = list(argv)
        self.log = log
        self.url: str | None = None
        self.metrics_url: str | None = None
        log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            self.argv, stdout=self._fh, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._fh.close()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._fh.close()


def start_triton(
    repo: Path,
    log: Path,
    http_port: int | None = None,
    restricted_api: str | None = None,
    timeout_s: float = 90.0,
) -> tuple[Process, str]:
    """A real Triton on free ports; returns (process, http URL) once it is live."""
    from tritonops.local.triton import TritonLaunch, command

    http_port = http_port or free_port()
    launch = TritonLaunch(repo, http_port, free_port(), free_port(), restricted_api=restricted_api)
    argv, env = command(launch)
    proc = Process(argv, log, env)
    url = f"http://127.0.0.1:{http_port}"
    wait_for(
        lambda: http_ok(f"{url}/v2/health/live"), timeout_s, f"Triton on port {http_port}", proc.proc, log
    )
    proc.url = url
    proc.metrics_url = f"http://127.0.0.1:{launch.metrics_port}/metrics"
    return proc, url


def start_mlflow_server(
    root: Path, log: Path, port: int | None = None, timeout_s: float = 120.0
) -> tuple[Process, str]:
    """A real MLflow tracking server (sqlite registry, proxied artifact store) on loopback."""
    import sys

    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--serve-artifacts",
    ]  # fmt: skip
    # MLflow 3's job runner starts worker processes that outlive SIGTERM: nothing here uses it.
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    proc = Process(argv, log, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/health"), timeout_s, f"MLflow server on port {port}", proc.proc, log)
    proc.url = url
    return proc, url
