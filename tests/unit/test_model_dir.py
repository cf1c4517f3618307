"""Finding the ONNX file in a downloaded artefact: no path the artefact names may leave it."""

from pathlib import Path

import pytest

from tritonops.adapters.registry import find_model_dir
from tritonops.errors import UnsafeArtifact


def _artefact(tmp_path: Path, data: str) -> tuple[Path, Path]:
    victim = tmp_path / "models" / "other" / "current.json"
    victim.parent.mkdir(parents=True)
    victim.write_text('{"active_version": 3}')
    root = tmp_path / "staging" / "run" / "model"
    root.mkdir(parents=True)
    (root / "model.onnx").write_bytes(b"onnx")
    (root / "MLmodel").write_text(f"flavors:\n  onnx:\n    data: {data}\n")
    return root, victim


@pytest.mark.parametrize("data", ["../../../models/other/current.json", "{victim}"])
def test_mlmodel_data_outside_the_download_is_refused_and_nothing_moves(tmp_path: Path, data: str) -> None:
    root, victim = _artefact(tmp_path, data)
    if data == "{victim}":
        (root / "MLmodel").write_text(f"flavors:\n  onnx:\n    data: {victim}\n")
    with pytest.raises(UnsafeArtifact, match="outside its download directory"):
        find_model_dir(root)
    assert victim.read_text() == '{"active_version": 3}'
    assert not (victim.parent / "model.onnx").exists()


def test_symlink_out_of_the_download_is_refused(tmp_path: Path) -> None:
    root, victim = _artefact(tmp_path, "model.onnx")
    (root / "weights.data").symlink_to(victim)
    with pytest.raises(UnsafeArtifact, match="symlink weights.data"):
        find_model_dir(root)


def test_mlmodel_data_inside_is_used(tmp_path: Path) -> None:
    root, _ = _artefact(tmp_path, "model.onnx")
    assert find_model_dir(root) == root


@pytest.mark.parametrize("where", ["../../../secret.json", "{absolute}"])
def test_an_input_example_outside_the_download_is_refused_and_never_read(tmp_path: Path, where: str) -> None:
    from tritonops.adapters.registry import load_input_example
    from tritonops.core.signature import Signature, TensorSpec

    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    root, _ = _artefact(tmp_path, "model.onnx")
    path = str(secret) if where == "{absolute}" else where
    (root / "MLmodel").write_text(
        "flavors:\n  onnx:\n    data: model.onnx\nsaved_input_example_info:\n"
        f"  artifact_path: {path}\n  type: json_object\n"
    )
    with pytest.raises(UnsafeArtifact, match="saved_input_example_info.artifact_path") as caught:
        find_model_dir(root)
    assert "hunter2" not in str(caught.value)
    signature = Signature((TensorSpec("features", "FP32", (-1, 4)),), (TensorSpec("y", "FP32", (-1, 1)),))
    with pytest.raises(UnsafeArtifact):
        load_input_example(root, signature)
