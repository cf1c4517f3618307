"""Run an Argo WorkflowTemplate's pods as podman containers of the built image, as Argo would.

This is not Argo. It reads the WorkflowTemplate as written (no copy, nothing hard-coded about
our steps) and implements the parts a run of it depends on, with Argo's and the kubelet's
semantics:

* the entrypoint DAG: ``depends`` (task results ``.Succeeded/.Failed/.Errored/.Skipped/
  .Omitted/.Daemoned``, ``&&``, ``||``, ``!``, parentheses; a bare name means Succeeded, Skipped
  or Daemoned), ``when``, ``continueOn``, fail-fast (no new task after a failure), parameters;
  tasks run one at a time in an order the dependencies allow;
* the ``onExit`` handler with the ``{{workflow.status}}`` Argo would set (``Succeeded``,
  ``Failed`` or ``Error``); ``steps`` groups with ``when`` and ``continueOn``;
* ``retryStrategy``: ``limit``, ``retryPolicy``, ``expression`` over ``lastRetry.exitCode`` /
  ``lastRetry.status``, ``backoff`` (duration, factor, maxDuration);
* ``activeDeadlineSeconds`` of a template (the container is killed: Failed) and of the workflow;
* a pod per container template: ``command``/``args`` (entrypoint/cmd semantics), ``env`` (values,
  ``secretKeyRef``/``configMapKeyRef`` with ``optional``), ``envFrom`` (ConfigMaps and Secrets;
  ``env`` wins), ``workingDir``, ``resources.limits`` (memory, cpu), the pod and container
  ``securityContext`` (user and group, ``runAsNonRoot`` checked, read-only root without podman's
  extra tmpfs mounts, capabilities, no-new-privileges, seccomp, ``fsGroup`` with
  ``fsGroupChangePolicy`` applied to the volumes as the kubelet does), ``volumeMounts``
  (``readOnly``, ``subPath``) of ``persistentVolumeClaim`` (a host directory per claim),
  ``emptyDir`` (a fresh directory per pod, or tmpfs for ``medium: Memory``), ``configMap`` and
  ``secret`` volumes (their files, read-only); host networking, so loopback services answer.

Anything else in the template raises :class:`Unsupported`, so a template that grows beyond this
runner fails loudly instead of passing by accident. Fields that only mean something to a cluster
(scheduling, service accounts, pod GC, the workflow mutex, Argo's own executor containers) are
accepted and listed in :attr:`PodmanArgo.not_exercised`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.k8s_e2e import podman

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned")

# Accepted and ignored: they mean something only to a cluster (scheduling, identity, cleanup).
CLUSTER_ONLY_SPEC = {
    "podGC", "ttlStrategy", "serviceAccountName", "automountServiceAccountToken", "synchronization",
    "podMetadata", "nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets",
    "workflowMetadata", "archiveLogs", "podDisruptionBudget",
}  # fmt: skip
HANDLED_SPEC = {
    "entrypoint", "onExit", "arguments", "templates", "volumes", "securityContext",
    "activeDeadlineSeconds", "podSpecPatch",
}  # fmt: skip
CLUSTER_ONLY_TEMPLATE = {
    "metadata", "nodeSelector", "tolerations", "affinity", "priorityClassName", "serviceAccountName",
    "automountServiceAccountToken", "synchronization",
}  # fmt: skip
HANDLED_TEMPLATE = {
    "name",
    "container",
    "dag",
    "steps",
    "retryStrategy",
    "activeDeadlineSeconds",
    "securityContext",
}
HANDLED_CONTAINER = {
    "name", "image", "imagePullPolicy", "command", "args", "env", "envFrom", "resources",
    "securityContext", "volumeMounts", "workingDir",
}  # fmt: skip
HANDLED_CONTAINER_SC = {
    "runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
    "capabilities", "seccompProfile", "privileged",
}  # fmt: skip
HANDLED_POD_SC = {
    "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "fsGroupChangePolicy", "seccompProfile",
    "supplementalGroups",
}  # fmt: skip
# Argo's own containers in every pod: a podSpecPatch may harden them; they do not run here.
ARGO_EXECUTOR_CONTAINERS = {"init", "wait"}


class Unsupported(ValueError):
    """The template uses something this runner does not implement."""


def _unknown(
    where: str, data: dict[str, Any], handled: Collection[str], cluster_only: Collection[str] = ()
) -> None:
    extra = set(data) - set(handled) - set(cluster_only)
    if extra:
        raise Unsupported(f"{where}: {sorted(extra)} not implemented by this runner")


@dataclass
class StepRun:
    """One attempt of one node: a container run, or a skipped/omitted node (exit_code None)."""

    node: str
    template: str
    phase: str  # Succeeded, Failed, Errored, Skipped, Omitted
    exit_code: int | None = None
    attempt: int = 0
    output: str = ""
    first_line_s: float | None = None  # from `podman run` to the container's first output line
    total_s: float = 0.0
    pod: str = ""


# --------------------------------------------------------------------------- small parsers
def duration_s(value: str | int) -> float:
    """Argo/Go durations: '10s', '5m', '1h30m', '7200s', or plain seconds."""
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise Unsupported(f"duration {value!r}")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def quantity(value: str | int) -> float:
    """Kubernetes resource quantities: '2Gi', '256Mi', '100m', '1', '1.5', '500M'."""
    text = str(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?", text)
    if not match:
        raise Unsupported(f"resource quantity {value!r}")
    number, suffix = float(match.group(1)), match.group(2) or ""
    factor = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
              "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[suffix]  # fmt: skip
    return number * factor


def _tokens(expr: str) -> list[str]:
    out = re.findall(r'\s*(&&|\|\||==|!=|[()!]|"[^"]*"|\'[^\']*\'|[\w.\-]+)', expr)
    if "".join(out).replace(" ", "") != re.sub(r"\s+", "", expr):
        raise Unsupported(f"expression {expr!r}")
    return out


class _BoolParser:
    """``a || b``, ``a && b``, ``!a``, ``(a)``; atoms decided by a callback."""

    def __init__(self, tokens: list[str], atom: Callable[[list[str]], tuple[bool, int]]) -> None:
        self.tokens, self.atom, self.i = tokens, atom, 0

    def parse(self) -> bool:
        value = self._or()
        if self.i != len(self.tokens):
            raise Unsupported(f"expression {' '.join(self.tokens)!r}")
        return value

    def _or(self) -> bool:
        value = self._and()
        while self._peek() == "||":
            self.i += 1
            right = self._and()
            value = value or right
        return value

    def _and(self) -> bool:
        value = self._not()
        while self._peek() == "&&":
            self.i += 1
            right = self._not()
            value = value and right
        return value

    def _not(self) -> bool:
        if self._peek() == "!":
            self.i += 1
            return not self._not()
        if self._peek() == "(":
            self.i += 1
            value = self._or()
            if self._peek() != ")":
                raise Unsupported(f"expression {' '.join(self.tokens)!r}: unbalanced parentheses")
            self.i += 1
            return value
        value, used = self.atom(self.tokens[self.i :])
        self.i += used
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None


def _literal(token: str) -> str:
    return token[1:-1] if token[:1] in "\"'" else token


def evaluate_depends(expr: str, results: dict[str, str]) -> bool:
    """Argo's ``depends``: ``a`` means a Succeeded, Skipped or Daemoned."""

    def atom(tokens: list[str]) -> tuple[bool, int]:
        name, _, result = tokens[0].partition(".")
        if name not in results:
            raise Unsupported(f"depends {expr!r}: unknown task {name!r}")
        if not result:
            return results[name] in ("Succeeded", "Skipped", "Daemoned"), 1
        if result not in RESULTS:
            raise Unsupported(f"depends {expr!r}: result {result!r} (loops' AnySucceeded/AllFailed too)")
        return results[name] == result, 1

    return _BoolParser(_tokens(expr), atom).parse()


