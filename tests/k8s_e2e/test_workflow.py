"""The committed WorkflowTemplate, run as containers of the built image (`make k8s-e2e`).

Every pod of a workflow is a `podman run` of the image with the template's own command, args,
env/envFrom, securityContext and volumes (tests/k8s_e2e/runner.py), against a real Triton, MLflow
server and Pushgateway (conftest.py). Each scenario checks what production looks like afterwards:
current.json, what Triton answers to an unversioned request, the Pushgateway's series.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests.helpers import FEATURES
from tests.k8s_e2e.conftest import Cluster
from tritonops.local.samples import linear_model, reference_output

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("record_runs", "startup_baseline")]

DAG = ["recover", "snapshot", "materialize", "load", "ready", "smoke", "commit"]


def deploy_good(cluster: Cluster, model: str, seed: int) -> int:
    """Register a good version under `champion` and deploy it with a whole workflow."""
    version = cluster.registry.register(model, linear_model(seed=seed))
    wf = cluster.workflow(model)
    assert wf.run() == "Succeeded", wf.describe()
    assert cluster.current(model)["active_version"] == version
    return version


def assert_serving(cluster: Cluster, model: str, version: int, seed: int) -> None:
    """Triton serves exactly ``version`` and answers unversioned requests with its output."""
    assert cluster.ready_versions(model) == [version]
    assert cluster.ready_versions(f"_candidate.{model}") == []
    np.testing.assert_allclose(
        cluster.infer(model, FEATURES), reference_output(linear_model(seed=seed), FEATURES), rtol=1e-5
    )


def test_a_good_model_is_committed_and_metrics_are_pushed(cluster: Cluster) -> None:
    # `fraud`: the dev overlay ships a config template for it (ConfigMap volume at
    # /etc/tritonops/model-config, TRITONOPS_MODEL_CONFIG_DIR), so that path is exercised too.
    model = "fraud"
    started = time.time()
    version = cluster.registry.register(model, linear_model(seed=1))
    wf = cluster.workflow(model)

    assert wf.run() == "Succeeded", wf.describe()

    print("DUMP", wf.describe())  # TEMP
    assert [r.node for r in wf.runs if r.phase == "Succeeded"] == [*DAG, "report"], wf.ran()
    assert ("rollback", "Skipped", None) in wf.ran()  # its `when` is false on success
    assert all(r.attempt == 0 for r in wf.runs), "nothing should have been retried"
    current = cluster.current(model)
    assert current["active_version"] == version and current["deploy_run"] == wf.workflow_name
    assert_serving(cluster, model, version, seed=1)
    config = (cluster.models / model / "config.pbtxt").read_text()
    assert "KIND_CPU" in config, f"the overlay's model-config template was not applied:\n{config}"
    # Written by the containers as the template's user, on the volume the kubelet group-owns.
    assert (cluster.models / model / "current.json").stat().st_uid == 10001
    history = [
        json.loads(line) for line in (cluster.state / "history" / f"{model}.jsonl").read_text().splitlines()
    ]
    assert history[-1]["outcome"] == "committed" and history[-1]["run_id"] == wf.workflow_name
    assert "pushed to" in wf.runs[-1].output, wf.describe()
    pushed = cluster.pushed(model)
    assert pushed['tritonops_deploy_outcome{outcome="committed"}'] == 1, pushed
    assert pushed["tritonops_deploy_active_version"] == version
    assert pushed["tritonops_deploy_last_success_timestamp_seconds"] >= int(started)


def test_b_a_failing_model_is_rolled_back_by_the_exit_handler(cluster: Cluster) -> None:
    model = "fraud-nan"
    v1 = deploy_good(cluster, model, seed=1)
    before = cluster.current_bytes(model)
    config_before = (cluster.models / model / "config.pbtxt").read_bytes()
    started = time.time()
    v2 = cluster.registry.register(model, linear_model(seed=2, produce_nan=True))  # loads, answers NaN
    wf = cluster.workflow(model)

    assert wf.run() == "Failed", wf.describe()

    ran = wf.ran()
    assert ("smoke", "Failed", 3) in ran, wf.describe()
    assert [r.node for r in wf.runs if r.node == "smoke"] == ["smoke"], "exit 3 must not be retried"
    assert ("commit", "Omitted", None) in ran
    assert ("rollback", "Succeeded", 0) in ran and ran[-1] == ("report", "Succeeded", 0), ran
    # Production restored: the pointer and the config byte for byte, the previous version serving.
    assert cluster.current_bytes(model) == before
    assert (cluster.models / model / "config.pbtxt").read_bytes() == config_before
    assert_serving(cluster, model, v1, seed=1)
    assert not (cluster.models / model / str(v2)).exists()
    quarantined = sorted((cluster.state / "quarantine" / model).iterdir())
    assert [q.name.split(".")[0] for q in quarantined] == [str(v2)]
    pushed = cluster.pushed(model)
    assert pushed['tritonops_deploy_outcome{outcome="rolled_back"}'] == 1, pushed
    assert pushed['tritonops_deploy_outcome{outcome="committed"}'] == 0
    assert pushed["tritonops_deploy_last_rollback_timestamp_seconds"] >= int(started)
    assert pushed["tritonops_deploy_active_version"] == v1


def test_c_a_terminated_workflow_is_repaired_by_a_later_one(cluster: Cluster) -> None:
    """`argo terminate` right after `load`: no exit handler runs; the candidate is loaded under its
    staging name and its files are in the repository; the run's lease on the model is live.

    EXPECTS (the engine with leases, design.md "A run's claim on a model"):
    1. a workflow submitted while the terminated run's lease is live is REFUSED by its first
       step, `recover` (exit 2, naming the lease): it cannot tell a killed run from a slow one,
       so it changes nothing -- production keeps serving the committed version untouched;
    2. a workflow submitted after the lease expired repairs it in its first step, `recover`
       (current.json byte-identical, the candidate unloaded and quarantined, the committed
       version serving), then deploys the alias's version normally.
    The lease is shortened for this model through the ConfigMap (TRITONOPS_LEASE_SECONDS, an
    operator's setting; the default is 600 s) so that the test can wait it out.
    """
    model = "fraud-terminated"
    lease_s = 12.0
    config = {"TRITONOPS_LEASE_SECONDS": f"{lease_s:g}"}
    v1 = cluster.registry.register(model, linear_model(seed=1))
    assert cluster.workflow(model, config=config).run() == "Succeeded"
    before = cluster.current_bytes(model)
    v2 = cluster.registry.register(model, linear_model(seed=2))
    terminated = cluster.workflow(model, config=config)

    terminated.run(terminate_after="load")
    terminated_at = time.monotonic()

    assert [r.node for r in terminated.runs] == ["recover", "snapshot", "materialize", "load"], (
        terminated.ran()
    )
    assert all(r.phase == "Succeeded" for r in terminated.runs), terminated.describe()
    # Half done: what an exit handler would have cleaned up is still there.
    assert (cluster.models / model / str(v2)).is_dir()
    assert cluster.ready_versions(f"_candidate.{model}") == [v2]
    journal = cluster.state / "runs" / model / terminated.workflow_name / "journal.json"
    assert json.loads(journal.read_text()).get("outcome") is None

    # 1. Within the lease: refused at `recover`, nothing touched.
    early = cluster.workflow(model, config=config)
    assert early.run() == "Failed", early.describe()
    assert early.ran()[0] == ("recover", "Failed", 2), early.describe()
    assert "holds its lease" in early.runs[0].output, early.runs[0].output
    assert [r.phase for r in early.runs[1:7]] == ["Omitted"] * 6
    assert time.monotonic() - terminated_at < lease_s, "too slow to see the lease live; raise lease_s"
    assert cluster.current_bytes(model) == before
    assert cluster.ready_versions(model) == [v1]  # production traffic still gets v1...
    np.testing.assert_allclose(
        cluster.infer(model, FEATURES), reference_output(linear_model(seed=1), FEATURES), rtol=1e-5
    )
    assert cluster.ready_versions(f"_candidate.{model}") == [v2]  # ...and the mess waits for the lease

    # 2. After the lease: the next workflow's first step repairs, then it deploys.
    time.sleep(max(0.0, lease_s + 1 - (time.monotonic() - terminated_at)))
    after_recover: dict[str, object] = {}

    def check(node: str) -> None:
        if node == "recover":
            after_recover.update(
                current=cluster.current_bytes(model),
                candidate_dir=(cluster.models / model / str(v2)).exists(),
                candidate_loaded=cluster.ready_versions(f"_candidate.{model}"),
                serving=cluster.ready_versions(model),
                outcome=json.loads(journal.read_text()).get("outcome"),
            )

    later = cluster.workflow(model, config=config)
    assert later.run(after_node=check) == "Succeeded", later.describe()

    assert after_recover == {
        "current": before,
        "candidate_dir": False,
        "candidate_loaded": [],
        "serving": [v1],
        "outcome": "rolled_back",
    }, later.runs[0].output
    quarantined = [q.name for q in (cluster.state / "quarantine" / model).iterdir()]
    assert [q.split(".")[0] for q in quarantined] == [str(v2)]
    assert cluster.current(model)["active_version"] == v2
    assert_serving(cluster, model, v2, seed=2)


PROBE = r"""
import json, os, sys
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)

