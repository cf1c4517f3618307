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

* the request's shape, at the HTTP edge (:mod:`tritonops.webhook.server`): headers at most 16 KiB,
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

from tritonops.webhook.argo import WORKFLOW_TEMPLATE, ArgoSettings, ArgoSubmits, generate_name, submit_request
from tritonops.webhook.dispatch import Backoff, DeployFn, Dispatcher, LocalDeploys, RetryLater
from tritonops.webhook.events import (
    DEPLOY_ACTION,
    DEPLOY_ENTITY,
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    DeliveryMemory,
    Event,
    Rules,
    json_depth,
    parse_event,
)
from tritonops.webhook.metrics import Metrics
from tritonops.webhook.receiver import Receiver, Reply
from tritonops.webhook.signature import (
    DELIVERY_ID_HEADER,
    REPLAY_WINDOW_S,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Delivery,
    Rejected,
    sign,
    verify,
)

__all__ = [
    "DELIVERY_ID_HEADER",
    "DEPLOY_ACTION",
    "DEPLOY_ENTITY",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "REPLAY_WINDOW_S",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WORKFLOW_TEMPLATE",
    "ArgoSettings",
    "ArgoSubmits",
    "Backoff",
    "Delivery",
    "DeliveryMemory",
    "DeployFn",
    "Dispatcher",
    "Event",
    "LocalDeploys",
    "Metrics",
    "Receiver",
    "Rejected",
    "Reply",
    "RetryLater",
    "Rules",
    "generate_name",
    "json_depth",
    "parse_event",
    "sign",
    "submit_request",
    "verify",
]
