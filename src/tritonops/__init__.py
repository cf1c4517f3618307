"""tritonops: change what a production Triton serves, safely.

The public API is small; everything else is internal and may change.

    from tritonops import Deployer, Settings
    journal = Deployer(Settings(repo=..., state_dir=...)).run("fraud", "champion", run_id)
"""

from tritonops.core.state import Current, Journal, Outcome, Phase
from tritonops.engine.deployer import Deployer, exit_code_for
from tritonops.engine.settings import Settings
from tritonops.errors import (
    ExitCode,
    InconsistentState,
    InputError,
    TritonOpsError,
    Unavailable,
    VerificationFailed,
)

__all__ = [
    "Current",
    "Deployer",
    "ExitCode",
    "InconsistentState",
    "InputError",
    "Journal",
    "Outcome",
    "Phase",
    "Settings",
    "TritonOpsError",
    "Unavailable",
    "VerificationFailed",
    "exit_code_for",
]
