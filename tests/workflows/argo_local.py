"""A small, strict reader of our Argo objects: validation, and running them locally as Argo would.

This is not an Argo implementation; it covers what our templates use (a DAG of
container tasks with `depends`, retry on an exit-code expression, an onExit
Steps template with `when` and `continueOn`, a container template's input
parameters) and fails loudly on anything else, so a template that grows beyond
it cannot pass by accident. A CronWorkflow is read through :func:`workflow_view`:
its ``spec.workflowSpec`` is the spec of every Workflow it creates.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PLACEHOLDER = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")


ARGO_KINDS = ("WorkflowTemplate", "CronWorkflow", "Workflow")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def workflow_view(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the Workflow it makes: a CronWorkflow's ``spec.workflowSpec`` as ``spec``
    (with the CronWorkflow's metadata); a WorkflowTemplate or Workflow as it is."""
    if obj["kind"] == "CronWorkflow":
        return {
            "kind": "Workflow",
            "metadata": obj.get("metadata", {}),
            "spec": obj["spec"]["workflowSpec"],
        }
    assert obj["kind"] in ARGO_KINDS, obj["kind"]
    return obj


def unknown_keys(original: Any, dumped: Any, path: str = "") -> list[str]:
    """Keys present in the YAML that the Hera/Argo model dropped: misspelt or unsupported fields."""
    out: list[str] = []
    if isinstance(original, dict) and isinstance(dumped, dict):
        for key, value in original.items():
            if key not in dumped:
                out.append(f"{path}.{key}".lstrip("."))
            else:
                out += unknown_keys(value, dumped[key], f"{path}.{key}")
    elif isinstance(original, list) and isinstance(dumped, list):
        for i, (a, b) in enumerate(zip(original, dumped, strict=False)):
            out += unknown_keys(a, b, f"{path}[{i}]")
    return out


def strict_parse(data: dict[str, Any]) -> Any:
    """Parse with Hera's Argo models (the object's kind) and reject any key they do not know."""
    from hera.workflows import models

    kind = data.get("kind", "WorkflowTemplate")
    assert kind in ARGO_KINDS, f"not an Argo object: {kind}"
    model = getattr(models, kind).model_validate(data)
    dumped = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    unknown = unknown_keys(data, dumped)
    if unknown:
        raise ValueError(f"unknown keys in {kind}: {unknown}")
    return model


def templates(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in data["spec"]["templates"]}


def placeholders(data: Any) -> set[str]:
    return set(PLACEHOLDER.findall(yaml.safe_dump(data)))


def dag_order(data: dict[str, Any], entry: str) -> list[dict[str, Any]]:
    """DAG tasks in an order their `depends` allow (a simple `a` or `a && b` form only)."""
    tasks = templates(data)[entry]["dag"]["tasks"]
    done: list[str] = []
    ordered = []
    pending = list(tasks)
    while pending:
        progressed = False
        for task in list(pending):
            deps = [d.strip() for d in task.get("depends", "").split("&&") if d.strip()]
            for d in deps:
                if not re.fullmatch(r"[\w-]+", d):
                    raise ValueError(f"depends expression {task['depends']!r} is beyond this runner")
            if all(d in done for d in deps):
                ordered.append(task)
                done.append(task["name"])
                pending.remove(task)
                progressed = True
        if not progressed:
            raise ValueError(f"unsatisfiable depends in {[t['name'] for t in pending]}")
    return ordered