def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w"):
            pass
        os.unlink(os.path.join(path, ".probe"))
        return True
    except OSError:
        return False

mounts = json.loads(sys.argv[1])
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
    "cap_bnd": int(status["CapBnd"], 16), "cap_eff": int(status["CapEff"], 16),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "seccomp": status["Seccomp"].strip(), "root_writable": writable("/") or writable("/opt"),
    "mounts": {m: writable(m) for m in mounts},
    "files": {m: sorted(os.listdir(m)) for m in mounts},
    "memory_limit": int(open("/sys/fs/cgroup/memory/memory.limit_in_bytes").read()),
    "env": dict(os.environ),
}))
"""


def test_every_pod_gets_the_templates_user_privileges_volumes_and_env(cluster: Cluster) -> None:
    """What a step's container is given, looked at from inside, for every container template:
    the runner must map the pod spec faithfully for the scenarios above to mean anything."""
    from tests.k8s_e2e.runner import quantity

    wf = cluster.workflow("fraud-probe")
    spec = wf.template["spec"]
    pod_sc = spec["securityContext"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    for name, template in wf.templates.items():
        if "container" not in template:
            continue
        container = template["container"]
        sc = container["securityContext"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        run = wf.debug_pod(name, ["python", "-c", PROBE, json.dumps(sorted(mounts))])
        assert run.exit_code == 0, run.output
        seen = json.loads(run.output.strip().splitlines()[-1])
        assert (seen["uid"], seen["gid"]) == (
            sc.get("runAsUser", pod_sc["runAsUser"]),
            sc.get("runAsGroup", pod_sc["runAsGroup"]),
        )
        assert pod_sc["fsGroup"] in seen["groups"]
        # Bounding set: a non-root process has no effective capabilities anyway.
        assert seen["cap_bnd"] == seen["cap_eff"] == 0 and sc["capabilities"]["drop"] == ["ALL"]
        assert seen["no_new_privs"] == "1" and sc["allowPrivilegeEscalation"] is False
        assert seen["seccomp"] == "2" and sc["seccompProfile"]["type"] == "RuntimeDefault"  # filter mode
        assert seen["root_writable"] is False and sc["readOnlyRootFilesystem"] is True
        for path, mount in mounts.items():
            volume = volumes[mount["name"]]
            read_only = mount.get("readOnly") or "configMap" in volume or "secret" in volume
            assert seen["mounts"][path] is not read_only, (name, path)
            if "configMap" in volume:
                assert seen["files"][path] == sorted(cluster.config_maps[volume["configMap"]["name"]]), path
        assert seen["memory_limit"] == int(quantity(container["resources"]["limits"]["memory"]))
        env = seen["env"]
        # envFrom (the ConfigMap, loopback addresses), env values, the Secret's key.
        assert env["TRITONOPS_TRITON_URL"] == cluster.triton_url
        assert env["TRITONOPS_TRITON_API_KEY"] == cluster.api_key
        for item in container["env"]:
            if "value" in item:
                assert env[item["name"]] == wf.substitute(item["value"], None), item
            elif item["valueFrom"]["secretKeyRef"]["key"] not in cluster.secrets["tritonops-secrets"]:
                assert item["name"] not in env  # an optional key the Secret does not have
