"""The Argo WorkflowTemplate: generated YAML in Git, validated strictly, and proven to run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.helpers import Env, Registry
from tests.workflows import argo_local
from tritonops.local.samples import linear_model
from workflows import deploy_template

ROOT = Path(__file__).resolve().parents[2]
YAML_PATH = ROOT / "k8s" / "base" / "workflowtemplate.yaml"


@pytest.fixture(scope="module")
def wt() -> dict:
    return argo_local.load(YAML_PATH)


def test_committed_yaml_matches_the_python(wt: dict) -> None:
    assert YAML_PATH.read_text() == deploy_template.to_yaml(), (
        "k8s/base/workflowtemplate.yaml is stale: run `make k8s-generate` and commit the result"
    )


def test_parses_strictly(wt: dict) -> None:
    argo_local.strict_parse(wt)


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


def test_one_image_one_volume_least_privilege(wt: dict) -> None:
    containers = [t["container"] for t in wt["spec"]["templates"] if "container" in t]
    assert len(containers) == 9
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
    assert params == {"model", "alias"}  # credentials never travel as parameters
    assert wt["spec"]["synchronization"]["mutexes"] == [{"name": "tritonops-{{workflow.parameters.model}}"}]


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


def test_only_safe_steps_retry(wt: dict) -> None:
    retried = {t["name"] for t in wt["spec"]["templates"] if "retryStrategy" in t}
    assert retried == {"materialize", "ready", "smoke"}


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

    assert argo.run() == status, argo.log
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
