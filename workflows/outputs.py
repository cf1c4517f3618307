"""Every generated Argo object and the file under k8s/base it is committed as.

`make k8s-generate` (this file run as a script) writes them all (`--check`: exit 1 if any
committed file differs, writing nothing); a test compares each committed file with its renderer
and checks k8s/base/kustomization.yaml lists it. The one module that knows every output: the
renderers never import it (no cycle).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflows import cron_workflows, deploy_template  # noqa: E402

OUTPUTS: dict[Path, Callable[[], str]] = {
    deploy_template.OUTPUT: deploy_template.to_yaml,
    deploy_template.ROLLBACK_OUTPUT: deploy_template.rollback_yaml,
    cron_workflows.FOLLOW_OUTPUT: cron_workflows.follow_yaml,
    cron_workflows.DRIFT_OUTPUT: cron_workflows.drift_yaml,
}


def main(argv: list[str]) -> int:
    stale = [path for path, render in OUTPUTS.items() if not path.exists() or path.read_text() != render()]
    if "--check" in argv:
        return 1 if stale else 0
    for path, render in OUTPUTS.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render())
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
