import pytest

from tritonops.core.signature import Signature, TensorSpec
from tritonops.core.state import Candidate, Current, Journal, Outcome, Phase, StepRecord
from tritonops.engine.deployer import exit_code_for
from tritonops.errors import CorruptState, ExitCode, SmokeFailed

SIG = Signature((TensorSpec("x", "FP32", (-1, 4)),), (TensorSpec("y", "FP32", (-1, 2)),))


def _journal() -> Journal:
    return Journal(
        run_id="r-1", model="fraud", alias="champion", replicas=("http://a:8000",), started_at=100.0
    )


def test_journal_round_trips_through_storage() -> None:
    j = (
        _journal()
        .at(
            Phase.MATERIALIZED,
            candidate=Candidate(3, "run", "models:/m-1", "champion", "fraud"),
            signature=SIG,
            files={"model.onnx": "ab"},
            installed_dir=True,
        )
        .with_step(StepRecord("load", 101.0, 1.5, True))
        .with_error("smoke", SmokeFailed("NaN"))
        .finished(Outcome.ROLLED_BACK, 110.0, quarantine="/q/3.failed_x")
    )
    again = Journal.from_dict(j.to_dict())
    assert again == j
    assert again.history_record()["outcome"] == "rolled_back"
    assert again.step_durations() == {"load": 1.5}


def test_transitions_do_not_mutate() -> None:
    j = _journal()
    j2 = j.at(Phase.LOADED)
    assert j.phase is Phase.SNAPSHOTTED and j2.phase is Phase.LOADED


def test_phases_are_ordered() -> None:
    ranks = [p.rank for p in Phase]
    assert ranks == sorted(ranks)
    assert Phase.MATERIALIZING.rank < Phase.MATERIALIZED.rank < Phase.COMMITTING.rank


def test_unknown_journal_format_is_corrupt() -> None:
    data = _journal().to_dict() | {"format": 99}
    with pytest.raises(CorruptState):
        Journal.from_dict(data)


def test_current_json_with_missing_fields_is_corrupt() -> None:
    with pytest.raises(CorruptState) as exc:
        Current.from_dict({"active_version": 3})
    assert "Nothing was changed" in str(exc.value)


def test_current_keeps_the_original_keys() -> None:
    cur = Current("fraud", 13, "run", "A", "20251231T025902", "models:/m", SIG, 8, {}, "r-1", 12)
    data = cur.to_dict()
    assert {"active_version", "run_id", "alias", "updated_at_utc"} <= data.keys()
    assert Current.from_dict(data) == cur


@pytest.mark.parametrize(
    ("outcome", "kind", "code"),
    [
        (Outcome.COMMITTED, None, ExitCode.OK),
        (Outcome.NOOP, None, ExitCode.OK),
        (Outcome.ROLLED_BACK, "verification", ExitCode.ROLLED_BACK),
        (Outcome.ROLLBACK_FAILED, "verification", ExitCode.INCONSISTENT),
        (Outcome.REJECTED, "verification", ExitCode.ROLLED_BACK),
        (Outcome.REJECTED, "input", ExitCode.BAD_INPUT),
        (Outcome.REJECTED, "inconsistent", ExitCode.INCONSISTENT),
    ],
)
def test_exit_codes(outcome: Outcome, kind: str | None, code: ExitCode) -> None:
    j = _journal().finished(outcome, 1.0, error={"kind": kind} if kind else None)
    assert exit_code_for(j) == code
