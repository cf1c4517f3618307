"""The MLflow Model Registry: resolve an alias once, download that exact version.

``mlflow`` is imported lazily: the Argo steps that never talk to the registry
(load, ready, smoke, commit, ...) must start fast and not pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritonops.core.limits import ArtifactLimits
from tritonops.core.signature import DYNAMIC, FLOAT_TYPES, NUMPY_DTYPES, Array, Signature, TensorSpec
from tritonops.core.state import Candidate
from tritonops.errors import (
    ArtifactInvalid,
    ArtifactTooLarge,
    CredentialsRefused,
    InputError,
    NotFound,
    RegistryUnavailable,
    TritonOpsError,
    UnsafeArtifact,
)

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


# Environment variables whose values are secrets: never echoed, whatever a library put them in.
_SECRET_ENV = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
    "TRITONOPS_TRITON_API_KEY",
)
_USERINFO = re.compile(r"(?<=://)[^/\s@'\"]+@")
_AUTH_HEADER = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{6,}")
_AUTH_CODES = {"UNAUTHENTICATED": 401, "CUSTOMER_UNAUTHORIZED": 401, "PERMISSION_DENIED": 403}
# botocore's error codes for credentials S3 does not accept (moto, MinIO and AWS agree on these).
_S3_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}
# How a refusal reads once MLflow has folded it into a message (its download aggregates
# per-file failures into one MlflowException whose text is all that is left of them).
_HTTP_AUTH_TEXT = re.compile(r"\b(401|403)\b(?: Client Error|\s*!=)|error code (401|403)\b")
_S3_AUTH_TEXT = re.compile(r"An error occurred \((" + "|".join(sorted(_S3_AUTH_CODES)) + r")\)")
_UNREACHABLE_TEXT = re.compile(
    r"Max retries|Connection|connect to|timed out|Timeout|IncompleteRead|ResponseStreamingError"
    r"|endpoint URL|Remote end closed|Broken pipe|Temporary failure in name resolution",
    re.IGNORECASE,
)
_TRANSPORT_MODULES = {"requests", "urllib3", "sqlalchemy", "botocore", "s3transfer", "http"}


def scrub(text: str) -> str:
    """``text`` without credentials: URL userinfo, Authorization values, secret env values.

    MLflow accepts ``http://user:password@host`` as a tracking URI and echoes request URLs
    in its errors; requests echoes them too. Whatever the library, the message we pass on
    (stderr, journal, history) must not carry a secret.
    """
    text = _USERINFO.sub("***@", text)
    text = _AUTH_HEADER.sub(r"\1 ***", text)
    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value:
            text = text.replace(value, "***")
    return text


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or during, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status an auth refusal came back with, however MLflow or requests wrapped it."""
    for e in _chain(exc):
        code = _AUTH_CODES.get(str(getattr(e, "error_code", "")))
        if code:
            return code
        response = getattr(e, "response", None)
        status = getattr(response, "status_code", None)  # requests.HTTPError
        if status in (401, 403):
            return int(status)
    found = _HTTP_AUTH_TEXT.search(str(exc))
    return int(found.group(1) or found.group(2)) if found else None


def _s3_auth_code(exc: BaseException) -> str | None:
    for e in _chain(exc):
        response = getattr(e, "response", None)
        if isinstance(response, dict):  # botocore.exceptions.ClientError
            code = str(response.get("Error", {}).get("Code", ""))
            if code in _S3_AUTH_CODES:
                return code
    found = _S3_AUTH_TEXT.search(str(exc))
    return found.group(1) if found else None


def _reason(exc: BaseException) -> str:
    """One line saying what went wrong: the first per-file failure of an aggregated download."""
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("##### File") and i + 1 < len(lines):
            return f"{line.strip('# ')}: {lines[i + 1]}"[:400]
    return (lines[0] if lines else type(exc).__name__)[:400]


def _store_label(store: str) -> str:
    """An artifact location as operators know it; S3 with the endpoint clients are sent to."""
    label = f"the artifact store {store}"
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    if store.startswith("s3://") and endpoint:
        label += f" (endpoint {endpoint})"
    return label


def _is_direct_store(store: str | None) -> bool:
    """Artefacts the client fetches itself (S3, GCS, ...), not through the MLflow server."""
    if not store or "://" not in store:
        return False
    return store.split(":", 1)[0] not in {"http", "https", "mlflow-artifacts", "models", "runs", "file"}


