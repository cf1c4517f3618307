"""The MLflow Model Registry: resolve an alias once, download that exact version.

``mlflow`` is imported lazily: the Argo steps that never talk to the registry
(load, ready, smoke, commit, ...) must start fast and not pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritonops.core.signature import NUMPY_DTYPES, Array, Signature
from tritonops.core.state import Candidate
from tritonops.errors import ArtifactInvalid, InputError, NotFound, RegistryUnavailable

log = logging.getLogger(__name__)

_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


# Registries whose ``models:/`` URIs only MLflow itself can resolve (it does so with the
# registry URI it is given): Unity Catalog, Databricks' and the open-source one.
_DELEGATED_REGISTRY_SCHEMES = ("databricks", "uc")


@dataclass(frozen=True)
class RegistrySettings:
    """Where the registry is. Both URIs are resolved once, at the CLI edge.

    ``registry_uri`` defaults to ``tracking_uri`` (MLflow's own rule); a registry kept
    apart from tracking (Unity Catalog's ``databricks-uc``, a separate server) sets it.
    """

    tracking_uri: str | None = None
    registry_uri: str | None = None
    max_retries: int = 3  # MLflow's own HTTP retry with exponential backoff
    backoff_factor: int = 1
    timeout_s: float = 60.0

    def resolved(self) -> tuple[str, str]:
        """(tracking URI, registry URI); refuses to fall back on MLflow's default store.

        MLflow's default is a store in the current directory (``./mlflow.db``, ``./mlruns``):
        a deploy that silently used it would find no model and leave files behind.
        """
        tracking = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
        if not tracking:
            raise InputError(
                "no MLflow tracking URI: pass --tracking-uri or set MLFLOW_TRACKING_URI "
                "(e.g. http://mlflow:5000)"
            )
        registry = self.registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or tracking
        return tracking, registry


@contextmanager
def _translated(what: str, uri: str | None) -> Iterator[None]:
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        message = str(exc).splitlines()[0] if str(exc) else code
        if code in _NOT_FOUND_CODES:
            raise NotFound(f"{what}: {message}") from exc
        if "Max retries" in str(exc) or "Connection" in str(exc) or "timed out" in str(exc):
            raise RegistryUnavailable(f"MLflow at {uri} is unreachable ({what}): {message}") from exc
        raise RegistryUnavailable(f"MLflow at {uri} failed ({what}): {message}") from exc
    except OSError as exc:
        raise RegistryUnavailable(f"MLflow at {uri} is unreachable ({what}): {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - requests/urllib3/sqlalchemy raise many types
        if type(exc).__module__.split(".")[0] in {"requests", "urllib3", "sqlalchemy", "botocore"}:
            raise RegistryUnavailable(f"MLflow at {uri} is unreachable ({what}): {exc}") from exc
        raise


class MlflowRegistry:
    """Resolve ``model@alias`` to one pinned version, and download its artefact."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        # MLflow reads these at request time; an explicit user setting wins.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.max_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", str(settings.backoff_factor))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.timeout_s)))
        from mlflow import MlflowClient

        self._tracking_uri, self._uri = settings.resolved()
        self._client = MlflowClient(tracking_uri=self._tracking_uri, registry_uri=self._uri)

    def resolve(self, model: str, alias: str) -> Candidate:
        """The version ``alias`` points at now. Called once per run; the result is pinned."""
        with _translated(f"registered model {model!r}", self._uri):
            self._client.get_registered_model(model)
        with _translated(f"alias {alias!r} of model {model!r}", self._uri):
            mv = self._client.get_model_version_by_alias(model, alias)
        candidate = Candidate(
            version=int(mv.version),
            run_id=mv.run_id or None,
            source=str(mv.source),
            alias=alias,
            registry_model=model,
        )
        log.info("resolved model=%s alias=%s -> version=%s source=%s", model, alias, mv.version, mv.source)
        return candidate

    def download(self, candidate: Candidate, dst: Path) -> Path:
        """Download the pinned version's files into ``dst``; return the dir holding model.onnx.

        ``models:/<name>/<version>`` resolves both layouts: MLflow 3 logged models
        (source ``models:/m-...``) and MLflow 2 run artefacts (``runs:/<run>/<path>``).
        MLflow shows a progress bar on a terminal for large files.
        """
        import mlflow.artifacts

        dst.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        name = f"models:/{candidate.registry_model}/{candidate.version}"
        with _translated(f"download of {name}", self._uri), DownloadProgress(dst, f"v{candidate.version}"):
            uri = self._artifact_location(candidate)
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri,
                    dst_path=str(dst),
                    tracking_uri=self._tracking_uri,
                    registry_uri=self._uri,
                )
            )
        size = sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
        log.info(
            "downloaded model=%s version=%s bytes=%d in %.2fs",
            candidate.registry_model,
            candidate.version,
            size,
            time.monotonic() - started,
        )
        return find_model_dir(local)

    def _artifact_location(self, candidate: Candidate) -> str:
        """Where the version's files are, asked of *our* registry and tracking store.

        MLflow resolves a ``models:/<name>/<version>`` URI against its process-wide
        default registry, not the one a client was built with; so the location is
        resolved here, with this client, and MLflow only downloads from it.
        """
        name, version = candidate.registry_model, str(candidate.version)
        if self._uri.split(":", 1)[0].startswith(_DELEGATED_REGISTRY_SCHEMES):
            return f"models:/{name}/{version}"  # MLflow resolves these with the registry URI given
        location = str(self._client.get_model_version_download_uri(name, version))
        if location.startswith("models:/"):  # MLflow 3: a logged model, ``models:/<model id>``
            model_id = location.removeprefix("models:/").strip("/")
            location = str(self._client.get_logged_model(model_id).artifact_location)
        return location

    def tag_version(self, model: str, version: int, tags: dict[str, str]) -> None:
        """Best effort: record the deployment status on the registry version."""
        try:
            with _translated("tagging", self._uri):
                for key, value in tags.items():
                    self._client.set_model_version_tag(model, str(version), key, value)
        except (NotFound, RegistryUnavailable) as exc:
            log.warning("could not tag model=%s version=%s: %s", model, version, exc)


