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
