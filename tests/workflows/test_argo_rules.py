"""Rules of Argo's validator and controller that the CRD schema cannot express, checked on the
committed WorkflowTemplate; each rule is also shown to catch the mistake it is about."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.workflows import argo_local, argo_rules
from tests.workflows.test_workflow_template import YAML_PATH

STATUS_VALUES = {"workflow.status": list(argo_rules.EXIT_STATUSES)}


@pytest.fixture(scope="module")
def wt() -> dict[str, Any]:
    return argo_local.load(YAML_PATH)


def _tmpl(wt: dict[str, Any], name: str) -> dict[str, Any]:
    return argo_local.templates(wt)[name]


# --- activeDeadlineSeconds / retryStrategy only on leaf templates ---------------------------


def test_rule_deadlines_and_retries_only_on_leaf_templates(wt: dict[str, Any]) -> None:
    assert argo_rules.leaf_only_fields(wt) == []
    leaves = [t for t in wt["spec"]["templates"] if argo_rules.template_type(t) in argo_rules.LEAF_TYPES]
    assert all("activeDeadlineSeconds" in t for t in leaves), "every leaf has a deadline of its own"


@pytest.mark.parametrize("field", ["activeDeadlineSeconds", "retryStrategy", "timeout"])
@pytest.mark.parametrize("template", ["exit-handler", "deploy"])
def test_rule_leaf_only_catches_a_non_leaf_field(wt: dict[str, Any], template: str, field: str) -> None:
    broken = copy.deepcopy(wt)
    _tmpl(broken, template)[field] = {"limit": "1"} if field == "retryStrategy" else 60
    assert argo_rules.leaf_only_fields(broken) == [
        f"templates.{template}.{field} is only valid for leaf templates"
    ]


# --- every {{workflow.parameters.X}} / {{inputs.parameters.X}} is declared -------------------


def test_rule_every_parameter_referenced_is_declared(wt: dict[str, Any]) -> None:
    assert argo_rules.unresolved_placeholders(wt) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda d: d["spec"]["arguments"]["parameters"].pop(1),
            "failed to resolve {{workflow.parameters.alias}}",
            id="workflow-parameter-undeclared",
        ),
        pytest.param(
            lambda d: _tmpl(d, "report")["container"]["args"].append("{{inputs.parameters.reason}}"),
            "templates.report: failed to resolve {{inputs.parameters.reason}}",
            id="input-parameter-undeclared",
        ),
        pytest.param(
            lambda d: _tmpl(d, "report")["container"]["args"].append("{{workflow.nam}}"),
            "templates.report: failed to resolve {{workflow.nam}}",
            id="misspelt-global",
        ),
    ],
)
def test_rule_parameters_catches_an_undeclared_one(wt: dict[str, Any], mutate, expected: str) -> None:
    broken = copy.deepcopy(wt)
    mutate(broken)
    assert any(expected in v for v in argo_rules.unresolved_placeholders(broken))


def test_rule_parameters_accepts_a_declared_input(wt: dict[str, Any]) -> None:
    ok = copy.deepcopy(wt)
    _tmpl(ok, "report")["inputs"] = {"parameters": [{"name": "reason"}]}
    _tmpl(ok, "report")["container"]["args"].append("{{inputs.parameters.reason}}")
    assert argo_rules.unresolved_placeholders(ok) == []


# --- onExit / entrypoint / referenced templates exist ---------------------------------------


def test_rule_exit_handler_and_every_referenced_template_exist(wt: dict[str, Any]) -> None:
    assert wt["spec"]["onExit"] == "exit-handler"
    assert argo_rules.undefined_templates(wt) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda d: d["spec"].__setitem__("onExit", "exit-handlr"),
            "spec.onExit: template name 'exit-handlr' undefined",
            id="onExit",
        ),
        pytest.param(
            lambda d: d["spec"]["templates"].remove(_tmpl(d, "exit-handler")),
            "spec.onExit: template name 'exit-handler' undefined",
            id="exit-handler-removed",
        ),
        pytest.param(
            lambda d: _tmpl(d, "exit-handler")["steps"][1][0].__setitem__("template", "reprot"),
            "templates.exit-handler.report: template name 'reprot' undefined",
            id="step-template",
        ),
    ],
)
def test_rule_templates_catches_a_missing_one(wt: dict[str, Any], mutate, expected: str) -> None:
    broken = copy.deepcopy(wt)
    mutate(broken)
    assert expected in argo_rules.undefined_templates(broken)


# --- every `when` parses (govaluate, after substitution) -------------------------------------


def test_rule_every_when_parses_and_rolls_back_only_on_failure(wt: dict[str, Any]) -> None:
    assert argo_rules.when_expressions(wt), "the exit handler's rollback is conditional"
    assert argo_rules.bad_when_expressions(wt, STATUS_VALUES) == []
    [(_, _, when)] = argo_rules.when_expressions(wt)
    runs = {s: argo_rules.evaluate_when(when, {"workflow.status": s}) for s in argo_rules.EXIT_STATUSES}
    assert runs == {"Succeeded": False, "Failed": True, "Error": True}


@pytest.mark.parametrize(
    "when",
    [
        "{{workflow.status}} !== Succeeded",
        "{{workflow.status}} != Succeeded &&",
        "({{workflow.status}} != Succeeded",
        "{{workflow.status}}",
        "{{workflow.status}} != Succeeded; true",
        "{{workflow.stauts}} != Succeeded",
    ],
)
def test_rule_when_catches_a_bad_expression(wt: dict[str, Any], when: str) -> None:
    broken = copy.deepcopy(wt)
    _tmpl(broken, "exit-handler")["steps"][0][0]["when"] = when
    assert argo_rules.bad_when_expressions(broken, STATUS_VALUES)


@pytest.mark.parametrize(
    ("when", "status", "expected"),
    [
        ("{{workflow.status}} == Succeeded", "Succeeded", True),
        ("{{workflow.status}} =~ 'Fail|Err'", "Error", True),
        ("!({{workflow.status}} == Succeeded) && 1 < 2", "Failed", True),
        ("{{workflow.status}} == 'Failed' || {{workflow.status}} == Error", "Succeeded", False),
    ],
)
def test_when_checker_evaluates_like_govaluate(when: str, status: str, expected: bool) -> None:
    assert argo_rules.evaluate_when(when, {"workflow.status": status}) is expected


# --- retries: only on TEMPFAIL, within budgets the controller honours ------------------------


def test_retry_expressions_retry_only_on_tempfail(wt: dict[str, Any]) -> None:
    from workflows.deploy_template import TEMPFAIL

    retried = [t for t in wt["spec"]["templates"] if "retryStrategy" in t]
    assert retried
    for t in retried:
        expr = t["retryStrategy"]["expression"]
        assert argo_rules.retry_expression(expr, TEMPFAIL) is True
        assert argo_rules.retry_expression(expr, 1) is False
        assert argo_rules.retry_expression(expr, 3) is False
    with pytest.raises(AttributeError):
        argo_rules.retry_expression("asInt(lastRetry.exitcode) == 75", 75)


def test_retry_budget_never_cuts_an_attempt_short(wt: dict[str, Any]) -> None:
    """Argo hands backoff.maxDuration (counted from the first attempt's start) to every attempt's
    pod as its deadline and stops retrying after it: it must be at least the step's own deadline,
    with room for a retry after a full-length attempt."""
    for t in wt["spec"]["templates"]:
        if "retryStrategy" not in t:
            continue
        backoff = t["retryStrategy"]["backoff"]
        max_duration = argo_rules.go_duration_seconds(backoff["maxDuration"])
        deadline = int(t["activeDeadlineSeconds"])
        first_wait = argo_rules.go_duration_seconds(backoff["duration"])
        assert max_duration >= deadline, f"{t['name']}: maxDuration {max_duration}s < deadline {deadline}s"
        assert max_duration >= deadline + first_wait + 1, f"{t['name']}: no room for a single retry"


def _budget(t: dict[str, Any]) -> float:
    """How long a step may legitimately run: its deadline, or its retry budget when longer."""
    deadline = float(t["activeDeadlineSeconds"])
    if "retryStrategy" in t:
        return max(deadline, argo_rules.go_duration_seconds(t["retryStrategy"]["backoff"]["maxDuration"]))
    return deadline


def test_workflow_deadline_covers_every_step_and_the_exit_handler(wt: dict[str, Any]) -> None:
    templates = argo_local.templates(wt)
    dag = [templates[task["template"]] for task in templates[wt["spec"]["entrypoint"]]["dag"]["tasks"]]
    exit_steps = [templates[s["template"]] for g in templates[wt["spec"]["onExit"]]["steps"] for s in g]
    needed = sum(_budget(t) for t in dag + exit_steps)
    assert int(wt["spec"]["activeDeadlineSeconds"]) >= needed, (
        f"workflow deadline {wt['spec']['activeDeadlineSeconds']}s < {needed}s of step budgets"
    )
