"""ONNX artefact checks on real files (fast: small models in a temp dir)."""

from pathlib import Path

import onnx
import pytest

from tritonops.adapters.onnx_artifact import checksums, inspect
from tritonops.errors import ArtifactInvalid
from tritonops.local.samples import linear_model


def _save(tmp_path: Path, model: onnx.ModelProto, external: bool = False) -> Path:
    d = tmp_path / "v"
    d.mkdir()
    onnx.save(
        model,
        str(d / "model.onnx"),
        save_as_external_data=external,
        location="weights.data",
        size_threshold=0,
    )
    return d


def test_signature_of_a_batchable_model(tmp_path: Path) -> None:
    sig = inspect(_save(tmp_path, linear_model()))
    assert [(t.name, t.datatype, t.dims) for t in sig.inputs] == [("features", "FP32", (-1, 4))]
    assert [(t.name, t.datatype, t.dims) for t in sig.outputs] == [("probabilities", "FP32", (-1, 2))]
    assert sig.batchable


def test_external_data_is_checked(tmp_path: Path) -> None:
    d = _save(tmp_path, linear_model(extra_weights=1000), external=True)
    assert inspect(d).inputs[0].name == "features"
    assert set(checksums(d)) == {"model.onnx", "weights.data"}
    data = d / "weights.data"
    data.write_bytes(data.read_bytes()[:100])  # truncated download
    with pytest.raises(ArtifactInvalid, match="has 100 bytes"):
        inspect(d)
    data.unlink()
    with pytest.raises(ArtifactInvalid, match="missing"):
        inspect(d)


def test_not_onnx(tmp_path: Path) -> None:
    d = tmp_path / "v"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"\x00garbage, not a protobuf" * 10)
    with pytest.raises(ArtifactInvalid):
        inspect(d)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactInvalid, match="does not exist"):
        inspect(tmp_path)


def test_external_data_outside_the_directory_is_refused(tmp_path: Path) -> None:
    d = _save(tmp_path, linear_model(extra_weights=1000), external=True)
    model = onnx.load(str(d / "model.onnx"), load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    onnx.save(model, str(d / "model.onnx"))
    with pytest.raises(ArtifactInvalid, match="outside the model directory"):
        inspect(d)


@pytest.mark.parametrize("offset", ["x12", "-5"])
def test_malformed_external_data_offset_is_an_invalid_artifact(tmp_path: Path, offset: str) -> None:
    d = _save(tmp_path, linear_model(extra_weights=1000), external=True)
    model = onnx.load(str(d / "model.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "offset":
                entry.value = offset
    (d / "model.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ArtifactInvalid, match="external-data offset"):
        inspect(d)
