"""The CLI's exit skips the interpreter's module-by-module teardown, and nothing else.

Each case runs a fresh interpreter: what matters is what a real process leaves behind
(its exit code, every byte it wrote, atexit work, threads it must not cut short).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"
    }  # stdout block-buffered, as in a pod
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_exit_code_buffered_output_and_atexit_handlers_survive() -> None:
    out = run(
        """
        import atexit, logging, sys
        from tritonops.cli import _exit
        logging.basicConfig(stream=sys.stderr, level=logging.INFO)
        atexit.register(lambda: print("atexit ran"))
        print("x" * 100000, end="")  # more than one pipe buffer, still in Python's buffer
        logging.getLogger("t").info("logged")
        _exit(3)
        """
    )
    assert out.returncode == 3, out.stderr
    assert out.stdout == "x" * 100000 + "atexit ran\n"
    assert "logged" in out.stderr


def test_a_live_non_daemon_thread_is_waited_for() -> None:
    out = run(
        """
        import threading, time
        from tritonops.cli import _exit
        def late():
            time.sleep(0.5)
            print("thread finished", flush=True)
        threading.Thread(target=late).start()
        _exit(4)
        """
    )
    assert out.returncode == 4, out.stderr
    assert out.stdout == "thread finished\n"


def test_a_message_exits_1_and_is_printed() -> None:
    out = run("from tritonops.cli import _exit\n_exit('no such thing')\n")
    assert out.returncode == 1
    assert out.stderr == "no such thing\n"


def test_none_exits_0() -> None:
    assert run("from tritonops.cli import _exit\n_exit(None)\n").returncode == 0
