"""Anyone who can reach the webhook port, without the secret, costs the receiver nothing.

The real CLI receiver (`tritonops webhook`, uvicorn) on 127.0.0.1, abused the way one slow or
greedy client can: connections trickling a byte at a time, megabytes of headers, chunked or
unbounded bodies, JSON nested 10,000 deep, forged log lines. Every loop here is bounded in count
and time and talks to loopback only. Throughout, a delivery signed with MLflow's own function is
answered within a second, and the process keeps its thread count and memory.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import Env, Registry
from tritonops.local.processes import Process, free_port, http_ok, wait_for

pytestmark = pytest.mark.integration

SECRET = "whsec-abuse-" + uuid.uuid4().hex
SECRET_ENV = "TRITONOPS_TEST_WEBHOOK_SECRET"
MODEL = f"wh-abuse-{uuid.uuid4().hex[:4]}"  # followed, never registered: a deploy ends NotFound
DEADLINE_S = 3.0


@dataclass
class Rx:
    url: str
    port: int
    process: Process

    @property
    def pid(self) -> int:
        return self.process.proc.pid

    def status(self, key: str) -> int:
        """A number from /proc/<pid>/status (VmRSS in kB, Threads)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")


def start(env: Env, log: Path, *args: str) -> Rx:
    port = free_port()
    argv = [
        sys.executable, "-m", "tritonops.cli", "webhook", "--listen", f"127.0.0.1:{port}",
        "--secret-env", SECRET_ENV, "--mode", "local", "--model", MODEL, "--alias", "champion",
        "--request-deadline-seconds", str(DEADLINE_S), *args,
    ]  # fmt: skip
    process = Process(argv, log, env=env.env(**{SECRET_ENV: SECRET}))
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/healthz"), 60, "webhook receiver", process.proc, log)
    return Rx(url, port, process)


@pytest.fixture(scope="module")
def rx(
    volume: Path, registry: Registry, triton: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rx]:
    env = Env(
        repo=volume / "models",
        state=volume / "state",
        tracking_uri=registry.tracking_uri,
        triton_urls=[triton],
    )
    receiver = start(env, tmp_path_factory.mktemp("abuse") / "receiver.log")
    try:
        yield receiver
    finally:
        receiver.process.stop()


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the server answers until it closes or stalls."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def signed(model: str = MODEL, body: bytes | None = None) -> tuple[dict[str, str], bytes]:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    text = (
        body.decode()
        if body is not None
        else json.dumps(
            {
                "entity": "model_version_alias",
                "action": "created",
                "timestamp": "2026-12-08T00:00:00+00:00",
                "data": {"name": model, "alias": "champion", "version": "1"},
            }
        )
    )
    delivery, stamp = str(uuid.uuid4()), str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": _generate_hmac_signature(SECRET, delivery, stamp, text),
    }, text.encode()


def post_signed(rx: Rx, model: str = MODEL, body: bytes | None = None) -> tuple[int, float]:
    """A signed delivery: its HTTP status and how long the answer took."""
    import urllib.error
    import urllib.request

    headers, data = signed(model, body)
    started = time.monotonic()
    request = urllib.request.Request(rx.url + "/", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.monotonic() - started


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def test_slow_clients_are_cut_off_and_a_signed_event_is_answered_meanwhile(rx: Rx) -> None:
    threads_before = rx.status("Threads")
    stop = threading.Event()
    closed_by_server: list[bool] = []
    lock = threading.Lock()

    def slow_client() -> None:
        """A request's first line, then a header byte every 0.5 s, for at most 2x the deadline."""
        try:
            sock = socket.create_connection(("127.0.0.1", rx.port), timeout=2)
        except OSError:
            return
        cut = False
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            until = time.monotonic() + 2 * DEADLINE_S
            while time.monotonic() < until and not stop.is_set():
                sock.sendall(b"a")
                time.sleep(0.5)
        except OSError:  # the server closed it: what we want
            cut = True
        finally:
            sock.close()
        with lock:
            closed_by_server.append(cut)

    clients = [threading.Thread(target=slow_client, daemon=True) for _ in range(150)]
    for client in clients:
        client.start()
    time.sleep(1.0)  # all 150 connected and trickling
    try:
        answers = [post_signed(rx) for _ in range(3)]
        threads_during = rx.status("Threads")
    finally:
        for client in clients:
            client.join(timeout=4 * DEADLINE_S)
        stop.set()
    assert all(status == 202 and took < 1.0 for status, took in answers), answers
    assert threads_during <= threads_before + 8, (threads_before, threads_during)  # not one per connection
    assert len(closed_by_server) == 150 and all(closed_by_server), "a trickling client outlived the deadline"
    assert "did not finish its request within" in rx.log()


def test_stalled_requests_with_megabytes_of_headers_are_refused_and_memory_stays_bounded(rx: Rx) -> None:
    """10 requests, each 100 header lines of 60 KiB (6 MB: under a per-line limit, over any sane
    total), never finished: the receiver must neither hold them nor keep the memory."""
    rss_before = rx.status("VmRSS")
    line = b"X-Big-%03d: " + b"a" * (60 << 10) + b"\r\n"
    socks, refused = [], 0
    try:
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", rx.port), timeout=5)
            socks.append(sock)
            try:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
                for n in range(100):
                    sock.sendall(line % n)
            except OSError:  # refused while we were still sending
                refused += 1
        time.sleep(0.5)
        rss_stalled = rx.status("VmRSS")
        status, took = post_signed(rx)
    finally:
        for sock in socks:
            sock.close()
    assert refused == 10, f"{10 - refused} requests with 6 MB of headers were read whole"
    assert (rss_stalled - rss_before) / 1024 < 32, f"RSS {rss_before} -> {rss_stalled} kB"
    assert status == 202 and took < 1.0


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
        # The body is never read: the answer comes although not one byte of it was sent.
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n", 413),
    ],
    ids=["chunked", "no-content-length", "too-large"],
)
def test_bodies_without_a_bounded_length_are_refused(rx: Rx, request_bytes: bytes, status: int) -> None:
    started = time.monotonic()
    assert status_of(raw(rx.port, request_bytes)) == status
    assert time.monotonic() - started < DEADLINE_S


