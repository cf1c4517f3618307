"""Kubernetes manifests: every overlay builds, core resources validate against Kubernetes
schemas (unknown fields rejected), every pod runs with least privilege, and what a real cluster
would do with them (ArgoCD pruning, kubelet's chown, rollouts on full GPU nodes, DNS in another
namespace, a fresh volume) does not hurt."""

from __future__ import annotations

import math
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s.manifests import K8S, OVERLAYS, ROOT, build, by_kind, kustomization, kustomize, one
from tests.k8s.manifests import selector_matches as matches
from tests.workflows import argo_local
from workflows import deploy_template

K8S_VERSION = "1.30"
CORE_KINDS = {
    "Namespace", "PersistentVolumeClaim", "ServiceAccount", "Role", "RoleBinding",
    "ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
}  # fmt: skip
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def resources(overlay: str) -> list[dict]:
    return build(overlay)


def test_core_resources_validate_strictly(resources: list[dict]) -> None:
    import kubernetes_validate

    seen = set()
    for r in resources:
        if r["kind"] in CORE_KINDS:
            kubernetes_validate.validate(r, K8S_VERSION, strict=True)
            seen.add(r["kind"])
    assert seen == CORE_KINDS


def test_schema_validation_catches_a_typo() -> None:
    import kubernetes_validate

    svc = by_kind(build("dev"), "Service")[0]
    svc["spec"]["clusterIPP"] = "None"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(svc, K8S_VERSION, strict=True)


# --- image: what `make image` builds, renamed by each overlay's `images:` --------------------


def _images_entry(overlay: str) -> dict[str, str]:
    entries = kustomization(overlay).get("images") or []
    base_name = deploy_template.IMAGE.rsplit(":", 1)[0]
    mine = [e for e in entries if e["name"] == base_name]
    # kustomize silently ignores an entry whose name matches no image: that is the failure mode.
    assert len(mine) == 1, f"overlays/{overlay}: no `images:` entry named {base_name!r} (got {entries})"
    return mine[0]


ARGO_KINDS = ("WorkflowTemplate", "CronWorkflow")


def _argo(resources: list[dict]) -> list[dict]:
    return [r for r in resources if r["kind"] in ARGO_KINDS]


def test_argo_objects_survive_the_overlay(overlay: str, resources: list[dict]) -> None:
    """Every WorkflowTemplate and CronWorkflow: still strictly valid, in the overlay's namespace,
    every container on the overlay's image (kustomizeconfig.yaml reaches into each kind)."""
    [ns] = by_kind(resources, "Namespace")
    entry = _images_entry(overlay)
    name, tag = deploy_template.IMAGE.rsplit(":", 1)
    expected = f"{entry.get('newName', name)}:{entry.get('newTag', tag)}"
    assert len(_argo(resources)) == 4
    for obj in _argo(resources):
        argo_local.strict_parse(obj)
        assert obj["metadata"]["namespace"] == ns["metadata"]["name"]
        templates = argo_local.workflow_view(obj)["spec"]["templates"]
        images = {t["container"]["image"] for t in templates if "container" in t}
        assert images == {expected}, obj["metadata"]["name"]


def test_kustomization_ships_every_generated_object() -> None:
    from workflows.outputs import OUTPUTS

    listed = set(yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["resources"])
    assert {p.name for p in OUTPUTS} <= listed


def test_image_is_what_make_image_builds() -> None:
    """The base image is the tag `make image` produces (scripts/build-image.sh's default, named in
    the Dockerfile's header), so a local cluster runs what was just built; overlays rename it."""
    script = (ROOT / "scripts" / "build-image.sh").read_text()
    built = re.search(r"^IMAGE=\$\{IMAGE:-([^}]+)\}", script, re.M)
    assert built, "scripts/build-image.sh no longer says which tag it builds"
    assert built.group(1) == deploy_template.IMAGE
    header = "".join(
        line for line in (ROOT / "Dockerfile").read_text().splitlines(True) if line.startswith("#")
    )
    assert deploy_template.IMAGE in header, "the Dockerfile's header names another tag"
    assert "images:" in header, "the Dockerfile's header no longer says overlays set the image"


# --- least privilege -----------------------------------------------------------------------


def _pods(resources: list[dict]) -> list[dict]:
    return [d["spec"]["template"]["spec"] for d in by_kind(resources, "Deployment")]


