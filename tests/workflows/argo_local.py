"""A small, strict reader of our WorkflowTemplate: validation, and running it locally as Argo would.

This is not an Argo implementation; it covers what our template uses (a DAG of
container tasks with `depends`, retry on an exit-code expression, an onExit
Steps template with `when` and `continueOn`) and fails loudly on anything else,
so a template that grows beyond it cannot pass by accident.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


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
    """Parse with Hera's Argo models and reject any key the models do not know."""
    from hera.workflows.models import WorkflowTemplate

    model = WorkflowTemplate.model_validate(data)
    dumped = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    unknown = unknown_keys(data, dumped)
    if unknown:
        raise ValueError(f"unknown keys in WorkflowTemplate: {unknown}")
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

    def substitute(self, text: str, status: str | None = None) -> str:
        def value(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "workflow.name":
                return self.workflow_name
            if key == "workflow.status" and status is not None:
                return status
            if key.startswith("workflow.parameters."):
                return self.parameters[key.removeprefix("workflow.parameters.")]
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

    def run_template(self, name: str, status: str | None = None) -> int:
        template = templates(self.data)[name]
        container = template["container"]
        argv = [self.substitute(a, status) for a in container["command"] + container.get("args", [])]
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

    def run(self) -> str:
        """The entrypoint DAG, then the onExit handler with the status Argo would set."""
        status = "Succeeded"
        for task in dag_order(self.data, self.data["spec"]["entrypoint"]):
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

    @staticmethod
    def _evaluate(expr: str) -> bool:
        match = re.fullmatch(r"\s*(\w+)\s*(==|!=)\s*(\w+)\s*", expr)
        if not match:
            raise ValueError(f"when expression {expr!r} is beyond this runner")
        left, op, right = match.groups()
        return (left == right) if op == "==" else (left != right)

    def ran(self) -> list[tuple[str, int]]:
        return [(name, code) for name, code, _ in self.log]