def evaluate_when(expr: str) -> bool:
    """``when`` after substitution: comparisons (``==``, ``!=``) joined by ``&&``/``||``."""

    def atom(tokens: list[str]) -> tuple[bool, int]:
        if len(tokens) < 3 or tokens[1] not in ("==", "!="):
            raise Unsupported(f"when {expr!r}: only `X == Y` / `X != Y` comparisons are implemented")
        left, right = _literal(tokens[0]), _literal(tokens[2])
        return (left == right) if tokens[1] == "==" else (left != right), 3

    return _BoolParser(_tokens(expr), atom).parse()


def evaluate_retry_expression(expr: str, exit_code: int | None, status: str) -> bool:
    """``retryStrategy.expression`` over ``lastRetry.exitCode`` and ``lastRetry.status``."""

    def atom(tokens: list[str]) -> tuple[bool, int]:
        text = " ".join(tokens[:6])
        match = re.match(r"asInt \( lastRetry.exitCode \) (==|!=) (-?\d+)", text)
        if match:
            code = -1 if exit_code is None else exit_code
            equal = code == int(match.group(2))
            return equal if match.group(1) == "==" else not equal, 6
        if len(tokens) >= 3 and tokens[0] == "lastRetry.status" and tokens[1] in ("==", "!="):
            equal = status == _literal(tokens[2])
            return equal if tokens[1] == "==" else not equal, 3
        raise Unsupported(f"retry expression {expr!r}")

    spaced = re.sub(r"([()])", r" \1 ", expr)
    return _BoolParser(_tokens(spaced), atom).parse()


