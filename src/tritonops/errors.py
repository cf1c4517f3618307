"""The one error tree of tritonops, split by what the caller should do.

    TritonOpsError
    ├── InputError              bad input or a failed precondition; nothing was changed   (exit 2)
    │   ├── InvalidName         a model/alias/version that is not a safe name
    │   ├── NotFound            the registry has no such model, alias or version
    │   ├── ConfigInvalid       a model-config template Triton's schema refuses, or that
    │   │                       contradicts the model's ONNX file
    │   ├── CredentialsRefused  MLflow or its artifact store refused the credentials (401/403)
    │   ├── UnsafeArtifact      an artefact names a path outside its own download directory
    │   │   └── ArtifactFieldRefused  its config.pbtxt sets how Triton runs the model
    │   │                       (libraries, instances, warmup files, ...): the operator's business
    │   ├── ArtifactTooLarge    the artefact exceeds --max-artifact-bytes/-files, or the volume's
    │   │                       free space
    │   ├── SetupIncomplete     tritonops' own environment lacks what a setting needs (onnxruntime
    │   │                       for the parity gate): not the version's fault, retried once fixed
    │   ├── ArgoRefused         the Argo Server refused a submission (4xx): resending cannot help
    │   └── Busy                another run holds the model: retry once its lease ends  [busy]
    ├── Unavailable             a dependency did not answer; retrying later may work  [unavailable]
    │                           (exit 2 before anything changed; 75 for a workflow step)
    │   ├── RegistryUnavailable MLflow tracking server or artifact store
    │   └── TritonUnavailable   a Triton replica (connection refused, timeout)
    ├── VerificationFailed      the candidate is not fit to serve; roll back             (exit 3)
    │   ├── ArtifactInvalid     not ONNX, broken external data, checksum mismatch
    │   ├── InterfaceChanged    inputs/outputs differ from the committed version
    │   ├── LoadFailed          Triton refused to load the candidate
    │   ├── NotReady            loaded but never reported ready
    │   ├── SmokeFailed         inference failed or answered wrongly
    │   └── GateFailed          golden parity or latency gate not met
    └── InconsistentState       production may not be what current.json says; a human must look (exit 4)
        ├── CorruptState        current.json / journal cannot be read
        └── RollbackFailed      restoring the previous version did not verify

Each class declares its **reaction** (:class:`Reaction`, in brackets where it differs from its
parent's: input, busy, unavailable, verification, inconsistent) and its exit code; every caller —
the CLI, a workflow step, the webhook's dispatcher, the follower, plan — asks this module
(:func:`reaction_of`, :func:`exit_code_of`, :func:`history_kind`) instead of deciding for itself.
An exception that is not ours is a bug: after a change it rolls back like a failed verification
(exit 3); at the CLI's edge, with nothing known, it is exit 4.

Not errors, and not in this tree: signals between our own parts — ``AlreadyFinished``
(engine: a step asked of a run that ended), ``Cancelled`` (fleet: a replica's action not started
because another failed), ``RetryLater`` and ``Rejected`` (webhook: a deploy to retry, a delivery
refused with an HTTP status).

Third-party exceptions are translated once, in the adapter that calls the
third party (``raise OurError(...) from exc``). Messages name the bad value
and what was expected.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """Process exit codes (contract)."""

    OK = 0
    BAD_INPUT = 2
    ROLLED_BACK = 3
    INCONSISTENT = 4
    # Only `tritonops step`: a dependency did not answer and the step may be retried (EX_TEMPFAIL).
    TEMPFAIL = 75


class Reaction(StrEnum):
    """What a caller does with an error. The values are the ``kind`` recorded in history."""

    BAD_INPUT = "input"  # refused; nothing changed; fix the input and try again
    BUSY = "busy"  # another run holds the model; try again once its lease has ended
    UNAVAILABLE = "unavailable"  # a dependency did not answer; try again later
    VERIFICATION = "verification"  # the candidate is unfit; production was restored
    INCONSISTENT = "inconsistent"  # production may not be what current.json says; look now


class TritonOpsError(Exception):
    """Base of every error tritonops raises on purpose."""

    reaction: ClassVar[Reaction] = Reaction.INCONSISTENT
    exit_code: ExitCode = ExitCode.INCONSISTENT
    # True when the error is a property of the model version itself (its files, its config, its
    # answers): trying the same version again cannot help, so the follower holds it back.
    version_unfit: bool = False


class InputError(TritonOpsError):
    """Bad input or a failed precondition. Nothing was changed."""

    reaction = Reaction.BAD_INPUT
    exit_code = ExitCode.BAD_INPUT


class InvalidName(InputError):
    """A model, alias or version name that is not safe to use as a path or label."""


class NotFound(InputError):
    """The registry has no such model, alias or version."""


class ConfigInvalid(InputError):
    """The operator's model-config template is malformed or contradicts the ONNX file."""


