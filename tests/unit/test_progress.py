import io
import time
from pathlib import Path

from tritonops.adapters.registry import DownloadProgress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_bytes_on_a_terminal(tmp_path: Path) -> None:
    out = _Tty()
    with DownloadProgress(tmp_path, "v3", interval_s=0.01, stream=out):
        (tmp_path / "model.onnx").write_bytes(b"x" * 3 * 2**20)
        time.sleep(0.1)
    assert "downloading v3:" in out.getvalue() and "3.0 MiB" in out.getvalue()


def test_progress_is_silent_when_not_a_terminal(tmp_path: Path) -> None:
    out = io.StringIO()
    with DownloadProgress(tmp_path, "v3", interval_s=0.01, stream=out):
        time.sleep(0.05)
    assert out.getvalue() == ""


def test_files_landing_past_the_limit_are_caught_while_downloading_and_deleted(tmp_path: Path) -> None:
    """A store that sends more than it listed: the watch notices as the files land, not after."""
    from tritonops.core.limits import ArtifactLimits

    root = tmp_path / "staging"
    root.mkdir()
    limits = ArtifactLimits(max_bytes=1 << 20, max_files=100)
    with DownloadProgress(root, "v9", interval_s=0.02, stream=io.StringIO(), limits=limits) as watch:
        (root / "a.bin").write_bytes(b"\0" * (512 << 10))
        time.sleep(0.2)
        assert watch.exceeded is None  # under the limit: nothing happens
        (root / "b.bin").write_bytes(b"\0" * (768 << 10))
        deadline = time.monotonic() + 5
        while watch.exceeded is None and time.monotonic() < deadline:
            time.sleep(0.02)
    assert watch.exceeded is not None and "over the limit of 1.0 MiB" in watch.exceeded
    assert not root.exists()
