"""The error ladder: every class declares its reaction and exit code, and every caller asks it."""

from __future__ import annotations

import inspect
import re

import pytest

from tritonops import errors
from tritonops.errors import ExitCode, Reaction, exit_code_for_kind, exit_code_of, history_kind, reaction_of

ALL = [
    c
    for _, c in inspect.getmembers(errors, inspect.isclass)
    if issubclass(c, errors.TritonOpsError) and c.__module__ == errors.__name__
]


def test_the_module_tree_lists_every_error_class() -> None:
    tree = (errors.__doc__ or "").split("\n\n")[1]  # the drawing: the paragraph after the title
    missing = [c.__name__ for c in ALL if not re.search(rf"(^\s+|── ){c.__name__}\b", tree, re.M)]
    assert not missing, f"not in the tree of errors.py's docstring: {missing}"


@pytest.mark.parametrize(
    ("cls", "reaction", "cli", "step", "kind"),
    [
        (errors.InvalidName, Reaction.BAD_INPUT, 2, 2, "input"),
        (errors.ArtifactFieldRefused, Reaction.BAD_INPUT, 2, 2, "input"),
        (errors.SetupIncomplete, Reaction.BAD_INPUT, 2, 2, "input"),
        (errors.ArgoRefused, Reaction.BAD_INPUT, 2, 2, "input"),
        (errors.Busy, Reaction.BUSY, 2, 2, "input"),
        (errors.RegistryUnavailable, Reaction.UNAVAILABLE, 2, 75, "input"),
        (errors.TritonUnavailable, Reaction.UNAVAILABLE, 2, 75, "input"),
        (errors.LoadFailed, Reaction.VERIFICATION, 3, 3, "verification"),
        (errors.GateFailed, Reaction.VERIFICATION, 3, 3, "verification"),
        (errors.CorruptState, Reaction.INCONSISTENT, 4, 4, "inconsistent"),
        (errors.RollbackFailed, Reaction.INCONSISTENT, 4, 4, "inconsistent"),
        (RuntimeError, None, 4, 3, "internal"),  # a bug: rolled back in a step, "look" at the CLI
    ],
)
def test_each_error_has_one_reaction_and_one_exit_code(
    cls: type[BaseException], reaction: Reaction | None, cli: int, step: int, kind: str
) -> None:
    exc = cls("x")
    assert reaction_of(exc) is reaction
    assert (exit_code_of(exc), exit_code_of(exc, step=True)) == (cli, step)
    assert history_kind(exc) == kind


def test_every_class_reaches_a_defined_exit_code() -> None:
    for cls in ALL:
        assert cls.reaction in Reaction and cls.exit_code in ExitCode, cls


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("input", 2),
        ("busy", 2),
        ("unavailable", 2),
        ("verification", 3),
        ("internal", 3),
        ("", 3),
        ("inconsistent", 4),
    ],
)
def test_a_recorded_kind_maps_back_to_the_exit_code(kind: str, code: int) -> None:
    assert exit_code_for_kind(kind) == code


def test_only_the_versions_own_faults_hold_it_back() -> None:
    unfit = {c.__name__ for c in ALL if c.version_unfit}
    assert {"LoadFailed", "SmokeFailed", "GateFailed", "UnsafeArtifact", "ArtifactFieldRefused"} <= unfit
    assert not unfit & {
        "SetupIncomplete",
        "Busy",
        "RegistryUnavailable",
        "CredentialsRefused",
        "CorruptState",
    }