@dataclass
class LocalArgo:
    """Runs each task's container command as a local process, in the order the YAML gives."""

    data: dict[str, Any]
    parameters: dict[str, str]
    workflow_name: str
    env: dict[str, str]
    mount_map: dict[str, Path]  # container mountPath -> local directory
    log: list[tuple[str, int, str]] = field(default_factory=list)
    # Each container template's last stdout, as Argo keeps it for `outputs.result` (stdout only,
    # one trailing newline trimmed).
    results: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Argo's submission: every declared parameter takes the given value or its default;
        an undeclared one, or one left without a value, is refused."""
        declared = {
            p["name"]: p.get("value") for p in self.data["spec"].get("arguments", {}).get("parameters", [])
        }
        unknown = set(self.parameters) - set(declared)
        if unknown:
            raise ValueError(f"parameters {sorted(unknown)} are not declared")
        self.parameters = {
            name: str(value) for name, value in declared.items() if value is not None
        } | self.parameters
        missing = sorted(set(declared) - set(self.parameters))
        if missing:
            raise ValueError(f"parameters {missing} have no value (Argo refuses the submission)")

    def substitute(self, text: str, status: str | None = None, inputs: dict[str, str] | None = None) -> str:
        def value(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "workflow.name":
                return self.workflow_name
            if key == "workflow.status" and status is not None:
                return status
            if key.startswith("workflow.parameters."):
                return self.parameters[key.removeprefix("workflow.parameters.")]
            if key.startswith("inputs.parameters.") and inputs is not None:
                return inputs[key.removeprefix("inputs.parameters.")]
            raise ValueError(f"placeholder {{{{{key}}}}} is beyond this runner")

        return PLACEHOLDER.sub(value, text)

    def _container_env(self, container: dict[str, Any], status: str | None) -> dict[str, str]:
        env = dict(self.env)
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = self._map_paths(self.substitute(item["value"], status))
            # valueFrom secrets are optional and absent locally, as an unset Secret key would be.
        return env

    def _map_paths(self, value: str) -> str:
        for mount, local in self.mount_map.items():
            if value == mount or value.startswith(mount + "/"):
                return str(local) + value[len(mount) :]
        return value

    def run_template(self, name: str, status: str | None = None, inputs: dict[str, str] | None = None) -> int:
        template = templates(self.data)[name]
        container = template["container"]
        declared = {p["name"] for p in (template.get("inputs") or {}).get("parameters", [])}
        if set(inputs or {}) != declared:
            raise ValueError(f"template {name} takes inputs {sorted(declared)}, given {sorted(inputs or {})}")
        argv = [self.substitute(a, status, inputs) for a in container["command"] + container.get("args", [])]
        if argv[0] != "tritonops":
            raise ValueError(f"template {name} does not run tritonops: {argv}")
        local = [sys.executable, "-m", "tritonops.cli", *argv[1:]]
        retry = template.get("retryStrategy")
        attempts = 1 + (int(retry["limit"]) if retry else 0)
        for _ in range(attempts):
            result = subprocess.run(
                local,
                env=self._container_env(container, status),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            self.log.append((name, result.returncode, result.stdout + result.stderr))
            self.results[name] = result.stdout.removesuffix("\n")
            if result.returncode == 0 or not retry or not self._retry_allows(retry, result.returncode):
                return result.returncode
        return result.returncode

    @staticmethod
    def _retry_allows(retry: dict[str, Any], code: int) -> bool:
        expression = retry.get("expression")
        match = re.fullmatch(r"asInt\(lastRetry\.exitCode\) == (\d+)", expression or "")
        if expression and not match:
            raise ValueError(f"retry expression {expression!r} is beyond this runner")
        return code == int(match.group(1)) if match else True

    def run(self, entrypoint: str | None = None) -> str:
        """The entrypoint DAG (``--entrypoint``: another one), then the onExit handler with the
        status Argo would set."""
        status = "Succeeded"
        for task in dag_order(self.data, entrypoint or self.data["spec"]["entrypoint"]):
            if self.run_template(task["template"]) != 0:
                status = "Failed"
                break
        self.run_exit_handler(status)
        return status

    def run_exit_handler(self, status: str) -> None:
        handler = templates(self.data)[self.data["spec"]["onExit"]]
        for group in handler["steps"]:
            for step in group:
                when = step.get("when")
                if when is not None and not self._evaluate(self.substitute(when, status)):
                    self.log.append((step["template"], -1, "skipped"))
                    continue
                code = self.run_template(step["template"], status)
                if code != 0 and not step.get("continueOn", {}).get("failed"):
                    return

    def run_steps(
        self,
        name: str,
        inputs: dict[str, str] | None = None,
        create: Callable[[dict[str, Any]], None] | None = None,
    ) -> str:
        """A steps template as Argo runs it: groups in order; ``withParam`` over the JSON list a
        placeholder gives (each item as ``{{item}}``/``{{item.key}}``; anything but a list is an
        error, as in Argo); ``arguments`` into the callee's inputs; ``when`` after substitution,
        evaluated like govaluate; ``continueOn.failed``; ``{{steps.X.outputs.result}}`` (stdout)
        and ``{{steps.X.exitCode}}`` of earlier groups. A resource template's manifest, rendered,
        is handed to ``create`` (what `argoexec resource create` sends to the API server).
        The steps of a group and the items of a loop run one after the other here, in parallel
        in Argo. Returns "Succeeded" or "Failed"."""
        from tests.workflows import argo_rules

        tmpl = templates(self.data)[name]
        declared = {p["name"] for p in (tmpl.get("inputs") or {}).get("parameters", [])}
        if set(inputs or {}) != declared:
            raise ValueError(f"template {name} takes inputs {sorted(declared)}, given {sorted(inputs or {})}")
        values = {f"inputs.parameters.{k}": v for k, v in (inputs or {}).items()}
        values |= {f"workflow.parameters.{k}": v for k, v in self.parameters.items()}
        values["workflow.name"] = self.workflow_name

        def sub(text: str, item: Any = None) -> str:
            local = dict(values)
            if isinstance(item, dict):
                local |= {f"item.{k}": str(v) for k, v in item.items()}
            elif item is not None:
                local["item"] = str(item)

            def one(m: re.Match[str]) -> str:
                if m.group(1) not in local:
                    raise ValueError(f"placeholder {{{{{m.group(1)}}}}} is beyond this runner here")
                return local[m.group(1)]

            return PLACEHOLDER.sub(one, text)

        for group in tmpl["steps"]:
            results: dict[str, str] = {}
            for step in group:
                extra = set(step) - {"name", "template", "arguments", "withParam", "when", "continueOn"}
                if extra:
                    raise ValueError(f"step {step['name']}: {sorted(extra)} is beyond this runner")
                items: list[Any] = [None]
                if "withParam" in step:
                    items = json.loads(sub(step["withParam"]))
                    if not isinstance(items, list):
                        raise ValueError(f"withParam value could not be parsed as a JSON list: {items!r}")
                callee = templates(self.data)[step["template"]]
                for item in items:
                    if "when" in step and not argo_rules.evaluate_when(sub(step["when"], item), {}):
                        self.log.append((step["name"], -1, "skipped"))
                        continue
                    args = {
                        p["name"]: sub(p["value"], item)
                        for p in (step.get("arguments") or {}).get("parameters", [])
                    }
                    if "container" in callee:
                        code = self.run_template(callee["name"], inputs=args)
                        results[f"steps.{step['name']}.outputs.result"] = self.results[callee["name"]]
                        results[f"steps.{step['name']}.exitCode"] = str(code)
                        ok = code == 0
                    elif "steps" in callee:
                        ok = self.run_steps(callee["name"], args, create) == "Succeeded"
                    elif "resource" in callee and callee["resource"]["action"] == "create" and create:
                        local = LocalArgo(
                            self.data, self.parameters, self.workflow_name, self.env, self.mount_map
                        )
                        manifest = local.substitute(callee["resource"]["manifest"], inputs=args)
                        create(yaml.safe_load(manifest))
                        self.log.append((callee["name"], 0, manifest))
                        ok = True
                    else:
                        raise ValueError(f"template {callee['name']} is beyond this runner")
                    if not ok and not (step.get("continueOn") or {}).get("failed"):
                        return "Failed"
            values |= results
        return "Succeeded"

    @staticmethod
    def _evaluate(expr: str) -> bool:
        match = re.fullmatch(r"\s*(\w+)\s*(==|!=)\s*(\w+)\s*", expr)
        if not match:
            raise ValueError(f"when expression {expr!r} is beyond this runner")
        left, op, right = match.groups()
        return (left == right) if op == "==" else (left != right)

    def ran(self) -> list[tuple[str, int]]:
        return [(name, code) for name, code, _ in self.log]
