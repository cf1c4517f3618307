"""The Argo WorkflowTemplates: generated YAML in Git, validated strictly, and proven to run.

tritonops-deploy (entry points deploy, deploy-allow-interface-change, recover) and
tritonops-rollback; every generated object (the CronWorkflows too) is compared with its Python."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from workflows.outputs import OUTPUTS

from tests.helpers import Env, Registry
from tests.workflows import argo_local
from tritonops.local.samples import linear_model
from workflows import deploy_template

ROOT = Path(__file__).resolve().parents[2]
YAML_PATH = ROOT / "k8s" / "base" / "workflowtemplate.yaml"
ROLLBACK_PATH = deploy_template.ROLLBACK_OUTPUT
GATE_PARAMETERS = {name for name, _, _, _ in deploy_template.GATES}


@pytest.fixture(scope="module")
def wt() -> dict:
    return argo_local.load(YAML_PATH)


@pytest.fixture(scope="module")
def rollback_wt() -> dict:
    return argo_local.load(ROLLBACK_PATH)


@pytest.mark.parametrize("path", sorted(OUTPUTS), ids=lambda p: p.name)
def test_committed_yaml_matches_the_python(path: Path) -> None:
    assert path.read_text() == OUTPUTS[path](), (
        f"k8s/base/{path.name} is stale: run `make k8s-generate` and commit the result"
    )


def test_make_k8s_generate_writes_every_output(tmp_path: Path) -> None:
    """`make k8s-generate` runs workflows/outputs.py as a script: it must reach every object (its
    --check mode compares them all without writing)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(ROOT / "workflows" / "outputs.py"), "--check"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert set(OUTPUTS) == {
        deploy_template.OUTPUT,
        deploy_template.ROLLBACK_OUTPUT,
        *(p for p in OUTPUTS if p.name.startswith("cronworkflow-")),
    }


@pytest.mark.parametrize("path", sorted(OUTPUTS), ids=lambda p: p.name)
def test_parses_strictly(path: Path) -> None:
    argo_local.strict_parse(argo_local.load(path))


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d["spec"].__setitem__("onExitt", "x"), id="misspelt-spec-field"),
        pytest.param(
            lambda d: d["spec"]["templates"][0]["container"].__setitem__("imagePullPolicyy", "x"),
            id="misspelt-container-field",
        ),
        pytest.param(
            lambda d: d["spec"]["synchronization"]["mutexes"][0].__setitem__("nam", "x"),
            id="misspelt-nested-field",
        ),
    ],
)
def test_a_misspelt_field_fails_validation(wt: dict, mutate) -> None:
    broken = copy.deepcopy(wt)
    mutate(broken)
    with pytest.raises(ValueError, match="unknown keys"):
        argo_local.strict_parse(broken)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d["spec"].__setitem__("concurrencyPolicyy", "Forbid"), id="cron-spec"),
        pytest.param(
            lambda d: d["spec"]["workflowSpec"]["templates"][0]["container"].__setitem__("argz", []),
            id="cron-container",
        ),
        pytest.param(
            lambda d: next(t for t in d["spec"]["workflowSpec"]["templates"] if "resource" in t)[
                "resource"
            ].__setitem__("actoin", "create"),
            id="cron-resource",
        ),
    ],
)
def test_a_misspelt_field_in_a_cron_workflow_fails_validation(mutate) -> None:
    from workflows.cron_workflows import FOLLOW_OUTPUT

    broken = argo_local.load(FOLLOW_OUTPUT)
    argo_local.strict_parse(broken)
    mutate(broken)
    with pytest.raises(ValueError, match="unknown keys in CronWorkflow"):
        argo_local.strict_parse(broken)


def test_references_resolve(wt: dict) -> None:
    templates = argo_local.templates(wt)
    spec = wt["spec"]
    assert spec["entrypoint"] in templates and spec["onExit"] in templates
    tasks = templates[spec["entrypoint"]]["dag"]["tasks"]
    names = {t["name"] for t in tasks}
    for task in tasks:
        assert task["template"] in templates
        for dep in filter(None, (d.strip() for d in task.get("depends", "").split("&&"))):
            assert dep in names, f"{task['name']} depends on unknown task {dep}"
    for group in templates[spec["onExit"]]["steps"]:
        for step in group:
            assert step["template"] in templates
    declared = {p["name"] for p in spec["arguments"]["parameters"]}
    used = {
        p.removeprefix("workflow.parameters.")
        for p in argo_local.placeholders(wt)
        if p.startswith("workflow.parameters.")
    }
    assert used <= declared, f"undeclared parameters: {used - declared}"
    assert [t["name"] for t in argo_local.dag_order(wt, spec["entrypoint"])] == [
        "recover",
        "snapshot",
        "materialize",
        "load",
        "ready",
        "smoke",
        "commit",
    ]


