"""``tritonops webhook``: production follows the registry.

An HTTP receiver for MLflow model-registry webhooks. When an alias of an allowed model is set
(``model_version_alias`` / ``created``: every set, moves included), it starts a deploy of that
model and alias: the engine in this process (``--mode local``) or the ``tritonops-deploy``
WorkflowTemplate through the Argo Server API (``--mode argo``).

What a delivery is trusted for
------------------------------
Nothing but "something changed for this model". The deploy resolves the alias itself (the engine
pins it in materialize), so a payload can never choose a version, and deliveries that arrive late
or out of order (MLflow sends them from a thread pool) still end at what the alias points at
when the deploy runs.

Checks, in this order, before anything is triggered (one log line each; the secret is never
logged):

* the request's shape, at the HTTP edge (:mod:`tritonops.webhook_http`): headers at most 16 KiB,
  a ``Content-Length`` required and at most 64 KiB (the body is then not read), no
  ``Transfer-Encoding``, the whole request within its deadline;
* MLflow's signature: ``X-MLflow-Signature: v1,<base64 HMAC-SHA256>`` over
  ``<delivery id>.<timestamp>.<raw body>`` with the shared secret (MLflow's
  ``mlflow/webhooks/delivery.py``), compared in constant time: missing or wrong is 401;
* the signed timestamp (``X-MLflow-Timestamp``, Unix seconds) within the replay window: else 400;
* the body is a JSON object nested at most 32 deep: else 400.

Only models and aliases named with ``--model``/``--alias`` deploy; following every model is
``--follow-all``, spelt out: a receiver with neither refuses to start.

MLflow retries a failed or slow delivery (3 times, 30 s timeout) with the same delivery id,
timestamp and signature. So the receiver answers at once (202) and deploys afterwards, and it
ignores (200) only ids it already accepted: a delivery it refused is judged again when retried.
The ids are remembered for the replay window (older ones fail the timestamp check anyway), up to
a bound; an id forgotten early can at worst start one more deploy, which re-resolves the alias
and finds nothing to do.

Deploys
-------
One worker per model, one deploy per model at a time. Events for a model whose deploy is running
collapse into one follow-up deploy (of the alias named last), which starts after the running one
ended and therefore sees the latest alias. Models deploy independently (at most
``max_parallel`` at once). Another run holding the model (``Busy``: a CLI deploy, an Argo
workflow, a run killed less than a lease ago) is retried with backoff until the model is free;
the retry's own deploy then repairs a killed run first. A dependency that does not answer is
retried a few times, then given up on (the polling CronWorkflow catches up).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from tritonops.core.naming import new_run_id, validate_name
from tritonops.errors import (
    ArgoRefused,
    InputError,
    InvalidName,
    Reaction,
    TritonOpsError,
    reaction_of,
)

if TYPE_CHECKING:
    from tritonops.engine.settings import Settings

log = logging.getLogger(__name__)

# MLflow's headers and signature scheme (mlflow/webhooks/constants.py, delivery.py).
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"

# MLflow's registry events are a few hundred bytes: 64 KiB bounds what a connection can make us hold.
MAX_BODY_BYTES = 64 << 10
MAX_JSON_DEPTH = 32
REPLAY_WINDOW_S = 300.0
DEPLOY_ENTITY, DEPLOY_ACTION = "model_version_alias", "created"
WORKFLOW_TEMPLATE = "tritonops-deploy"

REJECT_REASONS = ("missing_signature", "bad_signature", "stale_timestamp", "too_large", "malformed")
IGNORE_REASONS = ("event", "model", "alias", "invalid_name", "duplicate")


# ------------------------------------------------------------------ signature (pure)
class Rejected(Exception):
    """A delivery refused before anything was triggered: HTTP ``status``, metric ``reason``."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


@dataclass(frozen=True)
class Delivery:
    """A delivery whose signature verified: its id and signed timestamp are MLflow's."""

    id: str
    timestamp: int


