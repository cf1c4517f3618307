"""``--mode argo``: submit the ``tritonops-deploy`` WorkflowTemplate through the Argo Server API and wait for its phase."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tritonops.errors import ArgoRefused
from tritonops.webhook.dispatch import RetryLater

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


WORKFLOW_TEMPLATE = "tritonops-deploy"


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
