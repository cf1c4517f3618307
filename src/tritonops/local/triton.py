"""Launch a real Triton Inference Server from the ``nvidia-pytriton`` wheel.

The wheel ships ``tritonserver``, ``libtritonserver`` and the Python backend,
but no native ONNX Runtime backend. We assemble a backend directory we own:

    <backend-dir>/python/        libtriton_python.so, triton_python_backend_utils.py,
                                 triton_python_backend_stub (for this Python)
    <backend-dir>/onnxruntime/   model.py — the shim in ``backend/onnxruntime_model.py``

The copied libraries find their bundled dependencies through an RPATH relative
to their original location, so ``LD_LIBRARY_PATH`` points at the wheel's
``nvidia_pytriton.libs`` (and at the directory holding ``libpython3.X.so``,
which the stub links). The stub imports packages from this interpreter's
environment, which must hold numpy < 2.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from tritonops.errors import InputError

log = logging.getLogger(__name__)

_SHIM = Path(__file__).with_name("backend") / "onnxruntime_model.py"


@dataclass(frozen=True)
class TritonLaunch:
    """Ports and options of one local Triton replica."""

    repo: Path
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    backend_dir: Path | None = None
    restricted_api: str | None = None  # "<header>=<value>" for the model-repository API
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    # Loopback unless asked otherwise: Triton's own default is every interface, and this 2.51
    # predates NVIDIA's August 2025 security fixes (README, Security).
    address: str = "127.0.0.1"


# What only the key's holders may use: loading and unloading models, and changing log and trace
# settings (an open /v2/logging lets anyone raise the log level or point it elsewhere). Triton
# takes the key only on its command line: it has no file or environment option for it.
RESTRICTED = "model-repository,logging,trace"


def _wheel_root() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the nvidia-pytriton wheel is not installed; `pip install 'tritonops[local]'` "
            "(or `make demo`) installs the tritonserver binary it ships"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def default_backend_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tritonops" / "triton-backends"


def assemble_backends(target: Path | None = None) -> Path:
    """Build (or refresh) the backend directory; returns its path.

    Rebuilt only when the shim or the wheel's files change, and swapped in by
    rename so a running Triton never sees a half-copied backend.
    """
    root = _wheel_root() / "tritonserver"
    python_be = root / "backends" / "python"
    stub = root / "python_backend_stubs" / _python_tag() / "triton_python_backend_stub"
    sources = {
        "python/libtriton_python.so": python_be / "libtriton_python.so",
        "python/triton_python_backend_utils.py": python_be / "triton_python_backend_utils.py",
        "python/triton_python_backend_stub": stub,
        "onnxruntime/model.py": _SHIM,
    }
    for src in sources.values():
        if not src.is_file():
            raise InputError(
                f"{src} is missing; the nvidia-pytriton wheel does not fit Python {_python_tag()}"
            )
    digest = hashlib.sha256()
    for rel, src in sorted(sources.items()):
        digest.update(rel.encode())
        digest.update(src.read_bytes())
    stamp = digest.hexdigest()[:16]
    target = target or default_backend_dir()
    marker = target / ".tritonops-stamp"
    if marker.is_file() and marker.read_text() == stamp:
        return target
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, src in sources.items():
        dst = tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    (tmp / "python" / "triton_python_backend_stub").chmod(0o755)
    (tmp / ".tritonops-stamp").write_text(stamp)
    old = target.with_name(f"{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    log.info("assembled Triton backends in %s", target)
    return target


def committed_models(repo: Path) -> list[str]:
    """Models that have a ``current.json``: Triton loads exactly these at start."""
    if not repo.is_dir():
        return []
    return sorted(p.parent.name for p in repo.glob("*/current.json") if p.is_file())


def command(launch: TritonLaunch) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start Triton for ``launch``."""
    root = _wheel_root()
    binary = root / "tritonserver" / "bin" / "tritonserver"
    backend_dir = assemble_backends(launch.backend_dir)
    argv = [
        str(binary),
        f"--model-repository={launch.repo}",
        "--model-control-mode=explicit",
        f"--backend-directory={backend_dir}",
        f"--http-address={launch.address}",
        f"--grpc-address={launch.address}",
        f"--metrics-address={launch.address}",
        f"--http-port={launch.http_port}",
        f"--grpc-port={launch.grpc_port}",
        f"--metrics-port={launch.metrics_port}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        "--metrics-config=summary_latencies=true",
        # One model that fails to load at start must not take the others down.
        "--exit-on-error=false",
        "--strict-readiness=false",
        "--log-verbose=0",
    ]
    argv += [f"--load-model={m}" for m in committed_models(launch.repo)]
    if launch.restricted_api:
        # Both protocols: an open gRPC port would bypass a locked HTTP API.
        argv.append(f"--http-restricted-api={RESTRICTED}:{launch.restricted_api}")
        argv.append(f"--grpc-restricted-protocol={RESTRICTED}:{launch.restricted_api}")
    argv += list(launch.extra_args)

    env = dict(os.environ)
    libs = [str(root.parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR") or ""]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in libs if p)
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    if env.get("PYTHONPATH"):
        paths[env["PYTHONPATH"]] = None
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # The stub's embedded interpreter finds its prefix through the first
    # `python3` on PATH: put this environment's first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return argv, env


def redact(argv: list[str]) -> list[str]:
    """argv for logs: the restricted-API key never appears."""
    secret = ("--http-restricted-api", "--grpc-restricted-protocol")
    return [a.split("=", 1)[0] + "=<redacted>" if a.startswith(secret) else a for a in argv]