class CredentialsRefused(InputError):
    """MLflow or its artifact store refused the credentials (HTTP 401/403). Retrying with the
    same credentials cannot help."""


class UnsafeArtifact(InputError):
    """The artefact names a path outside its download directory (MLmodel paths, symlinks)."""

    version_unfit = True


class ArtifactFieldRefused(UnsafeArtifact):
    """The artefact's own ``config.pbtxt`` sets a field only the operator may set (how Triton
    runs the model, not what the model is), or names a file outside the model directory."""


class ArtifactTooLarge(InputError):
    """The artefact is larger (bytes or files) than the operator allows, or than the volume's
    free space; refused before (or while) downloading, nothing is kept."""

    version_unfit = True


class SetupIncomplete(InputError):
    """tritonops' own environment lacks what a setting asks for (e.g. onnxruntime for the parity
    gate). Says nothing about the candidate: the follower tries the same version again later."""


class ArgoRefused(InputError):
    """The Argo Server answered a submission with a 4xx: resending the same request cannot help."""


class Busy(InputError):
    """Another deploy of the same model is in progress."""

    reaction = Reaction.BUSY


class Unavailable(TritonOpsError):
    """A dependency did not answer. Temporary: retrying later may succeed.

    Before anything changed this is a failed precondition (exit 2); once the
    deploy has changed something it triggers a rollback like a failed check.
    """

    reaction = Reaction.UNAVAILABLE
    exit_code = ExitCode.BAD_INPUT


class RegistryUnavailable(Unavailable):
    """The MLflow tracking server or artifact store did not answer."""


class TritonUnavailable(Unavailable):
    """A Triton replica did not answer."""


class VerificationFailed(TritonOpsError):
    """The candidate is not fit to serve production. Triggers a rollback."""

    reaction = Reaction.VERIFICATION
    exit_code = ExitCode.ROLLED_BACK
    version_unfit = True


class ArtifactInvalid(VerificationFailed):
    """The downloaded artefact is not a complete, valid ONNX model."""


class InterfaceChanged(VerificationFailed):
    """The candidate's inputs/outputs break the committed version's contract."""


class LoadFailed(VerificationFailed):
    """Triton refused to load the candidate."""


class NotReady(VerificationFailed):
    """The candidate loaded but did not report ready in time."""


class SmokeFailed(VerificationFailed):
    """The smoke inference failed or answered with the wrong names, types, shapes or values."""


class GateFailed(VerificationFailed):
    """A verification gate beyond the smoke test (golden parity, latency) was not met."""


class InconsistentState(TritonOpsError):
    """Production may not match current.json. Stop and let an operator look."""

    reaction = Reaction.INCONSISTENT
    exit_code = ExitCode.INCONSISTENT


class CorruptState(InconsistentState):
    """A state file (current.json, journal) exists but cannot be read.

    tritonops never overwrites such a file on its own: it may be the only record
    of what production serves.
    """


class RollbackFailed(InconsistentState):
    """Restoring the previous state did not verify."""


# ------------------------------------------------------------------ the ladder
def reaction_of(exc: BaseException) -> Reaction | None:
    """The reaction ``exc`` declares; None for an exception that is not ours (a bug)."""
    return exc.reaction if isinstance(exc, TritonOpsError) else None


def history_kind(exc: BaseException) -> str:
    """The ``kind`` a run's error is recorded with (history, journals; read by the follower).

    Busy and unavailable are recorded as ``input`` (nothing changed because of them): the
    values history has always had.
    """
    reaction = reaction_of(exc)
    if reaction is None:
        return "internal"
    if reaction in (Reaction.BUSY, Reaction.UNAVAILABLE):
        return Reaction.BAD_INPUT.value
    return reaction.value


def exit_code_of(exc: BaseException, step: bool = False) -> ExitCode:
    """The exit code for ``exc``: its class's; in a workflow step (``step``) a dependency that
    did not answer is TEMPFAIL (Argo retries it) and a bug is ROLLED_BACK (the exit handler
    rolls back); at the CLI's edge a bug is INCONSISTENT."""
    if not isinstance(exc, TritonOpsError):
        return ExitCode.ROLLED_BACK if step else ExitCode.INCONSISTENT
    if step and exc.reaction is Reaction.UNAVAILABLE:
        return ExitCode.TEMPFAIL
    return exc.exit_code


def exit_code_for_kind(kind: str) -> ExitCode:
    """A finished run that did not commit, by its recorded error kind (the outcome decides first:
    see ``engine.deployer.exit_code_for``)."""
    if kind in (Reaction.BAD_INPUT.value, Reaction.BUSY.value, Reaction.UNAVAILABLE.value):
        return ExitCode.BAD_INPUT
    if kind == Reaction.INCONSISTENT.value:
        return ExitCode.INCONSISTENT
    return ExitCode.ROLLED_BACK  # verification failed, or a bug: either way the run was undone
