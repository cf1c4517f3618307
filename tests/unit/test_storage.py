"""The volume primitives: atomic writes, the cross-process lock, quarantine."""

import multiprocessing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tritonops.adapters import files
from tritonops.adapters.storage import ModelRepository, StateStore
from tritonops.errors import Busy, CorruptState, InputError


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "m" / "current.json"
    files.atomic_write_json(target, {"active_version": 1})
    files.atomic_write_json(target, {"active_version": 2})
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in target.parent.iterdir()] == ["current.json"]


def _hold(root: str, ready, release) -> None:  # type: ignore[no-untyped-def]
    with StateStore(Path(root)).lock("fraud", "holder"):
        ready.set()
        release.wait(10)


def test_lock_refuses_a_second_holder_in_another_process(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), ready, release))
    proc.start()
    try:
        assert ready.wait(20)
        with pytest.raises(Busy, match="run holder"), StateStore(tmp_path).lock("fraud", "second"):
            pass
        with StateStore(tmp_path).lock("other-model", "third"):  # other models are not blocked
            pass
    finally:
        release.set()
        proc.join(10)
    with StateStore(tmp_path).lock("fraud", "after"):  # released when the holder exits
        pass


def test_quarantine_never_overwrites(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    paths = []
    for _ in range(2):
        src = tmp_path / "v"
        src.mkdir()
        (src / "model.onnx").write_bytes(b"x")
        paths.append(store.quarantine(src, "fraud", 3, moment, {"why": "test"}))
    assert paths[0].name == "3.failed_20260101T000000"
    assert paths[1].name == "3.failed_20260101T000000-1"
    assert all((p / "model.onnx").is_file() and (p / "tritonops-reason.json").is_file() for p in paths)


def test_corrupt_current_json_raises(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    (tmp_path / "fraud").mkdir()
    (tmp_path / "fraud" / "current.json").write_text("[1, 2")
    with pytest.raises(CorruptState, match="not valid JSON"):
        repo.read_current("fraud")


def test_history_skips_a_torn_last_line(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.append_history("fraud", {"run_id": "a"})
    with open(store.history_path("fraud"), "a") as fh:
        fh.write('{"run_id": "b", "trunc')
    assert store.history("fraud") == [{"run_id": "a"}]


def test_ensure_writable_dir_reports_the_path(tmp_path: Path) -> None:
    # A regular file where a directory should be: fails for root too (permissions would not).
    blocker = tmp_path / "volume"
    blocker.write_text("not a directory")
    with pytest.raises(InputError, match="state dir .* is not writable"):
        files.ensure_writable_dir(blocker / "state", "state dir")


def test_move_dir_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(Exception, match="refusing to overwrite"):
        files.move_dir(tmp_path / "a", tmp_path / "b")


def test_the_live_lease_is_read_in_one_place(tmp_path: Path) -> None:
    from tritonops.core.lease import Lease

    store = StateStore(tmp_path)
    assert store.live_lease("fraud", 100.0) is None
    store.write_lease("fraud", Lease("run-a", "argo/wf", 0.0, 200.0))
    assert store.live_lease("fraud", 199.0) is not None
    assert store.live_lease("fraud", 200.0) is None  # expired at its deadline
    assert store.live_lease("fraud", 150.0, other_than="run-a") is None  # its own
    assert store.live_lease("fraud", 150.0, other_than="run-b") is not None


def test_the_committed_version_is_intact_only_with_every_file_as_committed(tmp_path: Path) -> None:
    from tritonops.adapters.onnx_artifact import checksums
    from tritonops.core.signature import Signature, TensorSpec
    from tritonops.core.state import Current

    repo = ModelRepository(tmp_path / "models")
    vdir = repo.version_dir("fraud", 3)
    vdir.mkdir(parents=True)
    (vdir / "model.onnx").write_bytes(b"weights")
    signature = Signature((TensorSpec("x", "FP32", (-1, 1)),), (TensorSpec("y", "FP32", (-1, 1)),))
    current = Current(
        model="fraud", active_version=3, run_id=None, alias="champion", updated_at_utc="20261208T000000",
        source="models:/fraud/3", signature=signature, max_batch_size=0, files=checksums(vdir), deploy_run="r1",
    )  # fmt: skip
    assert repo.committed_intact(current, 3) == vdir
    assert repo.committed_intact(current, 4) is None  # not the committed version
    assert repo.committed_intact(None, 3) is None
    (vdir / "model.onnx").write_bytes(b"weightz")  # same size, other bytes
    assert repo.committed_intact(current, 3) is None