def translate(exc: BaseException, what: str, uri: str, store: str | None = None) -> TritonOpsError | None:
    """Our error for a third-party one raised while ``what`` was done with MLflow at ``uri``.

    ``store`` is the artifact location being downloaded, when one is: failures of a store
    the client reaches directly (S3) are named as the store's, not MLflow's. ``None`` for
    an exception that is not a registry or transport failure (a bug: let it surface).
    Every message is scrubbed of credentials.
    """
    if isinstance(exc, TritonOpsError):
        return None
    from mlflow.exceptions import MlflowException

    where = scrub(uri)
    reason = scrub(_reason(exc))
    s3_code = _s3_auth_code(exc)
    if s3_code is not None:
        target = _store_label(store) if store else "the artifact store"
        return CredentialsRefused(
            scrub(
                f"{target} refused the credentials ({s3_code}) ({what}): check AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY (or the workload's IAM role) and its access to the bucket"
            )
        )
    status = _http_status(exc)
    if status == 401:
        return CredentialsRefused(
            f"MLflow at {where} refused the credentials (HTTP 401) ({what}): "
            "check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
        )
    if status == 403:
        return CredentialsRefused(
            f"MLflow at {where} denied access (HTTP 403) ({what}): the MLflow user "
            "(MLFLOW_TRACKING_USERNAME) needs READ permission on the model and its experiment"
        )
    code = str(getattr(exc, "error_code", ""))
    if isinstance(exc, MlflowException) and code in _NOT_FOUND_CODES:
        return NotFound(f"{what}: {reason}")
    local = next((e for e in _chain(exc) if isinstance(e, OSError) and e.filename), None)
    if local is not None:  # the staging dir, not the network (disk full, permissions)
        return RegistryUnavailable(scrub(f"could not write the files of {what}: {local}"))
    transport = any(
        isinstance(e, OSError) or type(e).__module__.split(".")[0] in _TRANSPORT_MODULES for e in _chain(exc)
    )
    if not transport and not isinstance(exc, MlflowException):
        return None
    unreachable = transport or bool(_UNREACHABLE_TEXT.search(str(exc)))
    if store is not None and _is_direct_store(store) and unreachable:
        return RegistryUnavailable(scrub(f"{_store_label(store)} is unreachable ({what}): {reason}"))
    if unreachable:
        return RegistryUnavailable(f"MLflow at {where} is unreachable ({what}): {reason}")
    return RegistryUnavailable(f"MLflow at {where} failed ({what}): {reason}")


