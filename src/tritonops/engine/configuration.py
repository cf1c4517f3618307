"""Which Triton configuration a run deploys: gather the sources, compose them, compare.

The composition rules (precedence, owned fields, shapes) are pure and live in
:mod:`tritonops.core.config`; this module finds the sources on disk: the operator's template
(``--model-config FILE`` or ``$TRITONOPS_MODEL_CONFIG_DIR/<model>.pbtxt``) and the artefact's own
``config.pbtxt``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tritonops.core import config as cfg
from tritonops.core.config import ConfigSource, ModelConfig
from tritonops.core.signature import Signature
from tritonops.core.state import Current
from tritonops.engine.settings import Settings
from tritonops.errors import ArtifactInvalid, ConfigInvalid

log = logging.getLogger(__name__)

ARTIFACT_CONFIG = "config.pbtxt"  # the artefact's own config, kept beside model.onnx
_MAX_TEMPLATE_BYTES = 1 << 20


def template_path(settings: Settings, model: str) -> Path | None:
    """The operator's template for ``model``: the explicit file, else ``<dir>/<model>.pbtxt``."""
    if settings.model_config is not None:
        return settings.model_config
    if settings.model_config_dir is not None:
        path = settings.model_config_dir / f"{model}.pbtxt"
        return path if path.is_file() else None
    return None


def operator_template(settings: Settings, model: str) -> ConfigSource | None:
    """Read and parse the operator's template now, so that a bad one changes nothing (exit 2)."""
    path = template_path(settings, model)
    if path is None:
        return None
    try:
        if path.stat().st_size > _MAX_TEMPLATE_BYTES:
            raise ConfigInvalid(f"{path}: larger than {_MAX_TEMPLATE_BYTES} bytes; not a model config")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigInvalid(f"model config template {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid(f"model config template {path} cannot be read: {exc}") from exc
    source = ConfigSource(text, str(path), operator=True)
    source.parse()
    return source


def artifact_config(version_dir: Path, settings: Settings) -> ConfigSource | None:
    """The artefact's own ``config.pbtxt``, kept beside its model.onnx (see ``adopt_artifact_config``)."""
    path = version_dir / ARTIFACT_CONFIG
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactInvalid(f"the artefact's {ARTIFACT_CONFIG} cannot be read: {exc}") from exc
    return ConfigSource(
        text, f"the artefact's {ARTIFACT_CONFIG}", operator=False, allowed=settings.artifact_fields
    )


def adopt_artifact_config(download_root: Path, model_dir: Path) -> None:
    """Keep the artefact's ``config.pbtxt`` beside model.onnx, whichever layout it came in.

    NVIDIA's plugin layout is a Triton model directory (``config.pbtxt`` + ``<n>/model.onnx``),
    so the config may sit one level above the ONNX file. Triton ignores it inside a version
    directory; tritonops reads it from there for every later run of the same version.
    """
    if (model_dir / ARTIFACT_CONFIG).is_file():
        return
    parent = model_dir.parent
    above = parent / ARTIFACT_CONFIG
    root = download_root.resolve()
    if above.is_file() and (parent.resolve() == root or root in parent.resolve().parents):
        above.rename(model_dir / ARTIFACT_CONFIG)


def compose(settings: Settings, model: str, signature: Signature, version_dir: Path) -> ModelConfig:
    """The effective config of the version in ``version_dir`` under the current settings."""
    sources = [s for s in (artifact_config(version_dir, settings), operator_template(settings, model)) if s]
    config = cfg.effective_config(model, signature, sources, settings.max_batch_size)
    log.info(
        "model=%s config from %s: %s",
        model,
        " + ".join(["ONNX signature", *(s.where for s in sources)]),
        cfg.digest(config),
    )
    return config


def committed_config(current: Current | None, committed_pbtxt: str | None) -> ModelConfig | None:
    """The config production runs: from current.json, else parsed from config.pbtxt."""
    if current is None:
        return None
    if current.config is not None:
        return cfg.from_dict(current.config, "current.json")
    if committed_pbtxt:
        return cfg.parse_pbtxt(committed_pbtxt, "config.pbtxt")
    return cfg.derive_defaults(current.model, current.signature, current.max_batch_size)