def test_pods_run_with_least_privilege(resources: list[dict]) -> None:
    for pod in _pods(resources):
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "limits" in c["resources"] and "requests" in c["resources"]
    assert not by_kind(resources, "Secret"), "secrets never live in Git"
    assert not by_kind(resources, "ClusterRole") and not by_kind(resources, "ClusterRoleBinding")


EXECUTOR_RULE = {
    "apiGroups": ["argoproj.io"],
    "resources": ["workflowtaskresults"],
    "verbs": ["create", "patch"],
}


def test_each_service_account_may_do_exactly_what_its_pods_need(resources: list[dict]) -> None:
    """Least privilege, exactly: the deploy steps' account only reports results (Argo's
    executor); the follower's submit step's account also creates Workflows and reads the one
    WorkflowTemplate it refers to — nothing else, no cluster-wide role."""
    roles = {r["metadata"]["name"]: r["rules"] for r in by_kind(resources, "Role")}
    assert roles == {
        "tritonops-deploy-executor": [EXECUTOR_RULE],
        "tritonops-follow-submitter": [
            {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"],
             "resourceNames": [deploy_template.NAME], "verbs": ["get"]},
            EXECUTOR_RULE,
        ],
    }  # fmt: skip
    bindings = {
        b["roleRef"]["name"]: [(s["kind"], s["name"]) for s in b["subjects"]]
        for b in by_kind(resources, "RoleBinding")
    }
    assert bindings == {
        "tritonops-deploy-executor": [("ServiceAccount", "tritonops-deploy")],
        "tritonops-follow-submitter": [("ServiceAccount", "tritonops-follow")],
    }
    # The follower's manifest refers to the template the Role names.
    from workflows.cron_workflows import DEPLOY_MANIFEST

    assert yaml.safe_load(DEPLOY_MANIFEST)["spec"]["workflowTemplateRef"]["name"] == deploy_template.NAME


def test_the_role_check_catches_one_more_verb(resources: list[dict]) -> None:
    broken = [dict(r) for r in resources]
    role = next(
        r for r in broken if r["kind"] == "Role" and r["metadata"]["name"] == "tritonops-follow-submitter"
    )
    role["rules"] = [
        *role["rules"],
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["delete"]},
    ]
    with pytest.raises(AssertionError):
        test_each_service_account_may_do_exactly_what_its_pods_need(broken)


# --- Triton --------------------------------------------------------------------------------


def _triton(resources: list[dict]) -> dict:
    return one(resources, "Deployment", "triton")


