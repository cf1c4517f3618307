"""The receiver's decisions without HTTP or processes: which deliveries trigger, how deploys of
one model collapse and wait their turn, how a busy model is retried, what Argo is sent.

The deploy function is a small recording fake: these test the dispatcher's scheduling, not a
deploy (the integration tests run the real engine against a real MLflow server and Triton).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from hera.workflows.models import WorkflowSubmitRequest
from mlflow.webhooks.delivery import _generate_hmac_signature

from tritonops.errors import InputError
from tritonops.webhook import (
    Backoff,
    Delivery,
    DeliveryMemory,
    Dispatcher,
    Event,
    Receiver,
    RetryLater,
    Rules,
    generate_name,
    json_depth,
    submit_request,
)

SECRET = "whsec-dispatch-31d0"
FAST = Backoff(first_s=0.01, factor=1.0, max_s=0.01, limited_attempts=3)


class Recorder:
    """A deploy function: records calls, can hold them until released, can raise per call."""

    def __init__(self, script: Callable[[int, str, str], str | None] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.running: dict[str, int] = {}
        self.max_running: dict[str, int] = {}
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.script = script
        self._lock = threading.Lock()

    def __call__(self, model: str, alias: str) -> str:
        with self._lock:
            n = len(self.calls)
            self.calls.append((model, alias))
            self.running[model] = self.running.get(model, 0) + 1
            self.max_running[model] = max(self.max_running.get(model, 0), self.running[model])
        self.started.set()
        try:
            self.gate.wait(10)
            if self.script is not None:
                result = self.script(n, model, alias)
                if result is not None:
                    return result
            return "committed"
        finally:
            with self._lock:
                self.running[model] -= 1


def wait_idle(dispatcher: Dispatcher, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not dispatcher.idle():
        assert time.monotonic() < deadline, dispatcher.busy()
        time.sleep(0.005)


def deploys(dispatcher: Dispatcher, outcome: str) -> float:
    return dispatcher.metrics.deploys.labels(outcome)._value.get()  # type: ignore[no-any-return]


def test_events_during_a_deploy_collapse_into_one_follow_up_of_the_last_alias() -> None:
    fake = Recorder()
    fake.gate.clear()
    dispatcher = Dispatcher(fake)
    assert dispatcher.submit("fraud", "champion") == "started"
    assert fake.started.wait(5)
    assert dispatcher.submit("fraud", "champion") == "queued"
    assert dispatcher.submit("fraud", "champion") == "merged"
    assert dispatcher.submit("fraud", "challenger") == "merged"
    fake.gate.set()
    wait_idle(dispatcher)
    assert fake.calls == [("fraud", "champion"), ("fraud", "challenger")]
    assert fake.max_running["fraud"] == 1
    assert deploys(dispatcher, "committed") == 2


def test_models_deploy_independently_and_at_once() -> None:
    both = threading.Barrier(2, timeout=5)

    def script(_n: int, _model: str, _alias: str) -> str:
        both.wait()  # raises BrokenBarrierError if the two models were serialised
        return "committed"

    fake = Recorder(script)
    dispatcher = Dispatcher(fake, max_parallel=2)
    dispatcher.submit("fraud", "champion")
    dispatcher.submit("churn", "champion")
    wait_idle(dispatcher)
    assert sorted(fake.calls) == [("churn", "champion"), ("fraud", "champion")]
    assert deploys(dispatcher, "committed") == 2 and deploys(dispatcher, "error") == 0


def test_a_busy_model_is_retried_until_free() -> None:
    def script(n: int, _model: str, _alias: str) -> str | None:
        if n < 4:
            raise RetryLater("busy", "another run holds the model", limited=False)
        return None

    fake = Recorder(script)
    dispatcher = Dispatcher(fake, backoff=FAST)  # limited_attempts=3 does not apply to busy
    dispatcher.submit("fraud", "champion")
    wait_idle(dispatcher)
    assert len(fake.calls) == 5
    assert dispatcher.metrics.retries.labels("busy")._value.get() == 4
    assert deploys(dispatcher, "committed") == 1


def test_an_unanswering_dependency_is_given_up_on_after_a_few_attempts() -> None:
    def script(_n: int, _model: str, _alias: str) -> str:
        raise RetryLater("unavailable", "MLflow did not answer", limited=True)

    fake = Recorder(script)
    dispatcher = Dispatcher(fake, backoff=FAST)
    dispatcher.submit("fraud", "champion")
    wait_idle(dispatcher)
    assert len(fake.calls) == FAST.limited_attempts
    assert deploys(dispatcher, "gave_up") == 1


def test_an_event_during_the_backoff_is_what_the_retry_deploys() -> None:
    retried = threading.Event()

    def script(n: int, _model: str, _alias: str) -> str | None:
        if n == 0:
            retried.set()
            raise RetryLater("busy", "held", limited=False)
        return None

    fake = Recorder(script)
    dispatcher = Dispatcher(fake, backoff=Backoff(first_s=0.3, factor=1, max_s=0.3))
    dispatcher.submit("fraud", "champion")
    assert retried.wait(5)
    dispatcher.submit("fraud", "challenger")
    wait_idle(dispatcher)
    assert fake.calls == [("fraud", "champion"), ("fraud", "challenger")]  # no third deploy


def test_a_failing_deploy_does_not_kill_the_worker() -> None:
    def script(n: int, _model: str, _alias: str) -> str | None:
        if n == 0:
            raise RuntimeError("boom")
        return None

    fake = Recorder(script)
    dispatcher = Dispatcher(fake)
    dispatcher.submit("fraud", "champion")
    wait_idle(dispatcher)
    dispatcher.submit("fraud", "champion")
    wait_idle(dispatcher)
    assert deploys(dispatcher, "error") == 1 and deploys(dispatcher, "committed") == 1


# ------------------------------------------------------------------ Receiver.handle
def delivery(
    data: dict[str, str] | None = None,
    entity: str = "model_version_alias",
    action: str = "created",
    delivery_id: str | None = None,
    timestamp: int | None = None,
    body: bytes | None = None,
) -> tuple[dict[str, str], bytes]:
    text = (
        body.decode()
        if body is not None
        else json.dumps({"entity": entity, "action": action, "timestamp": "x", "data": data or {}})
    )
    delivery_id = delivery_id or str(uuid.uuid4())
    ts = str(timestamp if timestamp is not None else int(time.time()))
    return {
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": _generate_hmac_signature(SECRET, delivery_id, ts, text),
    }, text.encode()


ALIAS_SET = {"name": "fraud", "alias": "champion", "version": "3"}


def make_receiver(rules: Rules | None = None) -> tuple[Receiver, Recorder, Dispatcher]:
    fake = Recorder()
    fake.gate.clear()  # deploys stay pending: only what handle() decided is observed
    dispatcher = Dispatcher(fake)
    return Receiver(SECRET.encode(), rules or Rules(follow_all=True), dispatcher), fake, dispatcher


def test_an_allowed_alias_set_is_accepted_202_and_triggers() -> None:
    receiver, fake, dispatcher = make_receiver(Rules(frozenset({"fraud"}), frozenset({"champion"})))
    reply = receiver.handle(*delivery(ALIAS_SET), "127.0.0.1")
    assert (reply.status, reply.body["status"]) == (202, "accepted")
    assert fake.started.wait(5) and fake.calls == [("fraud", "champion")]
    assert receiver.metrics.triggered._value.get() == 1
    fake.gate.set()
    wait_idle(dispatcher)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"data": {"name": "fraud", "alias": "champion"}, "action": "deleted"}, "event"),
        (
            {"data": {"name": "fraud", "version": "3"}, "entity": "model_version", "action": "created"},
            "event",
        ),
        ({"data": {"name": "churn", "alias": "champion", "version": "1"}}, "model"),
        ({"data": {"name": "fraud", "alias": "challenger", "version": "1"}}, "alias"),
        ({"data": {"name": "../etc", "alias": "champion", "version": "1"}}, "invalid_name"),
    ],
)
def test_other_events_are_acknowledged_200_and_ignored(kwargs: dict, reason: str) -> None:
    receiver, fake, _ = make_receiver(Rules(frozenset({"fraud", "../etc"}), frozenset({"champion"})))
    reply = receiver.handle(*delivery(**kwargs), "127.0.0.1")
    assert (reply.status, reply.body) == (200, {"status": "ignored", "reason": reason})
    assert not fake.calls and receiver.metrics.triggered._value.get() == 0


def test_an_accepted_id_is_ignored_when_replayed_but_a_refused_one_is_judged_again() -> None:
    receiver, fake, _ = make_receiver()
    headers, body = delivery(ALIAS_SET)
    forged = {**headers, "X-MLflow-Signature": "v1,AAAA"}
    assert receiver.handle(forged, body, "10.0.0.9").status == 401  # refused: not remembered
    assert receiver.handle(headers, body, "127.0.0.1").status == 202  # the genuine one, same id
    replay = receiver.handle(headers, body, "127.0.0.1")
    assert (replay.status, replay.body["reason"]) == (200, "duplicate")
    assert receiver.metrics.triggered._value.get() == 1


@pytest.mark.parametrize(
    ("make", "status", "reason"),
    [
        (
            lambda: ({**delivery(ALIAS_SET)[0], "X-MLflow-Signature": "v1,AAAA"}, delivery(ALIAS_SET)[1]),
            401,
            "bad_signature",
        ),
        (lambda: ({}, delivery(ALIAS_SET)[1]), 401, "missing_signature"),
        (lambda: delivery(ALIAS_SET, timestamp=int(time.time()) - 3600), 400, "stale_timestamp"),
        (lambda: delivery(body=b"{not json"), 400, "malformed"),
        (lambda: delivery(body=b"[1, 2]"), 400, "malformed"),
        (
            lambda: delivery(
                body=json.dumps({"entity": "model_version_alias", "action": "created"}).encode()
            ),
            400,
            "malformed",
        ),
        (lambda: delivery(body=b" " * (2 << 20)), 400, "too_large"),
    ],
)
def test_refused_deliveries_trigger_nothing(make: Callable, status: int, reason: str) -> None:
    receiver, fake, _ = make_receiver()
    reply = receiver.handle(*make(), "10.0.0.9")
    assert (reply.status, reply.body) == (status, {"status": "rejected", "reason": reason})
    assert receiver.metrics.rejected.labels(reason)._value.get() == 1
    assert not fake.calls and receiver.metrics.triggered._value.get() == 0


def test_a_stopping_receiver_answers_503_so_mlflow_retries_elsewhere() -> None:
    receiver, fake, dispatcher = make_receiver()
    dispatcher.stop(0)
    headers, body = delivery(ALIAS_SET)
    assert receiver.handle(headers, body, "127.0.0.1").status == 503
    assert len(receiver.memory) == 0 and not fake.calls


def test_the_secret_never_shows_in_the_receivers_repr() -> None:
    receiver, _, _ = make_receiver()
    assert SECRET not in repr(receiver) and SECRET not in repr(vars(receiver).get("rules"))


# ------------------------------------------------------------------ memory of ids
def test_delivery_memory_is_bounded_and_forgets_what_the_window_refuses_anyway() -> None:
    memory = DeliveryMemory(window_s=300, limit=3)
    now = 10_000.0
    for i in range(3):
        assert memory.first_time(Delivery(f"id{i}", int(now)), now)
    assert not memory.first_time(Delivery("id1", int(now)), now)
    assert memory.first_time(Delivery("id3", int(now)), now)  # evicts id0, the oldest
    assert len(memory) == 3
    assert memory.first_time(Delivery("id0", int(now)), now)
    later = now + 1000  # everything remembered is older than twice the window
    assert memory.first_time(Delivery("new", int(later)), later) and len(memory) == 1


# ------------------------------------------------------------------ Argo's request
@pytest.mark.parametrize("model", ["fraud", "Fraud_Detector.v2", "a" * 128, "9-lives"])
def test_the_submit_request_is_argos_model_and_the_name_a_kubernetes_one(model: str) -> None:
    import re

    body = submit_request("tritonops-deploy", model, "champion")
    parsed = WorkflowSubmitRequest.model_validate(body, strict=True)
    # Argo's model ignores unknown keys: a round trip that loses one fails here.
    assert parsed.model_dump(by_alias=True, exclude_none=True) == body
    assert body["submitOptions"]["parameters"] == [f"model={model}", "alias=champion"]
    prefix = generate_name("tritonops-deploy", model)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?-", prefix) and len(prefix) <= 58


# ------------------------------------------------------------------ local mode and a busy model
def test_a_busy_model_is_refused_once_in_history_then_waited_out_on_its_lease(tmp_path) -> None:
    from tritonops.adapters.storage import StateStore
    from tritonops.core.lease import Lease
    from tritonops.engine.settings import Settings
    from tritonops.webhook import LocalDeploys

    settings = Settings(repo=tmp_path / "models", state_dir=tmp_path / "state", actor="test (webhook)")
    store = StateStore(settings.state_dir)
    now = time.time()
    store.write_lease("fraud", Lease("argo-run-1", "argo/wf-1", now, now + 60))  # another run, live
    deploys = LocalDeploys(settings)
    for _ in range(3):
        with pytest.raises(RetryLater) as info:
            deploys("fraud", "champion")
        assert info.value.reason == "busy" and not info.value.limited
        assert "argo-run-1" in str(info.value)
    [refusal] = store.history("fraud")  # the first attempt only
    assert refusal["outcome"] == "rejected" and refusal["error"]["type"] == "Busy"
    assert refusal["actor"] == "test (webhook)"


# ------------------------------------------------------------------ what the receiver follows
def test_a_receiver_follows_nothing_unless_told_what() -> None:
    with pytest.raises(InputError, match="--model and --alias missing.*--follow-all"):
        Rules.explicit(frozenset(), frozenset(), follow_all=False)
    with pytest.raises(InputError, match="--alias missing"):
        Rules.explicit(frozenset({"fraud"}), frozenset(), follow_all=False)
    with pytest.raises(InputError, match="--model missing"):
        Rules.explicit(frozenset(), frozenset({"champion"}), follow_all=False)
    with pytest.raises(InputError, match="give it alone"):
        Rules.explicit(frozenset({"fraud"}), frozenset({"champion"}), follow_all=True)
    with pytest.raises(InputError, match="model"):
        Rules.explicit(frozenset({"../etc"}), frozenset({"champion"}), follow_all=False)
    # A default Rules() deploys nothing: not a model, not an alias.
    event = delivery(ALIAS_SET)
    receiver, fake, _ = make_receiver(Rules())
    assert receiver.handle(*event, "127.0.0.1").body == {"status": "ignored", "reason": "model"}
    assert not fake.calls
    everything = Rules.explicit(frozenset(), frozenset(), follow_all=True)
    assert everything.why_ignored(Event("model_version_alias", "created", "any", "alias")) is None


def test_deep_json_is_refused_before_parsing() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}], "c": "\\\\\\"["}') == 3
    deep = b"[" * 10_000 + b"]" * 10_000
    receiver, fake, _ = make_receiver()
    reply = receiver.handle(*delivery(body=deep), "127.0.0.1")
    assert (reply.status, reply.body["reason"]) == (400, "malformed") and not fake.calls


def test_a_name_with_a_newline_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    receiver, _, _ = make_receiver(Rules(frozenset({"fraud"}), frozenset({"champion"})))
    forged = "fraud\n00:00:00 INFO    committed model=fraud version=666"
    with caplog.at_level("INFO", logger="tritonops.webhook"):
        receiver.handle(*delivery(data={"name": forged, "alias": "champion", "version": "1"}), "127.0.0.1")
    text = caplog.text
    assert "\\n00:00:00 INFO" in text
    assert not any(line.startswith("00:00:00 INFO    committed") for line in text.splitlines())