@contextmanager
def _translated(what: str, uri: str, store: str | None = None) -> Iterator[None]:
    """Registry and transport errors raised inside become ours (see :func:`translate`)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - MLflow, requests, urllib3, botocore, sqlalchemy raise many types
        ours = translate(exc, what, uri, store)
        if ours is None:
            raise
        raise ours from exc


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

    def download(self, candidate: Candidate, dst: Path, limits: ArtifactLimits | None = None) -> Path:
        """Download the pinned version's files into ``dst``; return the dir holding model.onnx.

        ``models:/<name>/<version>`` resolves both layouts: MLflow 3 logged models
        (source ``models:/m-...``) and MLflow 2 run artefacts (``runs:/<run>/<path>``).
        MLflow shows a progress bar on a terminal for large files.

        ``limits``: the store's listing is checked first (size, file count, the volume's free
        space: :class:`ArtifactTooLarge`, nothing downloaded), then the files as they land; an
        artefact found over the limit is deleted from ``dst`` at once.
        """
        import mlflow.artifacts

        limits = limits or ArtifactLimits()
        dst.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        name = f"models:/{candidate.registry_model}/{candidate.version}"
        with _translated(f"location of {name}", self._uri):
            uri = self._artifact_location(candidate)
        with _translated(f"listing of {name}", self._uri, store=uri):
            listed_bytes, listed_files = self._listing(uri, limits)
        refused = limits.exceeded(listed_bytes, listed_files) or limits.no_room(
            listed_bytes, shutil.disk_usage(dst).free
        )
        if refused:
            shutil.rmtree(dst, ignore_errors=True)  # nothing of it stays, not even an empty dir
            raise ArtifactTooLarge(
                f"version {candidate.version} of {candidate.registry_model!r}: {refused}; not downloaded"
            )
        watch = DownloadProgress(dst, f"v{candidate.version}", limits=limits)
        try:
            with _translated(f"download of {name}", self._uri, store=uri), watch:
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=uri,
                        dst_path=str(dst),
                        tracking_uri=self._tracking_uri,
                        registry_uri=self._uri,
                    )
                )
        except Exception:
            if watch.exceeded is None:
                raise  # a failed download; one we cut short for its size is refused below
        landed = watch.measure()
        over = watch.exceeded or limits.exceeded(*landed)
        if over:
            shutil.rmtree(dst, ignore_errors=True)
            raise ArtifactTooLarge(
                f"version {candidate.version} of {candidate.registry_model!r} grew past its listing while "
                f"downloading: {over}; its files were deleted"
            )
        size = landed[0]
        log.info(
            "downloaded model=%s version=%s bytes=%d in %.3fs",
            candidate.registry_model,
            candidate.version,
            size,
            time.monotonic() - started,
        )
        return find_model_dir(local)

    def _listing(self, uri: str, limits: ArtifactLimits) -> tuple[int, int]:
        """Bytes and files under ``uri`` as the store lists them (a file of unknown size counts
        0 bytes: the download's own check catches it). Stops listing past the file limit."""
        import mlflow.artifacts

        total, count, pending = 0, 0, [uri.rstrip("/")]
        while pending:
            here = pending.pop()
            for info in mlflow.artifacts.list_artifacts(artifact_uri=here, tracking_uri=self._tracking_uri):
                child = f"{here}/{info.path.rstrip('/').rsplit('/', 1)[-1]}"
                if info.is_dir:
                    pending.append(child)
                else:
                    total += int(info.file_size or 0)
                count += 1
                if count > limits.max_files:
                    return total, count
        return total, count

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
            with _translated(f"tagging version {version} of {model!r}", self._uri):
                for key, value in tags.items():
                    self._client.set_model_version_tag(model, str(version), key, value)
        except (InputError, RegistryUnavailable) as exc:  # NotFound, CredentialsRefused (a READ-only user)
            log.warning("could not tag model=%s version=%s: %s", model, version, exc)


class DownloadProgress:
    """On a terminal, show bytes landed in ``root`` and the rate while a download runs.

    Works for every artifact store because it watches the destination, not the
    transport; silent when stderr is not a terminal (CI, Argo logs).
    """

    def __init__(
        self,
        root: Path,
        label: str,
        interval_s: float = 0.5,
        stream: Any = None,
        limits: ArtifactLimits | None = None,
    ) -> None:
        self.root, self.label, self.interval_s = root, label, interval_s
        self.stream = stream or sys.stderr
        self.limits = limits
        self.exceeded: str | None = None  # why the files that landed are over ``limits``
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def measure(self) -> tuple[int, int]:
        """Bytes and files under ``root`` now."""
        total = count = 0
        for p in self.root.rglob("*"):
            with contextlib.suppress(OSError):
                if p.is_file():
                    total += p.stat().st_size
                    count += 1
        return total, count

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval_s):
            size, count = self.measure()
            if self.limits is not None and self.exceeded is None:
                self.exceeded = self.limits.exceeded(size, count)
                if self.exceeded:
                    # The store sent more than it listed: free the volume now (bytes still being
                    # written to an open file are freed when MLflow closes it).
                    log.error(
                        "download of %s over the limit: %s; deleting what landed", self.label, self.exceeded
                    )
                    shutil.rmtree(self.root, ignore_errors=True)
            if self._tty:
                elapsed = time.monotonic() - started
                rate = size / elapsed / 2**20 if elapsed else 0.0
                self.stream.write(f"\r  downloading {self.label}: {size / 2**20:8.1f} MiB  {rate:6.1f} MiB/s")
                self.stream.flush()

    def __enter__(self) -> DownloadProgress:
        if self._tty or self.limits is not None:
            self._thread = threading.Thread(target=self._run, name="download-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            if self._tty:
                self.stream.write("\n")
                self.stream.flush()


def _inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved, if it stays inside ``root``; an artefact must never name anything else."""
    base = root.resolve()
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafeArtifact(
            f"the artefact's {what} points outside its download directory ({path} -> {resolved}); "
            "nothing was moved"
        )
    return resolved


def mlmodel_paths(root: Path) -> dict[str, Path]:
    """The files ``root/MLmodel`` names that tritonops reads, each confined to ``root``.

    ``flavors.onnx.data`` (the ONNX file) and ``saved_input_example_info.artifact_path`` (the
    smoke input): a ``../`` or absolute path is :class:`UnsafeArtifact` (exit 2), never opened.
    """
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        return {}
    import yaml

    try:
        meta = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ArtifactInvalid(f"the artefact's MLmodel is not YAML ({type(exc).__name__})") from None
    if not isinstance(meta, dict):
        raise ArtifactInvalid("the artefact's MLmodel is not a YAML mapping")
    named = {
        "flavors.onnx.data": ((meta.get("flavors") or {}).get("onnx") or {}).get("data"),
        "saved_input_example_info.artifact_path": (meta.get("saved_input_example_info") or {}).get(
            "artifact_path"
        ),
    }
    return {
        key: _inside(root, root / str(value), f"MLmodel {key} {str(value)[:200]!r}")
        for key, value in named.items()
        if value
    }


def find_model_dir(root: Path) -> Path:
    """The directory that holds the ONNX file, whichever layout was downloaded.

    Every path the artefact names (MLmodel's ``flavors.onnx.data``, symlinks among its files)
    must stay inside ``root``: a crafted MLmodel must not make tritonops rename another file.
    """
    for path in root.rglob("*"):
        if path.is_symlink():
            _inside(root, path, f"symlink {path.relative_to(root)}")
    paths = mlmodel_paths(root)
    data = paths.get("flavors.onnx.data")
    if data is not None and data.is_file():
        return _as_model_onnx(data).parent
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
    """The input example MLflow logged with the model, cast to the signature's types.

    Arrays come back in the ONNX model's shapes (the engine reshapes them to the dims
    clients send). ``None`` (the caller synthesizes an input) when there is no example or
    it does not fit the signature; why is logged.
    """
    if not (model_dir / "MLmodel").is_file():
        return None
    mlmodel_paths(model_dir)  # an example outside the artefact: UnsafeArtifact, never read
    try:
        from mlflow.models import Model

        model = Model.load(str(model_dir))
        if not model.saved_input_example_info:
            return None
        example: Any = model.load_input_example(str(model_dir))
    except Exception as exc:  # noqa: BLE001 - a broken example must not block a deploy: we synthesize
        # The exception's type only: its text may quote the file's content.
        log.warning("ignoring unreadable input example in %s (%s)", model_dir, type(exc).__name__)
        return None
    if example is None:
        return None
    if _is_frame(example):
        arrays, why = frame_to_inputs(example, signature)
        if arrays is None:
            log.warning("input example in %s not used (an input is synthesized): %s", model_dir, why)
        else:
            log.info("input example in %s: a table mapped onto the inputs (%s)", model_dir, why)
        return arrays
    if isinstance(example, np.ndarray):
        if len(signature.inputs) != 1:
            return None
        example = {signature.inputs[0].name: example}
    out: dict[str, Array] = {}
    for spec in signature.inputs:
        if spec.name not in example:
            return None
        out[spec.name] = np.asarray(example[spec.name]).astype(NUMPY_DTYPES[spec.datatype])
    return out


def _is_frame(value: Any) -> bool:
    """A pandas DataFrame, recognised without importing pandas (MLflow brings it)."""
    return hasattr(value, "columns") and hasattr(value, "to_numpy") and hasattr(value, "iloc")


def frame_to_inputs(frame: Any, signature: Signature) -> tuple[dict[str, Array] | None, str]:
    """Map a tabular input example onto the model's tensors: (arrays or None, why).

    * every input named by a column: one input per column, a row per example
      (cells that are lists become the inner dims);
    * else a single input ``[N, k]``: the frame's ``k`` columns in order;
    * else it does not map, and the reason says why.

    Values are cast to the signature's dtypes; shapes must fit its fixed dims.
    """
    columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        return None, "the table has no rows"
    names = [spec.name for spec in signature.inputs]
    try:
        if names and set(names) <= set(columns):
            arrays = {}
            for spec in signature.inputs:
                arrays[spec.name] = _fit(np.asarray(frame[spec.name].tolist()), spec)
            return arrays, f"columns {names} by name"
        if len(signature.inputs) == 1:
            spec = signature.inputs[0]
            width = spec.dims[1] if len(spec.dims) == 2 else None
            if width is None:
                return None, f"input {spec.name!r} has dims {list(spec.dims)}, not [N, k]; columns {columns}"
            if width not in (DYNAMIC, len(columns)):
                return (
                    None,
                    f"input {spec.name!r} takes {width} features, the table has {len(columns)} columns",
                )
            return {
                spec.name: _fit(frame.to_numpy(), spec)
            }, f"{len(columns)} columns in order -> {spec.name!r}"
        missing = sorted(set(names) - set(columns))
        return None, f"inputs {missing} are not columns of the table (columns: {columns})"
    except (TypeError, ValueError) as exc:
        return None, str(exc)


def _fit(values: Array, spec: TensorSpec) -> Array:
    """``values`` cast to ``spec``'s dtype and, when it lacks a trailing 1-dim, given one."""
    if values.ndim == len(spec.dims) - 1 and spec.dims[-1] == 1:
        values = values[..., np.newaxis]
    if values.ndim != len(spec.dims) or any(
        want not in (DYNAMIC, got) for want, got in zip(spec.dims, values.shape, strict=True)
    ):
        raise ValueError(
            f"input {spec.name!r} needs dims {list(spec.dims)}, the table gives {list(values.shape)}"
        )
    dtype = NUMPY_DTYPES[spec.datatype]
    if values.dtype.kind in "fc" and spec.datatype not in FLOAT_TYPES and not np.isfinite(values).all():
        raise ValueError(f"input {spec.name!r} is {spec.datatype}; the table has missing or infinite values")
    if dtype == "object":
        return values.astype(object)
    try:
        return values.astype(dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"input {spec.name!r} is {spec.datatype}; the table's values are not: {exc}"
        ) from exc