def _args(wt: dict, template: str) -> list[str]:
    return argo_local.templates(wt)[template]["container"]["args"]


def test_deploy_allowing_an_interface_change_is_the_same_chain_but_materialize(wt: dict) -> None:
    """The on-call entry point: the same tasks in the same order, every template the deploy's
    except materialize, which is the same step with --allow-interface-change (where the
    interface gate is)."""
    templates = argo_local.templates(wt)
    deploy = templates["deploy"]["dag"]["tasks"]
    allow = templates["deploy-allow-interface-change"]["dag"]["tasks"]
    assert [t["name"] for t in allow] == [t["name"] for t in deploy]
    for mine, theirs in zip(allow, deploy, strict=True):
        if mine["name"] == "materialize":
            assert mine == {**theirs, "template": "materialize-allow-interface-change"}
        else:
            assert mine == theirs
    variant = templates["materialize-allow-interface-change"]
    original = templates["materialize"]
    assert variant["container"]["args"] == [*original["container"]["args"], "--allow-interface-change"]
    assert {k: v for k, v in variant.items() if k not in ("name", "container")} == {
        k: v for k, v in original.items() if k not in ("name", "container")
    }
    assert {k: v for k, v in variant["container"].items() if k != "args"} == {
        k: v for k, v in original["container"].items() if k != "args"
    }
    # Only materialize runs the interface gate, so the flag anywhere else would do nothing.
    assert not [n for n, t in templates.items() if "container" in t and n != variant["name"]
                and "--allow-interface-change" in t["container"]["args"]]  # fmt: skip


def test_rollback_template_runs_recover_then_the_verified_rollback(rollback_wt: dict) -> None:
    spec = rollback_wt["spec"]
    assert rollback_wt["metadata"]["name"] == "tritonops-rollback"
    assert [t["name"] for t in argo_local.dag_order(rollback_wt, spec["entrypoint"])] == [
        "recover",
        "rollback-to-version",
    ]
    assert _args(rollback_wt, "rollback-to-version") == [
        "rollback", "--model", "{{workflow.parameters.model}}", "--to", "{{workflow.parameters.to}}",
        "--run-id", "{{workflow.name}}",
    ]  # fmt: skip
    # `to` has no default: Argo refuses a submission without it.
    params = {p["name"]: p for p in spec["arguments"]["parameters"]}
    assert "value" not in params["to"] and "value" not in params["model"]
    # One run per model at a time, deploy or rollback: the same mutex.
    assert spec["synchronization"] == argo_local.load(YAML_PATH)["spec"]["synchronization"]
    # Never retried: it changes production.
    assert "retryStrategy" not in argo_local.templates(rollback_wt)["rollback-to-version"]


def test_one_image_one_volume_least_privilege(wt: dict) -> None:
    containers = [t["container"] for t in wt["spec"]["templates"] if "container" in t]
    assert len(containers) == 10
    assert len({c["image"] for c in containers}) == 1
    claim = {v["name"]: v for v in wt["spec"]["volumes"]}["volume"]["persistentVolumeClaim"]["claimName"]
    assert claim == deploy_template.PVC
    volumes = {v["name"]: v for v in wt["spec"]["volumes"]}
    assert volumes["model-config"]["configMap"]["name"] == deploy_template.MODEL_CONFIG_MAP
    for c in containers:
        assert {"name": "volume", "mountPath": "/pvc"} in c["volumeMounts"]
        # Every step reads the same per-model config templates, read-only.
        assert {"name": "model-config", "mountPath": "/etc/tritonops/model-config", "readOnly": True} in c[
            "volumeMounts"
        ]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["TRITONOPS_MODEL_CONFIG_DIR"] == "/etc/tritonops/model-config"
        assert c["envFrom"] == [{"configMapRef": {"name": "tritonops-config"}}]
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert not any("value" in e and "password" in e["name"].lower() for e in c.get("env", []))
    params = {p["name"] for p in wt["spec"]["arguments"]["parameters"]}
    assert params == {"model", "alias", *GATE_PARAMETERS}  # credentials never travel as parameters
    assert wt["spec"]["synchronization"]["mutexes"] == [{"name": "tritonops-{{workflow.parameters.model}}"}]


