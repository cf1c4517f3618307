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
    │   └── Busy                another deploy of the same model holds the lock
    ├── Unavailable             a dependency did not answer; retrying later may work
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

Third-party exceptions are translated once, in the adapter that calls the
third party (``raise OurError(...) from exc``). Messages name the bad value
and what was expected.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (contract)."""

    OK = 0
    BAD_INPUT = 2
    ROLLED_BACK = 3
    INCONSISTENT = 4
    # Only `tritonops step`: a dependency did not answer and the step may be retried (EX_TEMPFAIL).
    TEMPFAIL = 75


class TritonOpsError(Exception):
    """Base of every error tritonops raises on purpose."""

    exit_code: ExitCode = ExitCode.INCONSISTENT
    # True when the error is a property of the model version itself (its files, its config, its
    # answers): trying the same version again cannot help, so the follower holds it back.
    version_unfit: bool = False


class InputError(TritonOpsError):
    """Bad input or a failed precondition. Nothing was changed."""

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


class Busy(InputError):
    """Another deploy of the same model is in progress."""


class Unavailable(TritonOpsError):
    """A dependency did not answer. Temporary: retrying later may succeed.

    Before anything changed this is a failed precondition (exit 2); once the
    deploy has changed something it triggers a rollback like a failed check.
    """

    exit_code = ExitCode.BAD_INPUT


class RegistryUnavailable(Unavailable):
    """The MLflow tracking server or artifact store did not answer."""


class TritonUnavailable(Unavailable):
    """A Triton replica did not answer."""


class VerificationFailed(TritonOpsError):
    """The candidate is not fit to serve production. Triggers a rollback."""

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

    exit_code = ExitCode.INCONSISTENT


class CorruptState(InconsistentState):
    """A state file (current.json, journal) exists but cannot be read.

    tritonops never overwrites such a file on its own: it may be the only record
    of what production serves.
    """


class RollbackFailed(InconsistentState):
    """Restoring the previous state did not verify."""
