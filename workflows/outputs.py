"""Every generated Argo object and the file under k8s/base it is committed as.

`make k8s-generate` (workflows/deploy_template.py run as a script) writes them all; a test
compares each committed file with its renderer and checks k8s/base/kustomization.yaml lists it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from workflows import cron_workflows, deploy_template

OUTPUTS: dict[Path, Callable[[], str]] = {
    deploy_template.OUTPUT: deploy_template.to_yaml,
    deploy_template.ROLLBACK_OUTPUT: deploy_template.rollback_yaml,
    cron_workflows.FOLLOW_OUTPUT: cron_workflows.follow_yaml,
    cron_workflows.DRIFT_OUTPUT: cron_workflows.drift_yaml,
}