SECRET_WORDS = ("password", "secret", "token", "key", "credential", "auth")


@pytest.mark.parametrize("path", [YAML_PATH, ROLLBACK_PATH], ids=lambda p: p.name)
def test_parameters_never_carry_secrets(path: Path) -> None:
    """Parameters are shown in the Argo UI, stored with every workflow and logged: none may be a
    credential, and no environment variable that holds one may come from a parameter."""
    spec = argo_local.load(path)["spec"]
    for p in spec["arguments"]["parameters"]:
        assert not any(w in p["name"].lower() for w in SECRET_WORDS), p["name"]
    for t in spec["templates"]:
        for e in t.get("container", {}).get("env", []):
            if any(w in e["name"].lower() for w in SECRET_WORDS):
                assert "valueFrom" in e and "secretKeyRef" in e["valueFrom"], e


@pytest.mark.parametrize("path", [YAML_PATH, ROLLBACK_PATH], ids=lambda p: p.name)
def test_gate_parameters_default_to_the_cli_and_reach_every_step(path: Path) -> None:
    """Every gate is a parameter whose default (in base; overlays copy their ConfigMap over it)
    is the CLI's own, and every step gets it as the variable the CLI reads."""
    from tritonops import cli

    spec = argo_local.load(path)["spec"]
    params = {p["name"]: p.get("value") for p in spec["arguments"]["parameters"]}
    options = {o.name: o for o in cli.step.params}
    for name, envvar, default, _ in deploy_template.GATES:
        option = options[name.replace("-", "_")]
        assert option.envvar == envvar and option.default == default
        assert type(default)(params[name]) == default, name
    for t in spec["templates"]:
        if "container" not in t:
            continue
        env = {e["name"]: e.get("value") for e in t["container"]["env"]}
        for name, envvar, _, _ in deploy_template.GATES:
            assert env[envvar] == f"{{{{workflow.parameters.{name}}}}}", (t["name"], envvar)


def test_exit_handler_is_the_same_in_both_templates(wt: dict, rollback_wt: dict) -> None:
    def handler(doc: dict) -> list[dict]:
        templates = argo_local.templates(doc)
        exit_handler = templates[doc["spec"]["onExit"]]
        return [exit_handler] + [templates[s["template"]] for g in exit_handler["steps"] for s in g]

    assert rollback_wt["spec"]["onExit"] == wt["spec"]["onExit"]
    assert handler(rollback_wt) == handler(wt)


def test_exit_handler_rolls_back_only_on_failure_and_always_reports(wt: dict) -> None:
    handler = argo_local.templates(wt)[wt["spec"]["onExit"]]
    steps = [s for group in handler["steps"] for s in group]
    rollback, report = steps
    assert rollback["template"] == "rollback" and rollback["when"] == "{{workflow.status}} != Succeeded"
    assert rollback["continueOn"] == {"failed": True, "error": True}
    assert report["template"] == "report" and "when" not in report
    # Bounded by its leaves' own deadlines (Argo refuses one on the steps template itself).
    assert "activeDeadlineSeconds" not in handler
    for step in steps:
        assert argo_local.templates(wt)[step["template"]]["activeDeadlineSeconds"] > 0


def test_only_safe_steps_retry(wt: dict, rollback_wt: dict) -> None:
    retried = {t["name"] for t in wt["spec"]["templates"] if "retryStrategy" in t}
    assert retried == {"materialize", "materialize-allow-interface-change", "ready", "smoke"}
    assert not [t["name"] for t in rollback_wt["spec"]["templates"] if "retryStrategy" in t]