def sign(secret: bytes, delivery_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64>``: HMAC-SHA256 of ``<delivery id>.<timestamp>.<raw body>``.

    MLflow signs the UTF-8 encoding of ``f"{id}.{ts}.{payload_json}"`` and sends exactly
    ``payload_json`` encoded as UTF-8 as the body: the raw bytes received are what was signed.
    Re-serialising the JSON would change them (MLflow's ``json.dumps`` puts spaces after ``:``).
    """
    content = delivery_id.encode("utf-8") + b"." + timestamp.encode("utf-8") + b"." + body
    digest = hmac.new(secret, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    window_s: float = REPLAY_WINDOW_S,
) -> Delivery:
    """The delivery, if MLflow signed exactly this body with ``secret`` within the window.

    Raises :class:`Rejected`: 401 for a missing or wrong signature (checked first: nothing
    unsigned is looked at), 400 for a signed timestamp outside ``now ± window_s``.
    Several space-separated signatures are accepted (Standard Webhooks' rotation form).
    """
    delivery_id = _header(headers, DELIVERY_ID_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    given = _header(headers, SIGNATURE_HEADER)
    if not delivery_id or not timestamp or not given:
        missing = [
            n
            for n, v in (
                (DELIVERY_ID_HEADER, delivery_id),
                (TIMESTAMP_HEADER, timestamp),
                (SIGNATURE_HEADER, given),
            )
            if not v
        ]
        raise Rejected(401, "missing_signature", f"no {', '.join(missing)}")
    expected = sign(secret, delivery_id, timestamp, body).encode("ascii")
    # Every candidate is compared (no early exit): the time taken says nothing about which failed.
    matches = [hmac.compare_digest(expected, c.encode("utf-8")) for c in given.split()]
    if not any(matches):
        raise Rejected(401, "bad_signature", "signature does not match the body and the shared secret")
    try:
        signed_at = int(timestamp)
    except ValueError:
        raise Rejected(400, "malformed", f"{TIMESTAMP_HEADER} is not Unix seconds") from None
    if abs(now - signed_at) > window_s:
        raise Rejected(
            400,
            "stale_timestamp",
            f"signed at {signed_at}, {now - signed_at:+.0f}s from now (window ±{window_s:.0f}s)",
        )
    return Delivery(delivery_id, signed_at)


# ------------------------------------------------------------------ events (pure)
@dataclass(frozen=True)
class Event:
    entity: str
    action: str
    model: str | None = None
    alias: str | None = None
    version: str | None = None


def json_depth(body: bytes) -> int:
    """How deep ``body``'s arrays and objects nest, counted without parsing (strings skipped):
    a deep enough document makes ``json.loads`` recurse until RecursionError."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_event(body: bytes) -> Event:
    """MLflow's envelope ``{"entity", "action", "timestamp", "data": {...}}``; 400 if it is not one."""
    if json_depth(body) > MAX_JSON_DEPTH:
        raise Rejected(400, "malformed", f"body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(400, "malformed", f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "malformed", "body is not a JSON object")
    entity, action, data = payload.get("entity"), payload.get("action"), payload.get("data")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise Rejected(400, "malformed", "body has no entity/action strings")
    if (entity, action) != (DEPLOY_ENTITY, DEPLOY_ACTION):
        return Event(entity, action)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("name"), str)
        or not isinstance(data.get("alias"), str)
    ):
        raise Rejected(400, "malformed", "an alias event without data.name and data.alias")
    version = data.get("version")
    return Event(entity, action, data["name"], data["alias"], None if version is None else str(version))


@dataclass(frozen=True)
class Rules:
    """Which events deploy: the alias-set event, for the models *and* aliases named.

    Nothing is followed by default: a receiver reachable by anyone who can register a model
    must not deploy every model and alias a signed event names. ``follow_all`` is that, spelt out.
    """

    models: frozenset[str] = frozenset()
    aliases: frozenset[str] = frozenset()
    follow_all: bool = False

    @classmethod
    def explicit(cls, models: frozenset[str], aliases: frozenset[str], follow_all: bool) -> Rules:
        """The receiver's allow-list as the operator gave it; refused (exit 2) if it is none."""
        for name in models:
            validate_name("model", name)
        for name in aliases:
            validate_name("alias", name)
        if follow_all and (models or aliases):
            raise InputError("--follow-all follows every model and alias: give it alone, or --model/--alias")
        if not follow_all and not (models and aliases):
            missing = " and ".join(f for f, given in (("--model", models), ("--alias", aliases)) if not given)
            raise InputError(
                f"name what the receiver follows: {missing} missing (each repeatable, e.g. "
                "--model fraud --alias champion), or --follow-all to deploy every model and alias "
                "a signed event names"
            )
        return cls(models, aliases, follow_all)

    def describe(self) -> str:
        if self.follow_all:
            return "every model and alias (--follow-all)"
        return f"models {sorted(self.models)}, aliases {sorted(self.aliases)}"

    def why_ignored(self, event: Event) -> str | None:
        if (event.entity, event.action) != (DEPLOY_ENTITY, DEPLOY_ACTION):
            return "event"
        if event.model is None or event.alias is None:
            return "event"
        try:
            validate_name("model", event.model)
            validate_name("alias", event.alias)
        except InvalidName:
            return "invalid_name"
        if not self.follow_all and event.model not in self.models:
            return "model"
        if not self.follow_all and event.alias not in self.aliases:
            return "alias"
        return None


class DeliveryMemory:
    """Ids of accepted deliveries, for the replay window, at most ``limit`` of them."""

    def __init__(self, window_s: float = REPLAY_WINDOW_S, limit: int = 100_000) -> None:
        self.window_s, self.limit = window_s, limit
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery: Delivery, now: float) -> bool:
        """Remember ``delivery``; False if it was accepted before (atomic: one of two racing
        retries wins)."""
        with self._lock:
            horizon = now - 2 * self.window_s  # a timestamp this old fails verify() anyway
            while self._seen and (len(self._seen) >= self.limit or next(iter(self._seen.values())) < horizon):
                self._seen.popitem(last=False)
            if delivery.id in self._seen:
                return False
            self._seen[delivery.id] = delivery.timestamp
            return True

    def __len__(self) -> int:
        return len(self._seen)


# ------------------------------------------------------------------ metrics
class Metrics:
    """The receiver's own metrics (``GET /metrics``), in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "tritonops_webhook_events_received", "Webhook deliveries received (POST)", registry=r
        )
        self.rejected = Counter(
            "tritonops_webhook_events_rejected",
            "Deliveries refused before anything was triggered",
            ["reason"],
            registry=r,
        )
        self.ignored = Counter(
            "tritonops_webhook_events_ignored",
            "Verified deliveries acknowledged without a deploy",
            ["reason"],
            registry=r,
        )
        self.triggered = Counter(
            "tritonops_webhook_events_triggered", "Deliveries that asked for a deploy", registry=r
        )
        self.deploys = Counter(
            "tritonops_webhook_deploys",
            "Deploys (or workflows) finished, by outcome",
            ["outcome"],
            registry=r,
        )
        self.retries = Counter(
            "tritonops_webhook_deploy_retries",
            "Deploys put off and retried (busy: another run held the model)",
            ["reason"],
            registry=r,
        )
        self.in_progress = Gauge("tritonops_webhook_deploys_in_progress", "Deploys running now", registry=r)
        self.with_work = Gauge(
            "tritonops_webhook_models_with_work",
            "Models with a deploy running, queued or retrying",
            registry=r,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for reason in IGNORE_REASONS:
            self.ignored.labels(reason)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


# ------------------------------------------------------------------ deploying
class RetryLater(Exception):
    """The deploy could not start now; try again after a backoff.

    ``limited``: give up after a few attempts (a dependency that does not answer); a busy model
    is retried until it is free (its lease always ends).
    """

    def __init__(self, reason: str, message: str, limited: bool) -> None:
        super().__init__(message)
        self.reason, self.limited = reason, limited


DeployFn = Callable[[str, str], str]  # (model, alias) -> outcome label; may raise RetryLater


@dataclass(frozen=True)
class Backoff:
    first_s: float = 2.0
    factor: float = 2.0
    max_s: float = 60.0
    limited_attempts: int = 5

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.first_s * self.factor ** max(attempt - 1, 0)))


class Dispatcher:
    """One worker thread per model with work; at most one deploy per model; later events of a
    model collapse into one follow-up deploy."""

    def __init__(
        self,
        deploy: DeployFn,
        metrics: Metrics | None = None,
        backoff: Backoff | None = None,
        max_parallel: int = 4,
    ) -> None:
        self._deploy = deploy
        self.metrics = metrics or Metrics()
        self.backoff = backoff or Backoff()
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}  # model -> the alias named last
        self._workers: dict[str, threading.Thread] = {}
        self._running: set[str] = set()
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(max(1, max_parallel))
        self.metrics.with_work.set_function(lambda: len(self._workers))

    def submit(self, model: str, alias: str) -> str:
        """Ask for a deploy: ``started`` (a worker starts), ``queued`` (a follow-up after the
        running deploy), ``merged`` (into the follow-up already queued), ``stopping``."""
        with self._lock:
            if self._stop.is_set():
                return "stopping"
            merged = model in self._pending
            self._pending[model] = alias
            if model in self._workers:
                return "merged" if merged else "queued"
            worker = threading.Thread(target=self._work, args=(model,), name=f"deploy-{model}", daemon=True)
            self._workers[model] = worker
            worker.start()
            return "started"

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def busy(self) -> dict[str, Any]:
        with self._lock:
            return {"running": sorted(self._running), "pending": dict(sorted(self._pending.items()))}

    def idle(self) -> bool:
        with self._lock:
            return not self._workers

    def _next(self, model: str) -> str | None:
        with self._lock:
            alias = self._pending.pop(model, None)
            if alias is None or self._stop.is_set():
                self._workers.pop(model, None)
                return None
            return alias

    def _work(self, model: str) -> None:
        while (alias := self._next(model)) is not None:
            self._until_done(model, alias)

    def _until_done(self, model: str, alias: str) -> None:
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            try:
                outcome = self._one(model, alias)
            except RetryLater as exc:
                if exc.limited and attempt >= self.backoff.limited_attempts:
                    log.error(
                        "model=%s alias=%s: giving up after %d attempts: %s", model, alias, attempt, exc
                    )
                    self.metrics.deploys.labels("gave_up").inc()
                    return
                delay = self.backoff.delay(attempt)
                log.warning(
                    "model=%s alias=%s: %s; retrying in %.0fs (attempt %d)", model, alias, exc, delay, attempt
                )
                self.metrics.retries.labels(exc.reason).inc()
                if self._stop.wait(delay):
                    return
                with self._lock:  # events during the wait: the retry deploys the alias named last
                    alias = self._pending.pop(model, alias)
                continue
            except Exception as exc:  # noqa: BLE001 - a worker must survive any one deploy
                log.exception("model=%s alias=%s: deploy failed unexpectedly: %s", model, alias, exc)
                outcome = "error"
            self.metrics.deploys.labels(outcome).inc()
            return

    def _one(self, model: str, alias: str) -> str:
        with self._slots:
            with self._lock:
                self._running.add(model)
            self.metrics.in_progress.inc()
            try:
                return self._deploy(model, alias)
            finally:
                self.metrics.in_progress.dec()
                with self._lock:
                    self._running.discard(model)

    def stop(self, timeout_s: float = 30.0) -> dict[str, str]:
        """Take no more work; wait for running deploys; return the follow-ups that were dropped."""
        with self._lock:
            self._stop.set()
            dropped = dict(self._pending)
            self._pending.clear()
            workers = list(self._workers.values())
        for model, alias in dropped.items():
            log.warning("stopping: the follow-up deploy of model=%s alias=%s will not run", model, alias)
        deadline = time.monotonic() + timeout_s
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return dropped


class LocalDeploys:
    """``--mode local``: the engine in this process, exactly what ``tritonops deploy`` runs.

    The engine records every refused attempt in history. The first refusal of a busy model is
    recorded; retries then only look at the lease, and call the engine again once it ended, so
    waiting out a killed run's lease does not fill the history with refusals.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._waiting: set[str] = set()  # models whose last attempt was refused: busy
        self._lock = threading.Lock()

    def _held_by(self, model: str) -> str | None:
        from tritonops.adapters.storage import StateStore

        try:
            lease = StateStore(self.settings.state_dir).live_lease(model, time.time())
        except (TritonOpsError, OSError):
            return None  # the engine decides, and says why
        return lease.describe() if lease is not None else None

    def __call__(self, model: str, alias: str) -> str:
        from tritonops.engine.deployer import Deployer

        with self._lock:
            waiting = model in self._waiting
        held = self._held_by(model) if waiting else None
        if held is not None:
            raise RetryLater("busy", f"model {model!r} is still being changed: {held}", limited=False)
        with self._lock:
            self._waiting.discard(model)
        run_id = new_run_id(model, datetime.now(UTC), secrets.token_hex(3))
        deployer: Deployer | None = None
        try:
            deployer = Deployer(self.settings)
            journal = deployer.run(model, alias, run_id)
        except TritonOpsError as exc:
            reaction = reaction_of(exc)
            if reaction is Reaction.BUSY:
                with self._lock:
                    self._waiting.add(model)
                raise RetryLater("busy", str(exc), limited=False) from exc
            if reaction is Reaction.UNAVAILABLE:
                raise RetryLater("unavailable", str(exc), limited=True) from exc
            if reaction is Reaction.BAD_INPUT:
                log.error("deploy model=%s alias=%s run=%s refused: %s", model, alias, run_id, exc)
                return "refused"
            log.error(
                "deploy model=%s alias=%s run=%s: %s: %s", model, alias, run_id, type(exc).__name__, exc
            )
            return "inconsistent"
        finally:
            for replica in deployer.replicas if deployer else []:
                replica.close()
        outcome = journal.outcome.value if journal.outcome else "unknown"
        version = journal.candidate.version if journal.candidate else None
        log.info("deploy model=%s alias=%s run=%s: %s (version %s)", model, alias, run_id, outcome, version)
        return outcome


@dataclass(frozen=True)
class ArgoSettings:
    server: str  # https://argo-server.argo:2746
    namespace: str
    token: str = field(repr=False)  # "Bearer ..." or the bare token; never logged
    template: str = WORKFLOW_TEMPLATE
    poll_s: float = 5.0
    wait_s: float = 4 * 3600.0  # the WorkflowTemplate's own deadline is just under 4 h
    timeout_s: float = 30.0
    verify: bool | str = True  # TLS: True (system CAs, REQUESTS_CA_BUNDLE) or a CA file


_K8S_NAME = re.compile(r"[^a-z0-9-]+")
_FINISHED = {"Succeeded", "Failed", "Error"}


def generate_name(template: str, model: str) -> str:
    """``<template>-<model>-`` as a Kubernetes generateName (DNS-1123, short enough for a suffix)."""
    slug = _K8S_NAME.sub("-", model.lower()).strip("-")[:30].strip("-") or "model"
    return f"{template}-{slug}-"


def submit_request(template: str, model: str, alias: str) -> dict[str, Any]:
    """The body of ``POST /api/v1/workflows/{namespace}/submit`` (Argo's WorkflowSubmitRequest)."""
    return {
        "resourceKind": "WorkflowTemplate",
        "resourceName": template,
        "submitOptions": {
            "generateName": generate_name(template, model),
            "parameters": [f"model={model}", f"alias={alias}"],
        },
    }


class ArgoSubmits:
    """``--mode argo``: submit the WorkflowTemplate, then wait until the workflow finishes, so
    that events during a run collapse into one follow-up workflow (as in local mode)."""

    def __init__(self, argo: ArgoSettings) -> None:
        import requests

        self.argo = argo
        self._session = requests.Session()
        token = argo.token.strip()
        self._headers = {
            "Authorization": token if token.lower().startswith("bearer ") else f"Bearer {token}",
            "Content-Type": "application/json",
        }

    def _url(self, *parts: str) -> str:
        return "/".join([self.argo.server.rstrip("/"), "api/v1/workflows", self.argo.namespace, *parts])

    def __call__(self, model: str, alias: str) -> str:
        try:
            name = self.submit(model, alias)
        except ArgoRefused as exc:
            log.error("model=%s alias=%s: %s", model, alias, exc)
            return "argo_refused"
        phase = self.wait(name)
        log.info("workflow %s (model=%s alias=%s) finished: %s", name, model, alias, phase)
        return f"workflow_{phase.lower()}"

    def submit(self, model: str, alias: str) -> str:
        import requests

        body = submit_request(self.argo.template, model, alias)
        try:
            response = self._session.post(
                self._url("submit"),
                data=json.dumps(body),
                headers=self._headers,
                timeout=self.argo.timeout_s,
                verify=self.argo.verify,
            )
        except requests.RequestException as exc:
            raise RetryLater(
                "unavailable", f"Argo server {self.argo.server} did not answer: {type(exc).__name__}", True
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryLater("unavailable", f"Argo server answered HTTP {response.status_code}", True)
        if response.status_code >= 400:
            hint = " (check the token and its RBAC)" if response.status_code in (401, 403) else ""
            raise ArgoRefused(
                f"Argo server refused the submission of {self.argo.template}: HTTP "
                f"{response.status_code}{hint}: {response.text[:300]}"
            )
        try:
            name = str(response.json()["metadata"]["name"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ArgoRefused(f"Argo server's answer names no workflow: {response.text[:300]}") from exc
        log.info("submitted workflow %s: %s model=%s alias=%s", name, self.argo.template, model, alias)
        return name

    def wait(self, name: str) -> str:
        """The workflow's final phase (``Unknown`` if the wait ran out, ``Gone`` if deleted)."""
        import requests

        deadline = time.monotonic() + self.argo.wait_s
        while time.monotonic() < deadline:
            try:
                response = self._session.get(
                    self._url(name),
                    params={"fields": "status.phase"},
                    headers=self._headers,
                    timeout=self.argo.timeout_s,
                    verify=self.argo.verify,
                )
                if response.status_code == 404:
                    return "Gone"
                if response.ok:
                    phase = str((response.json().get("status") or {}).get("phase") or "")
                    if phase in _FINISHED:
                        return phase
            except (requests.RequestException, ValueError) as exc:
                log.warning("workflow %s: status not read (%s); still waiting", name, type(exc).__name__)
            time.sleep(self.argo.poll_s)
        return "Unknown"


# ------------------------------------------------------------------ receiving
@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


def _printable(value: str | None, limit: int = 64) -> str:
    """An untrusted value (a header, a model name from a body), safe for one log line:
    control characters escaped (a newline cannot forge a line), at most ``limit`` characters."""
    text = (value or "")[:limit]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) or "-"


class Receiver:
    """The decisions of the receiver, without HTTP: verify, classify, trigger."""

    def __init__(
        self,
        secret: bytes,
        rules: Rules,
        dispatcher: Dispatcher,
        clock: Callable[[], float] = time.time,
        window_s: float = REPLAY_WINDOW_S,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        if not secret:
            raise InputError("the webhook secret is empty")
        self._secret = secret
        self.rules, self.dispatcher, self.clock = rules, dispatcher, clock
        self.metrics = dispatcher.metrics
        self.window_s, self.max_body = window_s, max_body
        self.memory = DeliveryMemory(window_s)

    def __repr__(self) -> str:  # never show the secret
        return f"Receiver(rules={self.rules!r})"

    def refuse(self, reason: str, status: int, detail: str, peer: str, headers: Mapping[str, str]) -> Reply:
        self.metrics.received.inc()
        return self._rejected(Rejected(status, reason, detail), peer, headers)

    def _rejected(self, exc: Rejected, peer: str, headers: Mapping[str, str]) -> Reply:
        self.metrics.rejected.labels(exc.reason).inc()
        log.warning(
            "webhook rejected (%s) from %s, delivery %s: %s",
            exc.reason,
            peer,
            _printable(_header(headers, DELIVERY_ID_HEADER)),
            exc.detail,
        )
        return Reply(exc.status, {"status": "rejected", "reason": exc.reason})

    def handle(self, headers: Mapping[str, str], body: bytes, peer: str) -> Reply:
        self.metrics.received.inc()
        try:
            if len(body) > self.max_body:
                raise Rejected(400, "too_large", f"{len(body)} bytes (at most {self.max_body})")
            delivery = verify(self._secret, headers, body, self.clock(), self.window_s)
            event = parse_event(body)
        except Rejected as exc:
            return self._rejected(exc, peer, headers)
        what = f"{_printable(event.entity)}.{_printable(event.action)}"
        if event.model is not None:
            what += (
                f" {_printable(event.model)}@{_printable(event.alias)} -> version {_printable(event.version)}"
            )
        if self.dispatcher.stopping:
            # Not remembered: MLflow retries a 503, and another receiver (or this one
            # restarted) takes it.
            log.warning("webhook delivery %s not taken: the receiver is stopping", _printable(delivery.id))
            return Reply(503, {"status": "stopping"})
        if not self.memory.first_time(delivery, self.clock()):
            return self._ignored("duplicate", delivery, what, "already accepted")
        why = self.rules.why_ignored(event)
        if why is not None or event.model is None or event.alias is None:
            return self._ignored(why or "event", delivery, what, "not an allowed model/alias event")
        queued = self.dispatcher.submit(event.model, event.alias)
        if queued == "stopping":
            return Reply(503, {"status": "stopping"})
        self.metrics.triggered.inc()
        log.info("webhook delivery %s: %s; deploy %s", _printable(delivery.id), what, queued)
        return Reply(202, {"status": "accepted", "deploy": queued, "model": event.model})

    def _ignored(self, reason: str, delivery: Delivery, what: str, detail: str) -> Reply:
        self.metrics.ignored.labels(reason).inc()
        log.info("webhook delivery %s ignored (%s): %s: %s", _printable(delivery.id), reason, what, detail)
        return Reply(200, {"status": "ignored", "reason": reason})


__all__ = [
    "ArgoSettings",
    "ArgoSubmits",
    "Backoff",
    "Delivery",
    "DeliveryMemory",
    "Dispatcher",
    "Event",
    "LocalDeploys",
    "Metrics",
    "Receiver",
    "Rejected",
    "RetryLater",
    "Rules",
    "generate_name",
    "parse_event",
    "json_depth",
    "sign",
    "submit_request",
    "verify",
]
