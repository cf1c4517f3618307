"""Triton replicas over HTTP (KServe v2 protocol), through ``tritonclient[http]``.

One :class:`TritonReplica` is one Triton process. tritonops always addresses
replicas one by one: a load sent to a Kubernetes Service reaches one pod only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from tritonops.core.signature import Array
from tritonops.errors import InputError, LoadFailed, NotReady, SmokeFailed, TritonUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TritonTimeouts:
    connect_s: float = 5.0
    request_s: float = 30.0  # metadata, readiness, inference
    load_s: float = 600.0  # a large model can take minutes to load
    ready_s: float = 60.0  # how long to wait for a loaded version to report ready


def split_url(url: str) -> tuple[str, bool]:
    """``http://host:8000`` -> (``host:8000``, ssl=False). A bare ``host:port`` is http."""
    raw = url if "://" in url else f"http://{url}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"Triton URL {url!r} is not http(s)://host[:port]")
    port = parts.port or (443 if parts.scheme == "https" else 8000)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", parts.scheme == "https"


class TritonReplica:
    """One Triton server. Every method raises our errors, never tritonclient's."""

    def __init__(
        self,
        url: str,
        timeouts: TritonTimeouts | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self._address, self._ssl = split_url(url)
        self.timeouts = timeouts or TritonTimeouts()
        self._headers = dict(headers or {})
        # tritonclient's HTTP client is built on gevent, whose sockets belong to the thread (hub)
        # that made them: the fan-out over replicas runs each replica's work in a pool thread,
        # so every thread gets clients of its own.
        self._local = threading.local()
        self._every_client: list[Any] = []

    def __repr__(self) -> str:  # headers may hold a secret: never show them
        return f"TritonReplica({self.url!r})"

    def _client(self, timeout: float) -> Any:
        clients: dict[float, Any] = self._local.__dict__.setdefault("clients", {})
        if timeout not in clients:
            import tritonclient.http as httpclient

            clients[timeout] = httpclient.InferenceServerClient(
                self._address,
                ssl=self._ssl,
                connection_timeout=self.timeouts.connect_s,
                network_timeout=timeout,
            )
            self._every_client.append(clients[timeout])
        return clients[timeout]

    def close(self) -> None:
        for client in self._every_client:
            with contextlib.suppress(Exception):  # a client of a finished thread may not close cleanly
                client.close()
        self._every_client.clear()
        self._local = threading.local()

    def _call(self, what: str, fn: Callable[[Any], T], timeout: float | None = None) -> T:
        """Run ``fn(client)``, translating transport failures to TritonUnavailable."""
        from tritonclient.utils import InferenceServerException

        try:
            return fn(self._client(timeout or self.timeouts.request_s))
        except InferenceServerException as exc:
            if str(exc.status()) == "403" or "restricted" in str(exc).lower():
                raise InputError(
                    f"Triton at {self.url} refused {what}: its model-repository API is restricted and "
                    "the key is missing or wrong (set TRITONOPS_TRITON_API_KEY)"
                ) from None
            raise  # the server answered; callers decide what that means
        except (OSError, TimeoutError) as exc:
            raise TritonUnavailable(f"Triton at {self.url} did not answer {what}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - gevent raises its own Timeout/ConnectionError types
            if type(exc).__module__.startswith(("gevent", "geventhttpclient")):
                raise TritonUnavailable(f"Triton at {self.url} did not answer {what}: {exc!r}") from exc
            raise

    # --- health ------------------------------------------------------------
    def is_live(self) -> bool:
        from tritonclient.utils import InferenceServerException

        try:
            return bool(self._call("a liveness check", lambda c: c.is_server_live()))
        except InferenceServerException as exc:
            raise TritonUnavailable(f"Triton at {self.url} is not live: {exc}") from exc

    def require_live(self) -> None:
        if not self.is_live():
            raise TritonUnavailable(f"Triton at {self.url} reports it is not live")

    # --- repository --------------------------------------------------------
    def ready_versions(self, model: str) -> list[int]:
        """Versions of ``model`` this replica reports READY (empty if none/unknown)."""
        return sorted(
            int(e["version"])
            for e in self.index(model)
            if e.get("state") == "READY" and str(e.get("version", "")).isdigit()
        )

    def load(self, model: str, config_json: str | None = None) -> None:
        """Explicit load; with ``config_json`` Triton uses it instead of config.pbtxt."""
        from tritonclient.utils import InferenceServerException

        started = time.monotonic()
        try:
            self._call(
                f"the load of {model}",
                lambda c: c.load_model(model, headers=self._headers, config=config_json),
                timeout=self.timeouts.load_s,
            )
        except InferenceServerException as exc:
            reason = _first_line(exc)
            hint = ""
            if "KIND_GPU" in reason and "no GPUs are available" in reason:
                hint = (
                    " -- this replica has no GPU: give CPU replicas a template without KIND_GPU "
                    "(e.g. a per-environment TRITONOPS_MODEL_CONFIG_DIR)"
                )
            raise LoadFailed(f"Triton at {self.url} failed to load {model}: {reason}{hint}") from exc
        log.info("loaded model=%s replica=%s in %.2fs", model, self.url, time.monotonic() - started)

    def model_config(self, model: str) -> dict[str, Any]:
        """The configuration Triton runs ``model`` with (``GET /v2/models/<model>/config``)."""
        config = self._call(
            f"the config of {model}", lambda c: c.get_model_config(model, headers=self._headers)
        )
        return dict(config)

    def index(self, model: str) -> list[dict[str, Any]]:
        """Every entry Triton's repository index has for ``model`` (all versions, all states)."""
        from tritonclient.utils import InferenceServerException

        try:
            entries = self._call(
                "a repository index request",
                lambda c: c.get_model_repository_index(headers=self._headers),
            )
        except InferenceServerException as exc:
            raise TritonUnavailable(f"Triton at {self.url} refused the repository index: {exc}") from exc
        return [dict(e) for e in entries if e.get("name") == model]

    def known(self, model: str) -> bool:
        return bool(self.index(model))

    def wait_settled(self, model: str, timeout_s: float | None = None) -> None:
        """Wait until no version of ``model`` is LOADING or UNLOADING.

        A load request whose client died still completes inside Triton; judging
        what a replica serves before it settles would be judging a moving target.
        """
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeouts.load_s)
        while True:
            busy = [e for e in self.index(model) if e.get("state") in ("LOADING", "UNLOADING")]
            if not busy:
                return
            if time.monotonic() >= deadline:
                raise TritonUnavailable(f"{model} on {self.url} is still {busy[0].get('state')}")
            time.sleep(0.1)

    def unload(self, model: str) -> None:
        from tritonclient.utils import InferenceServerException

        try:
            self._call(
                f"the unload of {model}",
                lambda c: c.unload_model(model, headers=self._headers),
                timeout=self.timeouts.load_s,
            )
        except InferenceServerException as exc:
            raise LoadFailed(f"Triton at {self.url} failed to unload {model}: {_first_line(exc)}") from exc

    def is_version_ready(self, model: str, version: int) -> bool:
        from tritonclient.utils import InferenceServerException

        try:
            return bool(
                self._call(
                    "a readiness check",
                    lambda c: c.is_model_ready(model, str(version)),
                )
            )
        except InferenceServerException:
            return False

    def wait_version_ready(self, model: str, version: int, timeout_s: float | None = None) -> float:
        """Poll ``/v2/models/{model}/versions/{v}/ready``; return seconds waited."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeouts.ready_s)
        started = time.monotonic()
        delay = 0.05
        while True:
            if self.is_version_ready(model, version):
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                raise NotReady(
                    f"{model} version {version} on {self.url} was not ready after "
                    f"{time.monotonic() - started:.1f}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # --- inference ---------------------------------------------------------
    def infer(
        self,
        model: str,
        version: int | None,
        inputs: Mapping[str, Array],
        output_names: list[str],
    ) -> tuple[int, dict[str, tuple[str, Array]]]:
        """Infer; returns (version that answered, {output: (datatype, array)})."""
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        request = []
        for name, array in inputs.items():
            tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array, binary_data=True)
            request.append(tensor)
        outputs = [httpclient.InferRequestedOutput(n, binary_data=True) for n in output_names]
        try:
            result = self._call(
                f"an inference on {model}",
                lambda c: c.infer(
                    model,
                    request,
                    model_version="" if version is None else str(version),
                    outputs=outputs,
                ),
            )
        except InferenceServerException as exc:
            raise SmokeFailed(
                f"inference on {model} version {version or 'default'} at {self.url} failed: "
                f"{_first_line(exc)}"
            ) from exc
        response = result.get_response()
        answered = int(response.get("model_version", version or 0))
        out: dict[str, tuple[str, Array]] = {}
        for meta in response.get("outputs", []):
            array = result.as_numpy(meta["name"])
            out[meta["name"]] = (meta["datatype"], np.asarray(array))
        return answered, out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


DNS_PREFIX = "dns+"


def expand_urls(
    urls: list[str],
    resolve: Callable[[str, int], list[str]] | None = None,
) -> list[str]:
    """Every replica URL: ``dns+http://host:port`` becomes one URL per address ``host`` resolves to.

    That is how a Kubernetes headless Service names every Triton pod: a load
    sent to the normal Service would reach one pod only. Plain URLs are kept as
    they are (``localhost`` may resolve to two addresses of the same server).
    """
    resolve = resolve or _resolve
    out: list[str] = []
    for url in urls:
        if url.startswith(DNS_PREFIX):
            address, ssl = split_url(url.removeprefix(DNS_PREFIX))
            host, port = address.rsplit(":", 1)
            scheme = "https" if ssl else "http"
            found = resolve(host.strip("[]"), int(port))
            if not found:
                raise InputError(f"{url}: {host} resolves to no address; is the headless Service up?")
            expanded = [f"{scheme}://{'[' + ip + ']' if ':' in ip else ip}:{port}" for ip in found]
        else:
            split_url(url)
            expanded = [url]
        out += [u for u in expanded if u not in out]
    return out


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TritonUnavailable(f"cannot resolve {host}: {exc}") from exc
    return sorted({str(info[4][0]) for info in infos})


def replicas_from_urls(
    urls: list[str],
    timeouts: TritonTimeouts | None = None,
    headers: Mapping[str, str] | None = None,
) -> list[TritonReplica]:
    if not urls:
        raise InputError("no Triton URL given; pass --triton-url or set TRITONOPS_TRITON_URL")
    return [TritonReplica(u, timeouts, headers) for u in expand_urls(urls)]
