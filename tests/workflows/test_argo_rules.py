"""Rules of Argo's validator and controller that the CRD schema cannot express, checked on every
committed WorkflowTemplate and CronWorkflow; each rule is also shown to catch the mistake it is
about."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from workflows.cron_workflows import DRIFT_OUTPUT, FOLLOW_OUTPUT
from workflows.outputs import OUTPUTS

from tests.workflows import argo_local, argo_rules
from tests.workflows.test_workflow_template import YAML_PATH

STATUS_VALUES = {"workflow.status": list(argo_rules.EXIT_STATUSES)}
# What the placeholders of every `when` can be at run time: the workflow's status in an exit
# handler; a CLI exit code (0 ok, 2 bad input, 3 rolled back, 4 inconsistent, 75 retryable).
WHEN_VALUES = STATUS_VALUES | {"steps.status.exitCode": ["0", "2", "3", "4", "75"]}


@pytest.fixture(scope="module")
def wt() -> dict[str, Any]:
    return argo_local.load(YAML_PATH)


@pytest.fixture(scope="module")
def follow() -> dict[str, Any]:
    return argo_local.load(FOLLOW_OUTPUT)


@pytest.fixture(scope="module")
def drift() -> dict[str, Any]:
    return argo_local.load(DRIFT_OUTPUT)


@pytest.fixture(params=sorted(OUTPUTS), ids=lambda p: p.name)
def argo_object(request: pytest.FixtureRequest) -> dict[str, Any]:
    path: Path = request.param
    return argo_local.load(path)


def test_every_rule_holds_for_every_argo_object(argo_object: dict[str, Any]) -> None:
    """The same checks for each WorkflowTemplate and CronWorkflow we ship (a CronWorkflow's
    workflowSpec is validated as the Workflow it creates, as validate.CronWorkflow does)."""
    view = argo_local.workflow_view(argo_object)
    found = (
        argo_rules.name_violations(argo_object)
        + (argo_rules.cron_violations(argo_object) if argo_object["kind"] == "CronWorkflow" else [])
        + argo_rules.leaf_only_fields(view)
        + argo_rules.unresolved_placeholders(view)
        + argo_rules.undefined_templates(view)
        + argo_rules.step_violations(view)
        + argo_rules.resource_violations(view)
        + argo_rules.bad_when_expressions(view, WHEN_VALUES)
    )
    assert found == []
    leaves = [t for t in view["spec"]["templates"] if argo_rules.template_type(t) in argo_rules.LEAF_TYPES]
    assert leaves and all("activeDeadlineSeconds" in t for t in leaves), "every leaf has a deadline"


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


def _longest(doc: dict[str, Any], name: str) -> float:
    """The longest a template may legitimately run: a leaf its budget; a DAG its longest chain of
    dependencies; steps their groups one after the other, each as long as its longest step
    (a `withParam` fans out in parallel)."""
    templates = argo_local.templates(doc)
    tmpl = templates[name]
    if "dag" in tmpl:
        finish: dict[str, float] = {}
        for task in argo_local.dag_order(doc, name):
            deps = [d.strip() for d in task.get("depends", "").split("&&") if d.strip()]
            finish[task["name"]] = max((finish[d] for d in deps), default=0) + _longest(doc, task["template"])
        return max(finish.values())
    if "steps" in tmpl:
        return sum(max(_longest(doc, s["template"]) for s in group) for group in tmpl["steps"])
    return _budget(tmpl)


def test_every_workflow_deadline_covers_its_longest_entry_point(argo_object: dict[str, Any]) -> None:
    """The workflow deadline is a backstop that must not cut a legitimate run short, for any entry
    point an operator may pick (`--entrypoint`), the exit handler included."""
    view = argo_local.workflow_view(argo_object)
    spec = view["spec"]
    entries = [t["name"] for t in spec["templates"] if "dag" in t] or [spec["entrypoint"]]
    exit_budget = _longest(view, spec["onExit"]) if spec.get("onExit") else 0
    for entry in entries:
        needed = _longest(view, entry) + exit_budget
        assert int(spec["activeDeadlineSeconds"]) >= needed, (
            f"{entry}: {spec['activeDeadlineSeconds']}s < {needed}s"
        )


def test_the_deadline_check_catches_a_short_one(drift: dict[str, Any]) -> None:
    view = copy.deepcopy(argo_local.workflow_view(drift))
    view["spec"]["activeDeadlineSeconds"] = _longest(view, view["spec"]["entrypoint"]) - 1
    with pytest.raises(AssertionError):
        test_every_workflow_deadline_covers_its_longest_entry_point(view)


# --- steps: outputs and loop items in scope ------------------------------------------------


def _steps(doc: dict[str, Any], template: str) -> list[dict[str, Any]]:
    return [s for g in argo_local.templates(argo_local.workflow_view(doc))[template]["steps"] for s in g]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda d: _steps(d, "follow")[1].__setitem__("withParam", "{{steps.moved.outputs.reslt}}"),
            "templates.follow.deploy: failed to resolve {{steps.moved.outputs.reslt}}",
            id="misspelt-output",
        ),
        pytest.param(
            lambda d: _steps(d, "follow")[1].__setitem__("withParam", "{{steps.check.outputs.result}}"),
            "templates.follow.deploy: failed to resolve {{steps.check.outputs.result}}",
            id="unknown-step",
        ),
        pytest.param(
            lambda d: _steps(d, "follow")[1].pop("withParam"),
            "templates.follow.deploy: failed to resolve {{item.model}}",
            id="item-without-loop",
        ),
        pytest.param(
            # Both steps in one group: the second cannot read the first's output yet.
            lambda d: argo_local.templates(argo_local.workflow_view(d))["follow"].__setitem__(
                "steps", [[_steps(d, "follow")[0], _steps(d, "follow")[1]]]
            ),
            "templates.follow.deploy: failed to resolve {{steps.moved.outputs.result}}",
            id="same-group",
        ),
        pytest.param(
            lambda d: next(t for t in argo_local.workflow_view(d)["spec"]["templates"] if "resource" in t)[
                "inputs"
            ]["parameters"].pop(),
            "templates.submit-deploy: failed to resolve {{inputs.parameters.alias}}",
            id="resource-manifest-input",
        ),
    ],
)
def test_rule_step_outputs_and_items_must_be_in_scope(follow: dict[str, Any], mutate, expected: str) -> None:
    broken = copy.deepcopy(follow)
    mutate(broken)
    assert expected in argo_rules.unresolved_placeholders(argo_local.workflow_view(broken))


def test_rule_exit_code_of_a_resource_step_is_not_in_scope(drift: dict[str, Any]) -> None:
    """`exitCode` and `outputs.result` exist for container-like templates only."""
    broken = copy.deepcopy(drift)
    view = argo_local.workflow_view(broken)
    templates = argo_local.templates(view)
    templates["status"].pop("container")
    templates["status"]["resource"] = {"action": "get", "manifest": "kind: ConfigMap"}
    assert "templates.repair-model.recover: failed to resolve {{steps.status.exitCode}}" in (
        argo_rules.unresolved_placeholders(view)
    )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s.__setitem__("name", "Deploy_1"), "name 'Deploy_1' is invalid"),
        (lambda s: s.__setitem__("withItems", [1]), "only one of withItems, withParam, withSequence"),
        (lambda s: s.__setitem__("withParam", "[{'model': 'x'}"), "neither a placeholder nor a JSON list"),
    ],
)
def test_rule_steps_catches_a_bad_step(follow: dict[str, Any], mutate, expected: str) -> None:
    broken = copy.deepcopy(follow)
    mutate(_steps(broken, "follow")[1])
    assert any(expected in v for v in argo_rules.step_violations(argo_local.workflow_view(broken)))


def test_rule_steps_catches_a_duplicate_name(follow: dict[str, Any]) -> None:
    broken = copy.deepcopy(follow)
    _steps(broken, "follow")[1]["name"] = "moved"
    assert argo_rules.step_violations(argo_local.workflow_view(broken)) == [
        "templates.follow.steps.moved: name 'moved' is not unique"
    ]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.__setitem__("action", "submit"), "action must be one of"),
        (lambda r: r.pop("manifest"), "manifest or templates.submit-deploy.resource.manifestFrom"),
        (lambda r: r.__setitem__("manifest", "kind: Workflow\n  spec: [x"), "must be a valid yaml"),
    ],
)
def test_rule_resource_catches_a_bad_one(follow: dict[str, Any], mutate, expected: str) -> None:
    broken = copy.deepcopy(follow)
    view = argo_local.workflow_view(broken)
    mutate(argo_local.templates(view)["submit-deploy"]["resource"])
    assert any(expected in v for v in argo_rules.resource_violations(view))


# --- drift repair: recover exactly where status did not exit 0 ------------------------------


def test_drift_repair_recovers_exactly_where_status_failed(drift: dict[str, Any]) -> None:
    status, recover = _steps(drift, "repair-model")
    assert status["template"] == "status" and status["continueOn"] == {"failed": True}
    assert recover["template"] == "recover" and "continueOn" not in recover
    runs = {
        code: argo_rules.evaluate_when(recover["when"], {"steps.status.exitCode": code})
        for code in WHEN_VALUES["steps.status.exitCode"]
    }
    assert runs == {"0": False, "2": True, "3": True, "4": True, "75": True}


# --- CronWorkflows: validate.CronWorkflow ---------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    ["*/5 * * * *", "0 3 * * MON-FRI", "15,45 */2 1-15 jan,jul ?", "@hourly", "@every 1h30m",
     "CRON_TZ=Europe/Paris 0 9 * * 1", "5/15 * * * *", "*/61 * * * *", "@every 0"],
)  # fmt: skip
def test_schedule_parser_accepts_what_robfig_accepts(schedule: str) -> None:
    argo_rules.parse_schedule(schedule)


@pytest.mark.parametrize(
    "schedule",
    ["*/5 * * *", "*/5 * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 7",
     "*/0 * * * *", "5-2 * * * *", "1-2-3 * * * *", "*/5/2 * * * *", "@minutely", "@every 5",
     "CRON_TZ=Mars/Olympus 0 9 * * 1", "", "x * * * *"],
)  # fmt: skip
def test_schedule_parser_refuses_what_robfig_refuses(schedule: str) -> None:
    with pytest.raises(ValueError):
        argo_rules.parse_schedule(schedule)


def test_cron_workflows_schedules_and_policies(follow: dict[str, Any], drift: dict[str, Any]) -> None:
    from workflows import cron_workflows

    for cron, schedule in ((follow, cron_workflows.FOLLOW_SCHEDULE), (drift, cron_workflows.DRIFT_SCHEDULE)):
        spec = cron["spec"]
        assert spec["schedules"] == [schedule] and "schedule" not in spec
        assert spec["concurrencyPolicy"] == "Forbid"
        # Missed runs are dropped, not started late: within one period of the schedule.
        assert 0 < spec["startingDeadlineSeconds"] < 600
    assert cron_workflows.FOLLOW_SCHEDULE == "*/5 * * * *"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s.__setitem__("schedules", []), "at least one schedule"),
        (lambda s: s.__setitem__("schedules", ["*/5 * * *"]), "is malformed"),
        (lambda s: s.__setitem__("schedules", ["*/5 25 * * *"]), "is malformed"),
        (lambda s: s.__setitem__("schedule", "*/5 * * * *"), "spec.schedule is gone"),
        (lambda s: s.__setitem__("concurrencyPolicy", "forbid"), "'forbid' is not a valid concurrencyPolicy"),
        (lambda s: s.__setitem__("startingDeadlineSeconds", -1), "startingDeadlineSeconds must be positive"),
        (lambda s: s.__setitem__("timezone", "Europe/Pariss"), "invalid timezone"),
    ],
)
def test_rule_cron_catches_a_bad_spec(follow: dict[str, Any], mutate, expected: str) -> None:
    broken = copy.deepcopy(follow)
    mutate(broken["spec"])
    assert any(expected in v for v in argo_rules.cron_violations(broken))


def test_rule_cron_catches_a_long_name(follow: dict[str, Any]) -> None:
    broken = copy.deepcopy(follow)
    broken["metadata"]["name"] = "tritonops-follow-" + "x" * 36  # 53: its workflows' names would not fit
    assert argo_rules.name_violations(broken) == [
        f"CronWorkflow name '{broken['metadata']['name']}' must not be more than 52 characters long"
    ]
