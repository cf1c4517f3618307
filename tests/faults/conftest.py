"""The fault matrix's rig (two Triton replicas, an MLflow tracking server over HTTP, a
Pushgateway, all real local processes) and the table it prints at the end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import Env, Registry
from tritonops.local.processes import Process, start_mlflow_server, start_triton


@dataclass
class Row:
    scenario: str
    expected: str
    observed: str
    failed_requests: str
    passed: bool


ROWS: list[Row] = []


@dataclass
class Rig:
    root: Path
    tritons: list[Process]
    mlflow: Process
    registry: Registry
    logs: Path
    restarts: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def repo(self) -> Path:
        return self.root / "pvc" / "models"

    @property
    def state(self) -> Path:
        return self.root / "pvc" / "state"

    @property
    def urls(self) -> list[str]:
        return [t.url for t in self.tritons if t.url]

    def env(self) -> Env:
        return Env(
            repo=self.repo, state=self.state, tracking_uri=self.registry.tracking_uri, triton_urls=self.urls
        )

    def restart_triton(self, i: int) -> None:
        port = int(str(self.tritons[i].url).rsplit(":", 1)[1])
        self.restarts += 1
        self.tritons[i] = start_triton(
            self.repo, self.logs / f"triton-{i}-{self.restarts}.log", http_port=port
        )[0]

    def restart_mlflow(self) -> None:
        port = int(str(self.mlflow.url).rsplit(":", 1)[1])
        self.restarts += 1
        self.mlflow = start_mlflow_server(
            self.root / "mlflow", self.logs / f"mlflow-{self.restarts}.log", port=port
        )[0]


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("faults")
    (root / "pvc" / "models").mkdir(parents=True)
    logs = root / "logs"
    mlflow, url = start_mlflow_server(root / "mlflow", logs / "mlflow.log")
    tritons = [start_triton(root / "pvc" / "models", logs / f"triton-{i}.log")[0] for i in range(2)]
    r = Rig(root, tritons, mlflow, Registry(tracking_uri=url, artifacts=None), logs)
    yield r
    for t in r.tritons:
        t.stop()
    r.mlflow.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    widths = [max(len(h), *(len(getattr(r, a)) for r in ROWS)) for h, a in
              (("scenario", "scenario"), ("expected", "expected"), ("observed", "observed"), ("failed requests", "failed_requests"))]  # fmt: skip
    header = ["scenario", "expected", "observed", "failed requests", "result"]
    line = "  ".join(h.ljust(w) for h, w in zip(header, [*widths, 6], strict=True))
    terminalreporter.write_sep("=", "fault matrix")
    terminalreporter.write_line(line)
    for r in ROWS:
        cells = [r.scenario, r.expected, r.observed, r.failed_requests]
        terminalreporter.write_line(
            "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            + "  "
            + ("PASS" if r.passed else "FAIL")
        )
    failed = sum(not r.passed for r in ROWS)
    terminalreporter.write_line(
        f"fault matrix: {len(ROWS) - failed} of {len(ROWS)} scenarios behaved as expected"
    )
