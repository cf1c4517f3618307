"""The ``tritonops`` command line: parse options, call one engine function, map errors to exit codes.

Exit codes (contract): 0 committed or no-op · 2 bad input, nothing changed ·
3 verification failed and production restored · 4 rollback failed or state
inconsistent: an operator must look.

Modules: ``options`` (option stacks -> Settings), ``app`` (the group, ``main``, the exit),
``deploys`` (deploy, status, history, rollback, recover, step, plan), ``services`` (webhook,
follow, local triton, demo). Importing this package registers every command on the group.
"""

from __future__ import annotations

from tritonops.cli import deploys, services
from tritonops.cli.app import _exit, cli, main
from tritonops.cli.deploys import deploy, history, plan, recover, rollback, status, step
from tritonops.cli.options import STEP_NAMES
from tritonops.cli.services import demo, follow, local, webhook

__all__ = [
    "STEP_NAMES",
    "_exit",
    "cli",
    "demo",
    "deploy",
    "deploys",
    "follow",
    "history",
    "local",
    "main",
    "plan",
    "recover",
    "rollback",
    "services",
    "status",
    "step",
    "webhook",
]
