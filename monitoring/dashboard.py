"""The tritonops Grafana dashboard, as code (plain dashboard JSON, schemaVersion 39).

Variables: ``datasource`` (Prometheus), ``model``, ``version``. Latency comes
from Triton's summaries (``--metrics-config summary_latencies=true``): a
summary's quantiles cannot be averaged or summed across replicas, so p95 is
charted per replica and as the maximum over replicas — never as an "average
p95". Averages come from the cumulative duration counters.
"""

from __future__ import annotations

from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
T = 'job="triton", model=~"$model", version=~"$version"'
P = 'job="tritonops", model=~"$model"'
RATE = "$__rate_interval"


def _target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def _panel(
    pid: int,
    title: str,
    kind: str,
    grid: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    unit: str = "short",
    description: str = "",
    **options: Any,
) -> dict[str, Any]:
    x, y, w, h = grid
    panel: dict[str, Any] = {
        "id": pid,
        "title": title,
        "type": kind,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "description": description,
    }
    panel.update(options)
    return panel


def panels() -> list[dict[str, Any]]:
    success = f"sum by (model, version) (rate(nv_inference_request_success{{{T}}}[{RATE}]))"
    failure = f"sum by (model, version) (rate(nv_inference_request_failure{{{T}}}[{RATE}]))"
    return [
        _panel(
            1,
            "Active version",
            "stat",
            (0, 0, 4, 4),
            [_target(f"max by (model) (tritonops_deploy_active_version{{{P}}})", "{{model}}")],
            description="The version in current.json after the last run (pushed by tritonops).",
        ),
        _panel(
            2,
            "Last deploy outcome",
            "stat",
            (4, 0, 8, 4),
            [
                _target(
                    f"max by (model, outcome) (tritonops_deploy_outcome{{{P}}}) == 1",
                    "{{model}}: {{outcome}}",
                )
            ],
            description="committed / rolled_back / rollback_failed / rejected. rollback_failed needs a human now.",
            options={"textMode": "name", "colorMode": "background"},
        ),
        _panel(
            3,
            "Time since last rollback",
            "stat",
            (12, 0, 6, 4),
            [
                _target(
                    f"time() - max by (model) (tritonops_deploy_last_rollback_timestamp_seconds{{{P}}})",
                    "{{model}}",
                )
            ],
            unit="s",
        ),
        _panel(
            4,
            "Last deploy duration by step",
            "bargauge",
            (18, 0, 6, 4),
            [_target(f"max by (step) (tritonops_deploy_step_duration_seconds{{{P}}})", "{{step}}")],
            unit="s",
        ),
        _panel(
            5,
            "p95 latency per replica",
            "timeseries",
            (0, 4, 12, 8),
            [
                _target(
                    f'nv_inference_request_summary_us{{{T}, quantile="0.95"}} / 1000',
                    "{{instance}} v{{version}}",
                )
            ],
            unit="ms",
            description=(
                "Per replica: Triton's p95 over its summary window. Summaries do not aggregate "
                "across replicas, so there is no fleet-wide p95; the next panel shows the worst replica."
            ),
        ),
        _panel(
            6,
            "p95 / p99 latency, worst replica",
            "timeseries",
            (12, 4, 12, 8),
            [
                _target(
                    f'max by (model, version) (nv_inference_request_summary_us{{{T}, quantile="0.95"}}) / 1000',
                    "p95 {{model}} v{{version}}",
                ),
                _target(
                    f'max by (model, version) (nv_inference_request_summary_us{{{T}, quantile="0.99"}}) / 1000',
                    "p99 {{model}} v{{version}}",
                    "B",
                ),
            ],
            unit="ms",
            description="Max over replicas of each replica's quantile: an upper bound, not a fleet quantile.",
        ),
        _panel(
            7,
            "Request rate",
            "timeseries",
            (0, 12, 8, 8),
            [_target(f"{success} + {failure}", "{{model}} v{{version}}")],
            unit="reqps",
        ),
        _panel(
            8,
            "Failure ratio by reason",
            "timeseries",
            (8, 12, 8, 8),
            [
                _target(
                    f"sum by (model, reason) (rate(nv_inference_request_failure{{{T}}}[{RATE}]))"
                    f" / on (model) group_left ()"
                    f" (sum by (model) (rate(nv_inference_request_success{{{T}}}[{RATE}]))"
                    f" + sum by (model) (rate(nv_inference_request_failure{{{T}}}[{RATE}])))",
                    "{{model}} {{reason}}",
                )
            ],
            unit="percentunit",
            description="REJECTED: overload or invalid requests. BACKEND: the model failed. CANCELED: clients gave up.",
        ),
        _panel(
            9,
            "Average latency: queue vs compute",
            "timeseries",
            (16, 12, 8, 8),
            [
                _target(
                    f"sum by (model, version) (rate(nv_inference_queue_duration_us{{{T}}}[{RATE}])) / {success} / 1000",
                    "queue {{model}} v{{version}}",
                ),
                _target(
                    f"sum by (model, version) (rate(nv_inference_compute_infer_duration_us{{{T}}}[{RATE}])) / {success} / 1000",
                    "compute {{model}} v{{version}}",
                    "B",
                ),
                _target(
                    f"sum by (model, version) (rate(nv_inference_request_duration_us{{{T}}}[{RATE}])) / {success} / 1000",
                    "end to end {{model}} v{{version}}",
                    "C",
                ),
            ],
            unit="ms",
            description="From Triton's cumulative duration counters (averages). Queue time growing = add capacity.",
        ),
    ]


ANNOTATIONS = [
    ("Deploy committed", "tritonops_deploy_last_success_timestamp_seconds", "green"),
    ("Rollback", "tritonops_deploy_last_rollback_timestamp_seconds", "red"),
]


def annotations() -> list[dict[str, Any]]:
    """Deploy and rollback markers, placed at the pushed timestamps (the series value)."""
    return [
        {
            "name": name,
            "datasource": DS,
            "enable": True,
            "iconColor": color,
            "expr": f"max by (model) ({metric}{{{P}}}) * 1000",
            "useValueForTime": True,
            "step": "60s",
            "titleFormat": name,
            "textFormat": "{{model}}",
        }
        for name, metric, color in ANNOTATIONS
    ]


def _var(name: str, query: str, multi: bool = True, regex: str = "") -> dict[str, Any]:
    return {
        "regex": regex,
        "name": name,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "multi": multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": "All", "value": "$__all"},
        "sort": 1,
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "tritonops",
        "title": "tritonops — Triton deploys and serving",
        "tags": ["tritonops", "triton"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "current": {}},
                # Candidates under verification (`_candidate.<model>`) are not production models.
                _var(
                    "model",
                    'label_values(nv_inference_request_success{job="triton"}, model)',
                    regex="/^(?!_candidate\\.).*/",
                ),
                _var(
                    "version",
                    'label_values(nv_inference_request_success{job="triton", model=~"$model"}, version)',
                ),
            ]
        },
        "annotations": {"list": annotations()},
        "panels": panels(),
    }


def expressions() -> list[str]:
    """Every PromQL expression in the dashboard (panels, annotations), for the end-to-end test."""
    board = dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in board["annotations"]["list"]]
    return exprs