def test_triton_is_explicit_and_reachable_per_replica(resources: list[dict]) -> None:
    triton = _triton(resources)
    script = triton["spec"]["template"]["spec"]["containers"][0]["args"][0]
    for flag in (
        "--model-control-mode=explicit",
        "--exit-on-error=false",
        "--metrics-config=summary_latencies=true",
        "--strict-readiness=false",
    ):
        assert flag in script
    mount = triton["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]
    assert mount == {"name": "volume", "mountPath": "/pvc", "readOnly": True}
    headless = one(resources, "Service", "triton-headless")
    assert headless["spec"]["clusterIP"] == "None"
    config = one(resources, "ConfigMap", "tritonops-config")
    assert config["data"]["TRITONOPS_TRITON_URL"].startswith("dns+http://triton-headless:")
    pvc = one(resources, "PersistentVolumeClaim", "tritonops-volume")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def _run_script(script: str, tmp_path: Path, env: dict[str, str] | None = None) -> list[str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    stub = bindir / "tritonserver"
    stub.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    stub.chmod(0o755)
    out = subprocess.run(
        ["/bin/sh", "-c", script.replace("/pvc/", f"{tmp_path}/pvc/")],
        env={"PATH": f"{bindir}:/usr/bin:/bin", **(env or {})}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.split()


def test_triton_start_script_loads_only_committed_models(tmp_path: Path) -> None:
    """Run the Deployment's shell script with a stub `tritonserver` that prints its argv."""
    script = _triton(build("dev"))["spec"]["template"]["spec"]["containers"][0]["args"][0]
    pvc = tmp_path / "pvc" / "models"
    for model, committed in (("fraud", True), ("churn", True), ("half-done", False)):
        (pvc / model).mkdir(parents=True)
        if committed:
            (pvc / model / "current.json").write_text("{}")
    locked = _run_script(script, tmp_path, {"TRITON_API_KEY": "k3y"})
    assert [a for a in locked if a.startswith("--load-model")] == ["--load-model=churn", "--load-model=fraud"]
    assert "--http-restricted-api=model-repository,logging,trace:triton-api-key=k3y" in locked
    assert "--grpc-restricted-protocol=model-repository,logging,trace:triton-api-key=k3y" in locked


@pytest.mark.parametrize("key", [None, ""], ids=["unset", "empty"])
def test_triton_does_not_start_without_the_repository_api_key(tmp_path: Path, key: str | None) -> None:
    """Fail closed: an open repository API would load whatever anyone on the network asks for."""
    resources = build("dev")
    container = _triton(resources)["spec"]["template"]["spec"]["containers"][0]
    [ref] = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == "TRITON_API_KEY"]
    assert ref["key"] == "triton-api-key" and not ref.get("optional"), "kubelet must refuse a missing key"
    (tmp_path / "pvc" / "models").mkdir(parents=True)
    script = container["args"][0].replace("/pvc/", f"{tmp_path}/pvc/")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tritonserver").write_text("#!/bin/sh\necho STARTED\n")
    (bindir / "tritonserver").chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"} | ({"TRITON_API_KEY": key} if key is not None else {})
    out = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=False)
    assert out.returncode != 0 and "STARTED" not in out.stdout
    assert "triton-api-key" in out.stderr


def test_a_fresh_volume_is_laid_out_before_triton_starts(resources: list[dict], tmp_path: Path) -> None:
    """Triton mounts the volume read-only and needs models/ to exist; the steps need state/.
    An init container creates both, as the user the workflow steps write as."""
    pod = _triton(resources)["spec"]["template"]["spec"]
    inits = pod.get("initContainers", [])
    assert len(inits) == 1, "nothing creates models/ and state/ on a fresh volume"
    [init] = inits
    mounts = {m["mountPath"]: m for m in init["volumeMounts"]}
    assert mounts["/pvc"]["name"] == "volume" and not mounts["/pvc"].get("readOnly")
    volume = {v["name"]: v for v in pod["volumes"]}["volume"]
    assert not volume["persistentVolumeClaim"].get("readOnly"), "a read-only volume is read-only for all"
    user = init["securityContext"].get("runAsUser", pod["securityContext"].get("runAsUser"))
    assert user == deploy_template.UID, "the workflow steps (uid 10001) must be able to write the dirs"
    # Run its command on an empty directory standing in for the fresh volume.
    (tmp_path / "pvc").mkdir()
    command = [a.replace("/pvc/", f"{tmp_path}/pvc/") for a in init["command"] + init.get("args", [])]
    subprocess.run(command, check=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert (tmp_path / "pvc" / "models").is_dir() and (tmp_path / "pvc" / "state").is_dir()
    # The workflows' paths are the ones created.
    for obj in _argo(resources):
        for t in argo_local.workflow_view(obj)["spec"]["templates"]:
            if "container" in t:
                env = {e["name"]: e.get("value") for e in t["container"]["env"]}
                assert env["TRITONOPS_REPO"] == "/pvc/models" and env["TRITONOPS_STATE_DIR"] == "/pvc/state"
    # Running it twice (every pod start) is harmless.
    subprocess.run(command, check=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)


def test_triton_home_is_writable(resources: list[dict]) -> None:
    pod = _triton(resources)["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    home = {e["name"]: e.get("value") for e in c["env"]}.get("HOME")
    assert home, "HOME unset: Triton and its backends would write under the read-only root's /root"
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = [
        m for m in c["volumeMounts"]
        if m["name"] in empty_dirs and not m.get("readOnly") and (home + "/").startswith(m["mountPath"].rstrip("/") + "/")
    ]  # fmt: skip
    assert writable, f"HOME={home} is not on a writable emptyDir"


def test_triton_survives_drains_and_node_failures(resources: list[dict]) -> None:
    triton = _triton(resources)
    labels = triton["spec"]["template"]["metadata"]["labels"]
    pdbs = [p for p in by_kind(resources, "PodDisruptionBudget") if matches(p["spec"]["selector"], labels)]
    assert len(pdbs) == 1, f"{len(pdbs)} PodDisruptionBudgets select the Triton pods"
    [pdb] = pdbs
    replicas = triton["spec"]["replicas"]
    spec = pdb["spec"]
    allowed = spec["maxUnavailable"] if "maxUnavailable" in spec else replicas - spec["minAvailable"]
    assert allowed >= 1, "a PDB that allows no disruption blocks every node drain"
    if replicas > 1:
        assert replicas - allowed >= 1, "a drain may take every replica"
    terms = triton["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
    selectors = [
        t["podAffinityTerm"] for t in terms.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    ]
    selectors += terms.get("requiredDuringSchedulingIgnoredDuringExecution", [])
    spread = [t for t in selectors if t["topologyKey"] == "kubernetes.io/hostname"]
    assert spread and all(matches(t["labelSelector"], labels) for t in spread), (
        "anti-affinity selects no Triton pod"
    )


def _int_or_percent(value: int | str, replicas: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    fraction = int(value.rstrip("%")) * replicas / 100
    return math.ceil(fraction) if round_up else math.floor(fraction)


def test_triton_rollout_never_needs_a_spare_gpu(resources: list[dict]) -> None:
    """A surge pod needs one more GPU than the replicas hold; with every GPU taken it stays
    Pending and the rollout stalls. The rollout must replace pods in place."""
    triton = _triton(resources)
    replicas = triton["spec"]["replicas"]
    rolling = triton["spec"]["strategy"].get("rollingUpdate", {})
    assert triton["spec"]["strategy"]["type"] == "RollingUpdate"
    # Kubernetes' defaults are 25% / 25%; surge rounds up, unavailable rounds down.
    surge = _int_or_percent(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    assert surge == 0, f"maxSurge resolves to {surge} extra pod(s) at {replicas} replicas"
    assert unavailable >= 1, "with no surge and no unavailability a rollout cannot progress"


# --- the shared volume: one group, no recursive chown ----------------------------------------


def _volume_pods(resources: list[dict]) -> list[tuple[str, dict, set[str]]]:
    """(what, pod securityContext, claims) for every pod template that mounts a PVC."""
    out = []
    for d in by_kind(resources, "Deployment"):
        pod = d["spec"]["template"]["spec"]
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in pod.get("volumes", [])
            if "persistentVolumeClaim" in v
        }
        out.append((f"Deployment/{d['metadata']['name']}", pod.get("securityContext", {}), claims))
    for obj in _argo(resources):
        spec = argo_local.workflow_view(obj)["spec"]
        claims = {
            v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v
        }
        out.append((f"{obj['kind']}/{obj['metadata']['name']}", spec["securityContext"], claims))
    return [(what, sc, claims) for what, sc, claims in out if claims]


def test_no_pod_start_chowns_the_whole_volume(resources: list[dict]) -> None:
    """kubelet applies fsGroup by chowning the volume recursively at every pod start unless
    fsGroupChangePolicy is OnRootMismatch — and even then when two pods disagree on the group."""
    groups: dict[str, set[int]] = {}
    for what, sc, claims in _volume_pods(resources):
        assert sc.get("fsGroupChangePolicy") == "OnRootMismatch", what
        for claim in claims:
            groups.setdefault(claim, set()).add(sc["fsGroup"])
    assert groups["tritonops-volume"] == {deploy_template.UID}, groups


# --- ArgoCD never deletes the state -----------------------------------------------------------


def _sync_options(obj: dict) -> set[str]:
    """As ArgoCD reads the annotation: comma-separated, whitespace trimmed."""
    value = (obj["metadata"].get("annotations") or {}).get(SYNC_OPTIONS, "")
    return {part.strip() for part in value.split(",") if part.strip()}


def test_argocd_never_deletes_the_volume_or_the_namespace(resources: list[dict]) -> None:
    """The Application prunes and has the resources finalizer: without these annotations,
    deleting or renaming it (or the objects) in Git deletes every model and all state."""
    kept = by_kind(resources, "PersistentVolumeClaim") + by_kind(resources, "Namespace")
    assert {o["metadata"]["name"] for o in kept} >= {"tritonops-volume", "tritonops"}
    for obj in kept:
        assert {"Prune=false", "Delete=false"} <= _sync_options(obj), (
            f"{obj['kind']}/{obj['metadata']['name']}"
        )


def test_argocd_application_points_at_an_overlay() -> None:
    app = yaml.safe_load((K8S / "argocd" / "application.yaml").read_text())
    assert app["kind"] == "Application"
    assert (ROOT / app["spec"]["source"]["path"] / "kustomization.yaml").is_file()
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    overlay = Path(app["spec"]["source"]["path"]).name
    [ns] = by_kind(build(overlay), "Namespace")
    assert app["spec"]["destination"]["namespace"] == ns["metadata"]["name"]


# --- the namespace is the overlay's choice ------------------------------------------------------


def test_an_overlay_can_move_everything_to_another_namespace(overlay: str, tmp_path: Path) -> None:
    """Services are addressed by short names (resolved in the pod's own namespace through its DNS
    search path): moving the overlay to another namespace leaves no address pointing back."""
    wrapper = tmp_path / "elsewhere"
    wrapper.mkdir()
    target = os.path.relpath(K8S / "overlays" / overlay, wrapper)
    (wrapper / "kustomization.yaml").write_text(f"namespace: ml-serving\nresources:\n  - {target}\n")
    moved = kustomize(wrapper)
    original = build(overlay)
    [ns] = by_kind(original, "Namespace")
    old = ns["metadata"]["name"]
    text = yaml.safe_dump_all(moved)
    assert f".{old}.svc" not in text and f".{old}:" not in text, "an address still names the old namespace"
    for obj in moved:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "ml-serving", (
                f"{obj['kind']}/{obj['metadata']['name']}"
            )
    # Every in-cluster address of ours names a Service of the build, on a port it serves.
    config = one(moved, "ConfigMap", "tritonops-config")["data"]
    services = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in by_kind(moved, "Service")
    }
    for key in ("TRITONOPS_TRITON_URL", "TRITONOPS_PUSHGATEWAY"):
        host, port = re.fullmatch(r"(?:dns\+)?https?://([^:/]+):(\d+)/?", config[key]).groups()  # type: ignore[union-attr]
        assert "." not in host, f"{key}={config[key]}: a qualified name pins one namespace"
        assert int(port) in services.get(host, set()), f"{key}={config[key]}: no such Service port"


# --- every setting the workflow hands over is read by something --------------------------------


def test_every_configmap_key_is_a_setting_tritonops_reads(resources: list[dict]) -> None:
    """A key nobody reads is a silent no-op: every key of tritonops-config must be the env var of
    an option of `tritonops step`, `recover` or `follow` (what the workflows run) or MLflow's own."""
    from tritonops import cli

    envvars: set[str] = set()
    for command in (cli.step, cli.recover, cli.follow):
        for param in command.params:
            value = getattr(param, "envvar", None)
            envvars |= {value} if isinstance(value, str) else set(value or [])
    data = one(resources, "ConfigMap", "tritonops-config")["data"]
    unread = {k for k in data if k not in envvars and k != "MLFLOW_TRACKING_URI"}
    assert not unread, f"keys no option of `tritonops step` reads: {sorted(unread)}"


def test_gate_settings_default_to_the_cli_defaults_and_prod_loosens_parity() -> None:
    from tritonops.engine.settings import GateSettings

    defaults = GateSettings()
    expected = {
        "TRITONOPS_PARITY_RTOL": defaults.parity_rtol,
        "TRITONOPS_PARITY_ATOL": defaults.parity_atol,
        "TRITONOPS_LATENCY_REQUESTS": defaults.latency_requests,
        "TRITONOPS_LATENCY_BUDGET_MS": defaults.latency_budget_ms,
        "TRITONOPS_LATENCY_FACTOR": defaults.latency_factor,
    }
    dev = one(build("dev"), "ConfigMap", "tritonops-config")["data"]
    prod = one(build("prod"), "ConfigMap", "tritonops-config")["data"]
    for key, value in expected.items():
        assert type(value)(dev[key]) == value, f"dev {key}={dev[key]}, the CLI's default is {value}"
    assert float(prod["TRITONOPS_PARITY_RTOL"]) > defaults.parity_rtol
    assert float(prod["TRITONOPS_PARITY_ATOL"]) > defaults.parity_atol


# --- gate settings: the ConfigMap's values are the templates' parameter defaults ---------------


def test_gate_parameters_default_to_the_overlays_configmap(resources: list[dict]) -> None:
    """A workflow submitted without gate parameters (the follower's, an operator's) gates as the
    overlay's ConfigMap says: each overlay copies those values over the templates' defaults
    (prod: the loosened parity tolerances), so a step's env (from the parameter) never
    contradicts the ConfigMap."""
    config = one(resources, "ConfigMap", "tritonops-config")["data"]
    templates = by_kind(resources, "WorkflowTemplate")
    assert len(templates) == 2
    for wt in templates:
        params = {p["name"]: p.get("value") for p in wt["spec"]["arguments"]["parameters"]}
        for name, envvar, _, _ in deploy_template.GATES:
            assert params[name] == config[envvar], (wt["metadata"]["name"], name)


def test_the_gate_check_catches_an_overlay_without_the_replacements(tmp_path: Path) -> None:
    """prod without its `replacements`: the templates keep the CLI's parity (1e-4) while the
    ConfigMap says 1e-2 — every GPU deploy would fail parity."""
    import shutil

    copy_root = tmp_path / "k8s"
    shutil.copytree(K8S, copy_root)
    path = copy_root / "overlays" / "prod" / "kustomization.yaml"
    data = yaml.safe_load(path.read_text())
    data.pop("replacements")
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(AssertionError, match="parity-rtol"):
        test_gate_parameters_default_to_the_overlays_configmap(kustomize(copy_root / "overlays" / "prod"))


# --- the follower's Workflow -----------------------------------------------------------------


def _rendered_deploy(model: str, alias: str) -> dict:
    """The manifest of the follower's submit step, as Argo renders it for one moved target."""
    from workflows.cron_workflows import DEPLOY_MANIFEST

    text = DEPLOY_MANIFEST.replace("{{inputs.parameters.model}}", model)
    text = text.replace("{{inputs.parameters.alias}}", alias).replace(
        "{{workflow.name}}", "tritonops-follow-1"
    )
    assert "{{" not in text
    return yaml.safe_load(text)


@pytest.mark.parametrize(
    ("model", "alias"), [("fraud", "champion"), ("1234", "v2"), ("churn.eu_west-1", "prod")]
)
def test_the_followers_workflow_is_one_argo_accepts(resources: list[dict], model: str, alias: str) -> None:
    """What the submit step creates: a valid Workflow (strictly, and its spec against the
    schema every workflow spec shares), from a WorkflowTemplate of the build, passing only
    parameters it declares — every one without a default included — with the values as
    strings (a model named 1234 stays a string), in the follower's own namespace, owned by
    nothing (a garbage-collected follower run must not take a running deploy with it)."""
    from tests.k8s import strict_schema

    wf = _rendered_deploy(model, alias)
    argo_local.strict_parse(wf)
    as_template = {"apiVersion": wf["apiVersion"], "kind": "WorkflowTemplate", "metadata": {"name": "x"},
                   "spec": wf["spec"]}  # fmt: skip
    assert strict_schema.errors(as_template) == []
    assert "namespace" not in wf["metadata"] and "ownerReferences" not in wf["metadata"]
    template = one(resources, "WorkflowTemplate", wf["spec"]["workflowTemplateRef"]["name"])
    declared = {p["name"]: p for p in template["spec"]["arguments"]["parameters"]}
    given = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert given == {"model": model, "alias": alias}
    assert set(given) <= set(declared)
    assert {n for n, p in declared.items() if "value" not in p} <= set(given)
    [cron] = [
        o for o in resources if o["kind"] == "CronWorkflow" and o["metadata"]["name"] == "tritonops-follow"
    ]
    [submit] = [t for t in cron["spec"]["workflowSpec"]["templates"] if "resource" in t]
    assert submit["resource"]["action"] == "create"
    assert not submit["resource"].get("setOwnerReference")


def test_steps_get_only_the_credentials_they_use() -> None:
    """The follower's alias check reads the registry: MLflow's credentials, no Triton or S3 key.
    Listing committed models reads the volume: no credentials at all."""
    resources = build("dev")

    def secret_env(kind: str, name: str, template: str) -> set[str]:
        obj = one(resources, kind, name)
        spec = obj["spec"].get("workflowSpec", obj["spec"])
        [t] = [t for t in spec["templates"] if t["name"] == template]
        return {e["name"] for e in t["container"].get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}

    check = secret_env("CronWorkflow", "tritonops-follow", "check-aliases")
    assert check == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"}
    assert secret_env("CronWorkflow", "tritonops-drift-repair", "list-committed") == set()
    load = secret_env("WorkflowTemplate", "tritonops-deploy", "load")
    assert {"TRITONOPS_TRITON_API_KEY", "AWS_SECRET_ACCESS_KEY"} <= load


def test_prod_runs_the_pushgateway_by_digest() -> None:
    """A tag can be moved to other bytes; production names the bytes. (Triton's and the base
    image's digests are not pinned yet: see README, Security.)"""
    deployment = one(build("prod"), "Deployment", "pushgateway")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(r"prom/pushgateway@sha256:[0-9a-f]{64}", container["image"]), container["image"]