class DownloadProgress:
    """On a terminal, show bytes landed in ``root`` and the rate while a download runs.

    Works for every artifact store because it watches the destination, not the
    transport; silent when stderr is not a terminal (CI, Argo logs).
    """

    def __init__(self, root: Path, label: str, interval_s: float = 0.5, stream: Any = None) -> None:
        self.root, self.label, self.interval_s = root, label, interval_s
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _size(self) -> int:
        total = 0
        for p in self.root.rglob("*"):
            with contextlib.suppress(OSError):
                if p.is_file():
                    total += p.stat().st_size
        return total

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval_s):
            size, elapsed = self._size(), time.monotonic() - started
            rate = size / elapsed / 2**20 if elapsed else 0.0
            self.stream.write(f"\r  downloading {self.label}: {size / 2**20:8.1f} MiB  {rate:6.1f} MiB/s")
            self.stream.flush()

    def __enter__(self) -> DownloadProgress:
        if hasattr(self.stream, "isatty") and self.stream.isatty():
            self._thread = threading.Thread(target=self._run, name="download-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\n")
            self.stream.flush()


def find_model_dir(root: Path) -> Path:
    """The directory that holds the ONNX file, whichever layout was downloaded."""
    mlmodel = root / "MLmodel"
    if mlmodel.is_file():
        import yaml

        flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
        data = (flavors.get("onnx") or {}).get("data")
        if data and (root / data).is_file():
            return _as_model_onnx(root / data).parent
    candidates = sorted(root.rglob("*.onnx"))
    if len(candidates) != 1:
        raise ArtifactInvalid(
            f"expected exactly one .onnx file in the downloaded artefact, found {len(candidates)}"
            + (f": {[str(c.relative_to(root)) for c in candidates]}" if candidates else "")
        )
    return _as_model_onnx(candidates[0]).parent


def _as_model_onnx(path: Path) -> Path:
    """Triton's ONNX backend looks for ``model.onnx``; external data paths are unaffected."""
    return path if path.name == "model.onnx" else path.rename(path.with_name("model.onnx"))


def load_input_example(model_dir: Path, signature: Signature) -> dict[str, Array] | None:
    """The input example MLflow logged with the model, cast to the signature's types."""
    if not (model_dir / "MLmodel").is_file():
        return None
    try:
        from mlflow.models import Model

        model = Model.load(str(model_dir))
        if not model.saved_input_example_info:
            return None
        example: Any = model.load_input_example(str(model_dir))
    except Exception as exc:  # noqa: BLE001 - a broken example must not block a deploy: we synthesize
        log.warning("ignoring unreadable input example in %s: %s", model_dir, exc)
        return None
    if example is None:
        return None
    if isinstance(example, np.ndarray):
        if len(signature.inputs) != 1:
            return None
        example = {signature.inputs[0].name: example}
    if hasattr(example, "to_dict") and not isinstance(example, dict):
        return None  # DataFrames do not map onto tensors reliably; synthesize instead
    out: dict[str, Array] = {}
    for spec in signature.inputs:
        if spec.name not in example:
            return None
        out[spec.name] = np.asarray(example[spec.name]).astype(NUMPY_DTYPES[spec.datatype])
    return out
