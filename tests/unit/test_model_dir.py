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
