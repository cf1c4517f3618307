"""The Dockerfile cannot be built here (no Docker engine); check what can be checked offline."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"\[.*\]", "", name).lower().replace("_", "-")] = version
    return pins


def test_image_pins_equal_what_ci_tested() -> None:
    image = _pins(ROOT / "image" / "requirements.txt")
    tested = _pins(ROOT / "requirements" / "constraints.txt")
    assert image, "image/requirements.txt is empty"
    for name, version in image.items():
        assert tested.get(name) == version, f"{name}=={version} in the image, {tested.get(name)} in CI"


def test_dockerfile_runs_tritonops_as_non_root_with_nothing_extra() -> None:
    text = (ROOT / "Dockerfile").read_text()
    final = text.split("\nFROM ")[-1]  # the last stage is what ships
    assert 'ENTRYPOINT ["tritonops"]' in final
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert "COPY --from=build /opt/tritonops /opt/tritonops" in final
    assert "pip install" not in final and "apt-get" not in final  # no build tools or caches shipped
    assert "PIP_NO_CACHE_DIR=1" in text
    # Same user as the WorkflowTemplate's securityContext.
    wt = (ROOT / "k8s" / "base" / "workflowtemplate.yaml").read_text()
    assert "runAsUser: 10001" in wt
