"""Alert rules and dashboard as code: generated files current, promtool checks and unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring import alerts, dashboard, generate

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "rules.yaml"
RULE_TESTS = ROOT / "monitoring" / "rules_test.yaml"


def promtool() -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: run `make system-deps`"
    return binary


def test_generated_files_are_current() -> None:
    stale = [
        str(p.relative_to(ROOT))
        for p, text in generate.outputs().items()
        if not p.is_file() or p.read_text() != text
    ]
    assert not stale, f"run `make k8s-generate` and commit: {stale}"


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.RECORDING) + len(alerts.ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass_as_an_operator_runs_them() -> None:
    """Exactly the documented command, on the committed files: annotations (rendered) included."""
    result = subprocess.run(
        [promtool(), "test", "rules", "monitoring/rules_test.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _run_rule_tests(tmp_path: Path, mutate) -> subprocess.CompletedProcess[str]:
    """promtool test rules on a copy of the rules, one of them broken by ``mutate``."""
    data = yaml.safe_load(RULES.read_text())
    for group in data["groups"]:
        for rule in group["rules"]:
            mutate(rule)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(data))
    shutil.copy(RULE_TESTS, tmp_path / "rules_test.yaml")
    return subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "rules_test.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("alert", "change"),
    [
        ("TritonopsRollback", lambda r: r.update(expr=r["expr"].replace("< 900", "< 60"))),
        ("TritonopsCommittedVersionNotServed", lambda r: r.update({"for": "0s"})),
        ("TritonErrorBudgetSlowBurn", lambda r: r.update(expr=r["expr"].replace("> 0.006", "> 0.02"))),
        ("TritonMetricsAbsent", lambda r: r.update(expr='absent(up{job=~"triton|tritonops/triton"})')),
        ("TritonopsPushgatewayAbsent", lambda r: r.update({"for": "30m"})),
        ("TritonopsRollback", lambda r: r["annotations"].update(summary="{{ $labels.modle }}: rolled back")),
    ],
)
def test_the_unit_tests_catch_a_broken_rule(tmp_path: Path, alert: str, change) -> None:
    def mutate(rule: dict) -> None:
        if rule.get("alert") == alert:
            change(rule)

    result = _run_rule_tests(tmp_path, mutate)
    assert result.returncode != 0 and alert in result.stdout + result.stderr


def test_every_alert_is_unit_tested_and_says_what_to_do() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    names = {a.name for a in alerts.ALERTS}
    assert names == tested
    required = {"TritonopsRollback", "TritonopsRollbackFailed", "TritonopsCommittedVersionNotServed",
                "TritonLatencyP95High", "TritonErrorBudgetFastBurn", "TritonErrorBudgetSlowBurn",
                "TritonopsMetricsPushFailing", "TritonMetricsAbsent",
                "TritonopsPushgatewayAbsent"}  # fmt: skip
    assert required <= names
    for alert in alerts.ALERTS:
        assert alert.severity in {"warning", "critical"}
        assert alert.summary and len(alert.description) > 80


def test_prometheusrule_carries_the_same_groups() -> None:
    rule = yaml.safe_load((ROOT / "k8s" / "base" / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule" and rule["metadata"]["labels"]["release"]
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_dashboard_shape() -> None:
    board = dashboard.dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "model", "version"}
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for needed in ("p95", "p99", "request rate", "failure ratio", "queue", "active version", "outcome"):
        assert needed in titles
    assert {a["name"] for a in board["annotations"]["list"]} == {"Deploy committed", "Rollback"}
    for expr in dashboard.expressions():
        assert "$" not in expr.replace("$model", "").replace("$version", "").replace("$__rate_interval", "")
