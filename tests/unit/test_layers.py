"""Imports go one way: cli -> engine -> core, with adapters at the edge (design.md)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tritonops"

ALLOWED = {
    "core": {"core", "errors"},
    "adapters": {"adapters", "core", "errors"},
    "engine": {"engine", "adapters", "core", "errors"},
    "local": {"local", "adapters", "core", "errors"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tritonops."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("tritonops."))
    return out


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_below(layer: str) -> None:
    for path in (SRC / layer).rglob("*.py"):
        bad = _imports(path) - ALLOWED[layer]
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


# Triton's model-config schema: generated protobuf messages, data only (core/config.py).
SCHEMA_MODULES = {"tritonclient.grpc.model_config_pb2"}


def test_core_does_no_io_imports() -> None:
    forbidden = {
        "requests",
        "mlflow",
        "tritonclient",
        "onnx",
        "onnxruntime",
        "subprocess",
        "socket",
        "shutil",
    }
    for path in (SRC / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {
            n.module.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom)
            and n.module
            and not {f"{n.module}.{a.name}" for a in n.names} <= SCHEMA_MODULES
        }
        assert not names & forbidden, f"{path.name} imports {sorted(names & forbidden)}"


def test_the_import_reader_sees_imports() -> None:
    assert {"adapters", "core", "engine", "errors"} <= _imports(SRC / "engine" / "deployer.py")