def test_deeply_nested_json_is_refused_and_the_receiver_keeps_answering(rx: Rx) -> None:
    status, _ = post_signed(rx, body=b"[" * 10_000 + b"]" * 10_000)
    assert status == 400
    assert post_signed(rx)[0] == 202


def test_a_newline_in_a_model_name_does_not_forge_a_log_line(rx: Rx) -> None:
    forged = "x\nFORGED committed model=fraud version=666"
    assert post_signed(rx, model=forged)[0] == 200  # ignored: not a valid name
    assert not any(line.startswith("FORGED") for line in rx.log().splitlines())
    assert "x\\nFORGED" in rx.log()


def test_healthz_says_healthy_and_nothing_about_models(rx: Rx) -> None:
    import urllib.request

    with urllib.request.urlopen(rx.url + "/healthz", timeout=5) as resp:
        assert (resp.status, json.loads(resp.read())) == (200, {"status": "ok"})


def test_connections_beyond_the_cap_are_answered_503_until_the_slow_ones_are_cut(
    volume: Path, registry: Registry, triton: str, tmp_path: Path
) -> None:
    env = Env(
        repo=volume / "models",
        state=volume / "state",
        tracking_uri=registry.tracking_uri,
        triton_urls=[triton],
    )
    capped = start(env, tmp_path / "capped.log", "--max-connections", "4")
    idle = []
    try:
        for _ in range(6):
            sock = socket.create_connection(("127.0.0.1", capped.port), timeout=5)
            sock.sendall(b"POST / HTTP/1.1\r\n")
            idle.append(sock)
        time.sleep(0.3)
        assert post_signed(capped)[0] == 503
        time.sleep(DEADLINE_S + 1)  # the idle ones are cut at their deadline
        assert post_signed(capped)[0] == 202
    finally:
        for sock in idle:
            sock.close()
        capped.process.stop()


def test_the_receiver_refuses_to_start_without_an_allow_list(env: Env) -> None:
    base = ["webhook", "--listen", f"127.0.0.1:{free_port()}", "--secret-env", SECRET_ENV, "--mode", "local"]
    nothing = env.cli(*base, **{SECRET_ENV: SECRET})
    assert nothing.returncode == 2 and "--follow-all" in nothing.stderr, nothing.stderr
    only_model = env.cli(*base, "--model", "fraud", **{SECRET_ENV: SECRET})
    assert only_model.returncode == 2 and "--alias missing" in only_model.stderr
    argo = [
        "webhook", "--listen", f"127.0.0.1:{free_port()}", "--secret-env", SECRET_ENV, "--mode", "argo",
        "--model", "fraud", "--alias", "champion", "--argo-server", "http://argo.example:2746",
        "--argo-namespace", "tritonops",
    ]  # fmt: skip
    clear = env.cli(*argo, **{SECRET_ENV: SECRET, "ARGO_TOKEN": "t0ken"})
    assert clear.returncode == 2 and "--argo-insecure" in clear.stderr and "t0ken" not in clear.stderr