def _pushes(pushgateway: str) -> float:
    """How many pushes the Pushgateway has taken, by its own request counter."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{pushgateway}/metrics", timeout=10).text
    counts = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "pushgateway_http_requests_total" and s.labels.get("handler") == "push"
    ]
    assert counts or "pushgateway_http_requests_total" in text, "the Pushgateway counts no requests"
    return sum(counts)


@pytest.mark.integration
@pytest.mark.parametrize(("bad", "status", "expected_exit"), [(False, "Succeeded", 0), (True, "Failed", 3)])
def test_the_yaml_runs(
    wt: dict,
    env: Env,
    registry: Registry,
    pushgateway: str,
    model_name: str,
    bad: bool,
    status: str,
    expected_exit: int,
) -> None:
    """Every container command of the committed YAML, run locally in DAG order, then onExit."""
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    v2 = registry.register(model_name, linear_model(seed=2, produce_nan=bad))
    pvc = env.repo.parent
    argo = argo_local.LocalArgo(
        data=wt,
        parameters={"model": model_name, "alias": "champion"},
        workflow_name=f"tritonops-deploy-{'bad' if bad else 'good'}-{v2}",
        env=env.env(TRITONOPS_PUSHGATEWAY=pushgateway),
        mount_map={
            "/pvc": pvc,
            "/tmp": pvc.parent / "scratch",
            # The dev overlay's ConfigMap of per-model config templates, as mounted.
            deploy_template.MODEL_CONFIG_DIR: ROOT / "k8s" / "overlays" / "dev" / "model-config",
        },
    )

    pushes_before = _pushes(pushgateway)
    assert argo.run() == status, argo.log
    assert _pushes(pushgateway) - pushes_before == 1  # the exit handler's report, and nothing else
    ran = argo.ran()
    if bad:
        assert ("smoke", expected_exit) in ran
        assert ("commit", 0) not in ran and ("rollback", 0) in ran
        assert env.current(model_name)["active_version"] == v1
        assert env.quarantined(model_name)[0].name.startswith(f"{v2}.failed_")
        assert env.history(model_name)[-1]["outcome"] == "rolled_back"
    else:
        assert [name for name, code in ran if code == 0] == [
            "recover",
            "snapshot",
            "materialize",
            "load",
            "ready",
            "smoke",
            "commit",
            "report",
        ]
        assert ("rollback", -1) in ran  # skipped by its `when`
        assert env.current(model_name)["active_version"] == v2
    assert ran[-1] == ("report", 0)
    assert "pushed to" in argo.log[-1][2]
    from tests.integration.test_metrics_push import scrape

    metrics = scrape(pushgateway, model_name)
    assert metrics['tritonops_deploy_outcome{outcome="rolled_back"}'] == (1 if bad else 0)
    journal = json.loads(
        (pvc / "state" / "runs" / model_name / argo.workflow_name / "journal.json").read_text()
    )
    assert journal["run_id"] == argo.workflow_name


def test_the_committed_dag_is_the_step_table() -> None:
    """The deploy entry points run exactly the step table's steps, in its order, each with its
    deadline and retries (tritonops/core/steps.py); the CLI's step names are the table's too."""
    import yaml

    from tritonops import cli
    from tritonops.core import steps

    wt = yaml.safe_load((ROOT / "k8s" / "base" / "workflowtemplate.yaml").read_text())
    templates = {t["name"]: t for t in wt["spec"]["templates"]}
    for entry in ("deploy", "deploy-allow-interface-change"):
        tasks = templates[entry]["dag"]["tasks"]
        assert [t["name"] for t in tasks] == ["recover", *(spec.name for spec in steps.DEPLOY)]
        for task, spec in zip(tasks[1:], steps.DEPLOY, strict=True):
            template = templates[task["template"]]
            assert template["activeDeadlineSeconds"] == spec.deadline_s, spec.name
            retries = int(template.get("retryStrategy", {}).get("limit", 0))
            assert retries == spec.retries, spec.name
            assert template["container"]["args"][:2] == ["step", spec.name]
    assert (*(spec.name for spec in steps.DEPLOY), "rollback", "report") == cli.STEP_NAMES
    rollback = yaml.safe_load((ROOT / "k8s" / "base" / "workflowtemplate-rollback.yaml").read_text())
    [to] = [t for t in rollback["spec"]["templates"] if t["name"] == "rollback-to-version"]
    assert to["activeDeadlineSeconds"] == sum(spec.deadline_s for spec in steps.ROLLBACK_TO)