# --------------------------------------------------------------------------- the runner
@dataclass
class PodmanArgo:
    """One workflow submitted from a WorkflowTemplate, its pods run with podman."""

    template: dict[str, Any]
    parameters: dict[str, str]
    workflow_name: str
    image: str  # what every container runs (an overlay's `images:` would set it)
    config_maps: dict[str, dict[str, str]]
    secrets: dict[str, dict[str, str]]
    claims: dict[str, Path]  # PVC claimName -> host directory
    workdir: Path  # per-pod emptyDirs, ConfigMap/Secret files, env files
    namespace: str = "default"
    backoff_scale: float = 1.0  # retry backoff delays are multiplied by this
    max_step_s: float = 900.0  # a test never waits longer than this for one container
    runs: list[StepRun] = field(default_factory=list)
    not_exercised: set[str] = field(default_factory=set)
    status: str | None = None

    def __post_init__(self) -> None:
        spec = self.template["spec"]
        if self.template.get("kind") != "WorkflowTemplate":
            raise Unsupported(f"kind {self.template.get('kind')!r}")
        _unknown("spec", spec, HANDLED_SPEC, CLUSTER_ONLY_SPEC)
        self.not_exercised |= {f"spec.{k}" for k in set(spec) & CLUSTER_ONLY_SPEC}
        self.templates = {t["name"]: t for t in spec["templates"]}
        declared = {p["name"]: p for p in spec.get("arguments", {}).get("parameters", [])}
        _unknown("spec.arguments", spec.get("arguments", {}), {"parameters"})
        unknown = set(self.parameters) - set(declared)
        if unknown:
            raise ValueError(f"parameters {sorted(unknown)} are not declared by the template")
        self.values = {name: p.get("value") for name, p in declared.items()} | self.parameters
        missing = [name for name, value in self.values.items() if value is None]
        if missing:
            raise ValueError(f"parameters {missing} have no value (Argo refuses the submission)")
        self._check_pod_spec_patch(spec.get("podSpecPatch"))
        images = {t["container"]["image"] for t in spec["templates"] if "container" in t}
        if len(images) > 1:
            raise Unsupported(f"more than one image: {sorted(images)}")
        self.template_image = images.pop() if images else ""
        if self.template_image != self.image:
            self.not_exercised.add(f"pulling {self.template_image} (every container ran {self.image})")
        self.volumes = {v["name"]: v for v in spec.get("volumes", [])}
        self.started = time.monotonic()

    def validate(self) -> None:
        """Walk every template without running anything: raises :class:`Unsupported` (or
        ValueError for a reference that cannot resolve) for what a run would trip over."""
        spec = self.template["spec"]
        reachable = [spec["entrypoint"], *([spec["onExit"]] if spec.get("onExit") else [])]
        seen: set[str] = set()
        while reachable:
            name = reachable.pop()
            if name in seen:
                continue
            if name not in self.templates:
                raise ValueError(f"template {name!r} is referenced but not defined")
            seen.add(name)
            template = self.templates[name]
            _unknown(f"template {name}", template, HANDLED_TEMPLATE, CLUSTER_ONLY_TEMPLATE)
            status = "Failed" if name != spec["entrypoint"] else None
            if "dag" in template:
                tasks = template["dag"]["tasks"]
                results = {t["name"]: "Succeeded" for t in tasks}
                for task in tasks:
                    _unknown(f"dag task {task['name']}", task,
                             {"name", "template", "depends", "dependencies", "when", "continueOn"})  # fmt: skip
                    if task.get("depends"):
                        evaluate_depends(task["depends"], results)
                    if "when" in task:
                        evaluate_when(self.substitute(task["when"], None))
                    self._continue_on(task, "Failed")
                    reachable.append(task["template"])
            elif "steps" in template:
                for group in template["steps"]:
                    for step in group:
                        _unknown(f"step {step['name']}", step, {"name", "template", "when", "continueOn"})
                        if "when" in step:
                            evaluate_when(self.substitute(step["when"], "Failed"))
                        self._continue_on(step, "Failed")
                        reachable.append(step["template"])
            elif "container" in template:
                container = self._substituted(template["container"], status)
                _unknown(f"container of {name}", container, HANDLED_CONTAINER)
                pod_sc = dict(spec.get("securityContext") or {}) | (template.get("securityContext") or {})
                _unknown("pod securityContext", pod_sc, HANDLED_POD_SC)
                self._security_flags(name, container.get("securityContext") or {}, pod_sc)
                self._resource_flags(container.get("resources") or {})
                self._env(container)
                for mount in container.get("volumeMounts") or []:
                    _unknown(f"volumeMount of {name}", mount, {"name", "mountPath", "readOnly", "subPath"})
                    if mount["name"] not in self.volumes:
                        raise ValueError(
                            f"{name}: volumeMount {mount['name']!r} has no volume in spec.volumes"
                        )
                retry = template.get("retryStrategy")
                if retry:
                    failed = StepRun(name, name, "Failed", 1)
                    if retry.get("limit") is None:
                        raise Unsupported(f"retryStrategy of {name} without a limit (retries forever)")
                    self._retry_allows(retry, failed)
                    _unknown("backoff", retry.get("backoff") or {}, {"duration", "factor", "maxDuration"})
                    for key in ("duration", "maxDuration"):
                        if key in (retry.get("backoff") or {}):
                            duration_s(retry["backoff"][key])
            else:
                raise Unsupported(f"template {name}: only container, dag and steps templates")
        for volume in self.volumes.values():
            kinds = set(volume) - {"name"}
            if kinds not in ({"persistentVolumeClaim"}, {"emptyDir"}, {"configMap"}, {"secret"}):
                raise Unsupported(f"volume {volume['name']}: {sorted(kinds)}")
            if (
                kinds == {"persistentVolumeClaim"}
                and volume["persistentVolumeClaim"]["claimName"] not in self.claims
            ):
                raise ValueError(
                    f"PVC {volume['persistentVolumeClaim']['claimName']!r} is not bound to a host directory"
                )

    # ------------------------------------------------------------------ substitution
    def substitute(self, text: str, status: str | None) -> str:
        def value(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "workflow.name":
                return self.workflow_name
            if key == "workflow.namespace":
                return self.namespace
            if key == "workflow.status" and status is not None:
                return status
            if (
                key.startswith("workflow.parameters.")
                and key.removeprefix("workflow.parameters.") in self.values
            ):
                return str(self.values[key.removeprefix("workflow.parameters.")])
            raise Unsupported(f"placeholder {{{{{key}}}}}")

        return PLACEHOLDER.sub(value, text)

    def _substituted(self, data: Any, status: str | None) -> Any:
        return yaml.safe_load(self.substitute(yaml.safe_dump(data), status)) if data is not None else None

    # ------------------------------------------------------------------ the workflow
    def run(
        self,
        terminate_after: str | None = None,
        after_node: Callable[[str], None] | None = None,
    ) -> str:
        """The entrypoint, then the exit handler; returns the workflow status.

        ``terminate_after``: like ``argo terminate`` right after that DAG task finished: nothing
        else runs, the exit handler neither. ``after_node`` is called after every DAG task.
        """
        entry = self.templates[self.template["spec"]["entrypoint"]]
        phase = self._run_node(entry["name"], entry, status=None, terminate_after=terminate_after,
                               after_node=after_node)  # fmt: skip
        if phase == "Terminated":
            self.status = "Failed"
            return self.status
        self.status = {"Succeeded": "Succeeded", "Errored": "Error"}.get(phase, "Failed")
        handler = self.template["spec"].get("onExit")
        if handler:
            self._run_node("onExit", self.templates[handler], status=self.status)
        return self.status

    def _run_node(
        self,
        node: str,
        template: dict[str, Any],
        status: str | None,
        terminate_after: str | None = None,
        after_node: Callable[[str], None] | None = None,
    ) -> str:
        _unknown(f"template {template['name']}", template, HANDLED_TEMPLATE, CLUSTER_ONLY_TEMPLATE)
        self.not_exercised |= {f"template.{k}" for k in set(template) & CLUSTER_ONLY_TEMPLATE}
        if "dag" in template:
            return self._run_dag(template, status, terminate_after, after_node)
        if "steps" in template:
            return self._run_steps(template, status)
        if "container" in template:
            return self._run_container_node(node, template, status)
        raise Unsupported(f"template {template['name']}: only container, dag and steps templates")

    def _run_dag(
        self,
        template: dict[str, Any],
        status: str | None,
        terminate_after: str | None,
        after_node: Callable[[str], None] | None,
    ) -> str:
        dag = template["dag"]
        _unknown(f"dag {template['name']}", dag, {"tasks", "failFast"})
        fail_fast = dag.get("failFast", True)
        tasks = {t["name"]: t for t in dag["tasks"]}
        for task in tasks.values():
            if fail_fast and re.search(r"\.(Failed|Errored|Omitted)\b", task.get("depends", "")):
                raise Unsupported(
                    f"dag task {task['name']}: depends on a failure with failFast (not implemented)"
                )
        results: dict[str, str] = {}
        failed = errored = False
        pending = list(tasks)
        while pending:
            ready = [n for n in pending if self._deps(tasks[n]) <= set(results)]
            if not ready:
                raise ValueError(f"dag {template['name']}: unsatisfiable dependencies among {pending}")
            name = ready[0]
            pending.remove(name)
            task = tasks[name]
            _unknown(
                f"dag task {name}",
                task,
                {"name", "template", "depends", "dependencies", "when", "continueOn"},
            )
            deadline = self.template["spec"].get("activeDeadlineSeconds")
            expired = deadline is not None and time.monotonic() - self.started > float(deadline)
            if (fail_fast and (failed or errored)) or expired or not self._depends_ok(task, results):
                results[name] = "Omitted"
                self.runs.append(StepRun(name, task["template"], "Omitted"))
                failed |= bool(expired)
                continue
            if "when" in task and not evaluate_when(self.substitute(task["when"], status)):
                results[name] = "Skipped"
                self.runs.append(StepRun(name, task["template"], "Skipped"))
                continue
            phase = self._run_node(name, self.templates[task["template"]], status)
            results[name] = phase
            if phase in ("Failed", "Errored") and not self._continue_on(task, phase):
                failed |= phase == "Failed"
                errored |= phase == "Errored"
            if after_node:
                after_node(name)
            if name == terminate_after:
                return "Terminated"
        return "Errored" if errored and not failed else "Failed" if failed else "Succeeded"

    @staticmethod
    def _deps(task: dict[str, Any]) -> set[str]:
        if "dependencies" in task:
            return set(task["dependencies"])
        names = re.findall(r"[A-Za-z0-9][\w\-]*(?:\.\w+)?", task.get("depends", ""))
        return {n.split(".")[0] for n in names}

    @staticmethod
    def _depends_ok(task: dict[str, Any], results: dict[str, str]) -> bool:
        if "dependencies" in task:  # the older form: every dependency succeeded (or was skipped)
            return all(results[d] in ("Succeeded", "Skipped", "Daemoned") for d in task["dependencies"])
        return evaluate_depends(task["depends"], results) if task.get("depends") else True

    @staticmethod
    def _continue_on(node: dict[str, Any], phase: str) -> bool:
        cont = node.get("continueOn") or {}
        _unknown("continueOn", cont, {"failed", "error"})
        return bool(cont.get("failed")) if phase == "Failed" else bool(cont.get("error"))

    def _run_steps(self, template: dict[str, Any], status: str | None) -> str:
        for group in template["steps"]:
            outcome = []
            for step in group:
                _unknown(f"step {step['name']}", step, {"name", "template", "when", "continueOn"})
                if "when" in step and not evaluate_when(self.substitute(step["when"], status)):
                    self.runs.append(StepRun(step["name"], step["template"], "Skipped"))
                    continue
                phase = self._run_node(step["name"], self.templates[step["template"]], status)
                outcome.append((step, phase))
            for step, phase in outcome:
                if phase in ("Failed", "Errored") and not self._continue_on(step, phase):
                    return phase
        return "Succeeded"

    # ------------------------------------------------------------------ retries
    def _run_container_node(self, node: str, template: dict[str, Any], status: str | None) -> str:
        retry = template.get("retryStrategy")
        if retry:
            _unknown(f"retryStrategy of {template['name']}", retry,
                     {"limit", "retryPolicy", "expression", "backoff"}, {"affinity"})  # fmt: skip
            if retry.get("limit") is None:
                raise Unsupported(f"retryStrategy of {template['name']} without a limit (retries forever)")
        limit = int(retry["limit"]) if retry else 0
        first = time.monotonic()
        attempt = 0
        while True:
            result = self._run_pod(node, template, status, attempt)
            self.runs.append(result)
            if result.phase == "Succeeded" or not retry or attempt >= limit:
                return result.phase
            if not self._retry_allows(retry, result):
                return result.phase
            backoff = retry.get("backoff") or {}
            _unknown("backoff", backoff, {"duration", "factor", "maxDuration"})
            delay = duration_s(backoff.get("duration", 0)) * float(backoff.get("factor", 1)) ** attempt
            if "maxDuration" in backoff and time.monotonic() + delay - first > duration_s(
                backoff["maxDuration"]
            ):
                return result.phase
            time.sleep(delay * self.backoff_scale)
            attempt += 1

    @staticmethod
    def _retry_allows(retry: dict[str, Any], result: StepRun) -> bool:
        policy = retry.get("retryPolicy", "OnFailure")
        allowed = {
            "Always": ("Failed", "Errored"),
            "OnFailure": ("Failed",),
            "OnError": ("Errored",),
            "OnTransientError": ("Errored",),
        }.get(policy)
        if allowed is None:
            raise Unsupported(f"retryPolicy {policy!r}")
        if result.phase not in allowed:
            return False
        if "expression" in retry:
            argo_status = "Error" if result.phase == "Errored" else result.phase
            return evaluate_retry_expression(retry["expression"], result.exit_code, argo_status)
        return True

    # ------------------------------------------------------------------ a pod
    def debug_pod(self, template_name: str, command: list[str]) -> StepRun:
        """The template's pod exactly as a step gets it, running ``command`` instead (like
        `kubectl debug --copy-to`): to look at what the step's container is given."""
        template = self.templates[template_name]
        template = {**template, "container": {**template["container"], "command": command, "args": []}}
        return self._run_pod(f"debug-{template_name}", template, None, 0)

    def _run_pod(self, node: str, template: dict[str, Any], status: str | None, attempt: int) -> StepRun:
        container = self._substituted(template["container"], status)
        _unknown(f"container of {template['name']}", container, HANDLED_CONTAINER)
        if PLACEHOLDER.search(json.dumps(container)):
            raise Unsupported(f"unsubstituted placeholder in {template['name']}: {container}")
        pod = re.sub(r"[^a-z0-9.-]", "-", f"{self.workflow_name}-{node}-{secrets.token_hex(3)}".lower())
        pod_dir = self.workdir / "pods" / pod
        pod_dir.mkdir(parents=True)
        pod_sc = dict(self.template["spec"].get("securityContext") or {})
        pod_sc.update(template.get("securityContext") or {})
        _unknown("pod securityContext", pod_sc, HANDLED_POD_SC)
        argv = podman.podman(
            "run", "--rm", "--pull=never", f"--name={pod}", f"--hostname={pod[:63]}", "--network=host"
        )
        argv += self._security_flags(template["name"], container.get("securityContext") or {}, pod_sc)
        argv += self._resource_flags(container.get("resources") or {})
        argv += self._volume_flags(template["name"], container.get("volumeMounts") or [], pod_sc, pod_dir)
        env_file = pod_dir / "env"
        env_file.touch(mode=0o600)
        env_file.write_text("".join(f"{k}={v}\n" for k, v in self._env(container).items()))
        argv += [f"--env-file={env_file}"]
        if container.get("workingDir"):
            argv += [f"--workdir={container['workingDir']}"]
        command, args = container.get("command"), container.get("args")
        if command:
            argv += [f"--entrypoint={json.dumps(command)}"]
        argv.append(self.image)
        if args is not None:
            argv += list(args)
        elif command:
            pass  # Kubernetes: a command without args drops the image's CMD, as --entrypoint does
        deadline = template.get("activeDeadlineSeconds")
        timeout = min(float(deadline), self.max_step_s) if deadline is not None else self.max_step_s
        return self._execute(node, template["name"], pod, argv, timeout, attempt)

    def _execute(
        self, node: str, template: str, pod: str, argv: list[str], timeout: float, attempt: int
    ) -> StepRun:
        lines: list[str] = []
        first: list[float] = []
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=podman.env()
        )

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not first:
                    first.append(time.monotonic() - started)
                lines.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout)
            deadline_hit = False
        except subprocess.TimeoutExpired:  # activeDeadlineSeconds: the kubelet kills the pod
            subprocess.run(podman.podman("kill", pod), env=podman.env(), capture_output=True, check=False)
            code = proc.wait(30)
            deadline_hit = True
        reader.join(10)
        total = time.monotonic() - started
        output = "".join(lines)
        if deadline_hit:
            phase = "Failed"
            output += f"\n[runner] killed: activeDeadlineSeconds {timeout:.0f}s exceeded"
        elif code == 0:
            phase = "Succeeded"
        elif code in (125, 126, 127) and output.lstrip().startswith("Error:"):
            phase = "Errored"  # podman could not create or start the container: Argo calls that an Error
        else:
            phase = "Failed"
        return StepRun(node, template, phase, code, attempt, output, first[0] if first else None, total, pod)

    # ------------------------------------------------------------------ pod spec → podman flags
    def _security_flags(self, name: str, sc: dict[str, Any], pod_sc: dict[str, Any]) -> list[str]:
        _unknown(f"securityContext of {name}", sc, HANDLED_CONTAINER_SC)
        flags = []
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        if uid is None:
            user = podman.run("image", "inspect", "--format", "{{.Config.User}}", self.image).stdout.strip()
            uid_text = user.split(":")[0] if user else "0"
            if not uid_text.isdigit():
                raise Unsupported(f"{name}: image user {user!r} is not numeric; the kubelet cannot verify it")
            uid = int(uid_text)
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and int(uid) == 0:
            raise ValueError(f"{name}: runAsNonRoot but the container would run as root (kubelet refuses)")
        flags.append(f"--user={uid}:{gid}" if gid is not None else f"--user={uid}")
        for group in [pod_sc.get("fsGroup"), *pod_sc.get("supplementalGroups", [])]:
            if group is not None:
                flags.append(f"--group-add={group}")
        if sc.get("privileged"):
            raise Unsupported(f"{name}: privileged containers")
        if sc.get("readOnlyRootFilesystem"):
            flags += ["--read-only", "--read-only-tmpfs=false"]  # no tmpfs on /tmp, /run: as in Kubernetes
        if sc.get("allowPrivilegeEscalation") is False:
            flags.append("--security-opt=no-new-privileges")
        caps = sc.get("capabilities") or {}
        _unknown(f"capabilities of {name}", caps, {"drop", "add"})
        flags += [f"--cap-drop={c.lower()}" for c in caps.get("drop", [])]
        flags += [f"--cap-add={c.lower()}" for c in caps.get("add", [])]
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type", "Unconfined")
        if seccomp == "Unconfined":
            flags.append("--security-opt=seccomp=unconfined")
        elif seccomp != "RuntimeDefault":  # podman's default profile is the runtime default
            raise Unsupported(f"{name}: seccompProfile {seccomp}")
        return flags

    def _resource_flags(self, resources: dict[str, Any]) -> list[str]:
        _unknown("resources", resources, {"limits", "requests"})
        flags = []
        limits = resources.get("limits") or {}
        for name, value in limits.items():
            if name == "memory":
                flags.append(f"--memory={int(quantity(value))}")
            elif name == "cpu":
                flags.append(f"--cpus={quantity(value):g}")
            elif name == "ephemeral-storage":
                self.not_exercised.add("resources.limits.ephemeral-storage")
            else:
                raise Unsupported(f"resource limit {name}")
        if resources.get("requests"):
            self.not_exercised.add("resources.requests (scheduling)")
        return flags

    def _volume_flags(
        self, name: str, mounts: list[dict[str, Any]], pod_sc: dict[str, Any], pod_dir: Path
    ) -> list[str]:
        flags = []
        fs_group = pod_sc.get("fsGroup")
        policy = pod_sc.get("fsGroupChangePolicy", "Always")
        prepared: dict[str, Path | None] = {}
        for mount in mounts:
            _unknown(f"volumeMount of {name}", mount, {"name", "mountPath", "readOnly", "subPath"})
            vol_name = mount["name"]
            if vol_name not in self.volumes:
                raise ValueError(f"{name}: volumeMount {vol_name!r} has no volume in spec.volumes")
            if vol_name not in prepared:
                prepared[vol_name] = self._prepare_volume(self.volumes[vol_name], pod_dir, fs_group, policy)
            host = prepared[vol_name]
            volume = self.volumes[vol_name]
            read_only = bool(mount.get("readOnly")) or "configMap" in volume or "secret" in volume
            if host is None:  # emptyDir medium Memory
                size = (volume["emptyDir"] or {}).get("sizeLimit")
                opts = f",tmpfs-size={int(quantity(size))}" if size else ""
                flags.append(f"--mount=type=tmpfs,destination={mount['mountPath']},tmpfs-mode=1777{opts}")
                continue
            if mount.get("subPath"):
                host = host / mount["subPath"]
                host.mkdir(parents=True, exist_ok=True)
            flags.append(f"--volume={host}:{mount['mountPath']}{':ro' if read_only else ''}")
        return flags

    def _prepare_volume(
        self, volume: dict[str, Any], pod_dir: Path, fs_group: int | None, policy: str
    ) -> Path | None:
        kinds = set(volume) - {"name"}
        if kinds == {"persistentVolumeClaim"}:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if claim not in self.claims:
                raise ValueError(f"PVC {claim!r} is not bound to a host directory")
            path = self.claims[claim]
            if fs_group is not None:
                apply_fs_group(path, int(fs_group), policy)
            return path
        if kinds == {"emptyDir"}:
            spec = volume["emptyDir"] or {}
            _unknown("emptyDir", spec, {"medium", "sizeLimit"})
            if spec.get("medium") == "Memory":
                return None
            if spec.get("medium"):
                raise Unsupported(f"emptyDir medium {spec['medium']!r}")
            if spec.get("sizeLimit"):
                self.not_exercised.add("emptyDir.sizeLimit (the kubelet evicts the pod)")
            path = pod_dir / f"emptydir-{volume['name']}"
            path.mkdir()
            path.chmod(0o777)  # the kubelet creates emptyDirs world-writable
            if fs_group is not None:
                apply_fs_group(path, int(fs_group), "Always")
            return path
        if kinds in ({"configMap"}, {"secret"}):
            kind = kinds.pop()
            spec = volume[kind]
            source_name = spec["name"] if kind == "configMap" else spec["secretName"]
            _unknown(f"{kind} volume", spec, {"name", "secretName", "items", "defaultMode", "optional"})
            store = self.config_maps if kind == "configMap" else self.secrets
            if source_name not in store:
                if spec.get("optional"):
                    data: dict[str, str] = {}
                else:
                    raise ValueError(f"{kind} {source_name!r} does not exist (the pod would not start)")
            else:
                data = store[source_name]
            items = spec.get("items") or [{"key": k, "path": k} for k in data]
            path = pod_dir / f"{kind}-{volume['name']}"
            path.mkdir()
            for item in items:
                _unknown(f"{kind} item", item, {"key", "path", "mode"})
                target = path / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[item["key"]])
                mode = item.get("mode", spec.get("defaultMode", 0o644 if kind == "configMap" else 0o644))
                target.chmod(int(mode))
                if fs_group is not None:
                    os.chown(target, -1, int(fs_group))
            path.chmod(0o755)
            return path
        raise Unsupported(f"volume {volume['name']}: {sorted(kinds)}")

    def _env(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            _unknown("envFrom", source, {"configMapRef", "secretRef", "prefix"})
            ref_kind = "configMapRef" if "configMapRef" in source else "secretRef"
            ref = source[ref_kind]
            store = self.config_maps if ref_kind == "configMapRef" else self.secrets
            if ref["name"] not in store:
                if ref.get("optional"):
                    continue
                raise ValueError(
                    f"envFrom {ref_kind} {ref['name']!r} does not exist (the pod would not start)"
                )
            for key, value in store[ref["name"]].items():
                env[source.get("prefix", "") + key] = value
        for item in container.get("env", []):
            _unknown("env", item, {"name", "value", "valueFrom"})
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            value_from = item.get("valueFrom") or {}
            if set(value_from) - {"secretKeyRef", "configMapKeyRef"} or len(value_from) != 1:
                raise Unsupported(f"env {item['name']}: valueFrom {sorted(value_from)}")
            kind, ref = next(iter(value_from.items()))
            store = self.secrets if kind == "secretKeyRef" else self.config_maps
            found = store.get(ref["name"], {}).get(ref["key"])
            if found is None:
                if ref.get("optional"):
                    continue
                raise ValueError(
                    f"env {item['name']}: {ref['name']}/{ref['key']} missing (the pod would not start)"
                )
            env[item["name"]] = found
        for key, value in env.items():
            if "\n" in value:
                raise Unsupported(f"env {key}: a multi-line value")
        return env

    def _check_pod_spec_patch(self, patch: str | None) -> None:
        if not patch:
            return
        data = yaml.safe_load(patch) or {}
        _unknown("podSpecPatch", data, {"initContainers", "containers"})
        for kind in ("initContainers", "containers"):
            for container in data.get(kind, []):
                if container.get("name") not in ARGO_EXECUTOR_CONTAINERS:
                    raise Unsupported(f"podSpecPatch patches {kind} {container.get('name')!r}")
        self.not_exercised.add("spec.podSpecPatch (Argo's init/wait containers)")

    # ------------------------------------------------------------------ results
    def ran(self) -> list[tuple[str, str, int | None]]:
        return [(r.node, r.phase, r.exit_code) for r in self.runs]

    def containers(self) -> Iterator[StepRun]:
        return (r for r in self.runs if r.exit_code is not None)

    def describe(self) -> str:
        return "\n".join(
            f"--- {r.node} [{r.phase} exit {r.exit_code}] attempt {r.attempt}\n{r.output.rstrip()}"
            for r in self.runs
        )


def apply_fs_group(path: Path, gid: int, policy: str) -> None:
    """What the kubelet does for ``fsGroup``: group-own the volume, group read/write, setgid dirs.

    ``OnRootMismatch`` skips the walk when the root already has the group and permissions.
    (Many NFS provisioners do not support this at all: then the volume keeps its own ownership.)
    """
    root = path.stat()
    if policy == "OnRootMismatch" and root.st_gid == gid and root.st_mode & 0o2770 == 0o2770:
        return
    if policy not in ("OnRootMismatch", "Always"):
        raise Unsupported(f"fsGroupChangePolicy {policy!r}")
    for p in [path, *path.rglob("*")]:
        if p.is_symlink():
            continue
        os.chown(p, -1, gid)
        mode = p.stat().st_mode
        extra = (stat.S_ISGID | 0o770) if p.is_dir() else 0o660
        p.chmod(stat.S_IMODE(mode) | extra)


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
