"""The ``tritonops`` group, its entry point and the one error boundary of the CLI."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from typing import NoReturn

import click

from tritonops.errors import ExitCode, TritonOpsError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tritonops")
def cli() -> None:
    """Deploy the model version an MLflow alias points at to Triton — verified, or rolled back.

    \b
    deploy    snapshot → materialize → load → ready → smoke → commit; any failure rolls back
    status    what current.json says and what every replica serves (drift)
    history   every attempt: version, outcome, times, error, quarantine path
    rollback  back to an earlier committed version, verified like a deploy
    recover   finish or undo a deploy that was killed
    step      one step of a deploy (what each Argo container runs)
    plan      what a deploy would do now (version, interface, config diff, gates); changes nothing
    webhook   receive MLflow registry webhooks: an alias set deploys (here, or as an Argo workflow)

    Exit codes: 0 committed or no-op, 2 bad input (nothing changed),
    3 verification failed (production restored), 4 rollback failed (look now).
    """


def main() -> None:
    """Entry point: the one error boundary of the CLI."""
    try:
        cli.main(standalone_mode=False)
        code: int | str | None = 0
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = int(ExitCode.BAD_INPUT)
    except click.ClickException as exc:
        exc.show()
        code = int(ExitCode.BAD_INPUT)
    except TritonOpsError as exc:
        click.echo(f"tritonops: error: {exc}", err=True)
        code = int(exc.exit_code)
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:
        logging.getLogger("tritonops").debug("unexpected error", exc_info=True)
        click.echo(f"tritonops: unexpected error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  state may be inconsistent: run `tritonops status` / `tritonops recover`", err=True)
        code = int(ExitCode.INCONSISTENT)
    _exit(code)


def _exit(code: int | str | None) -> NoReturn:
    """Exit with ``code`` without tearing the interpreter down module by module.

    Once MLflow (and SQLAlchemy, pandas, ...) is imported, a normal exit spends ~0.7 s freeing
    modules after the work is done (bench/step_startup.py measures it): in every workflow step
    and every CLI deploy. What a normal exit does that matters still runs first: atexit handlers
    (logging flushed, temporary files removed) and stdio flushed. With another non-daemon thread
    alive, Python's own shutdown (which joins it) is kept.
    """
    if isinstance(code, str):  # sys.exit("message"): Python prints it and exits 1
        click.echo(code, err=True)
        code = 1
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing left to tell anyone
            stream.flush()
    os._exit(code or 0)
