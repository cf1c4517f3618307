"""The Pod Security Standards `restricted` level, as the pod-security admission plugin checks a pod.

Written from the checks of k8s.io/pod-security-admission (policy/check_*.go, "latest"
version): each function below is one of its checks, with its name. Every container counts:
`containers`, `initContainers` and `ephemeralContainers`. A pod in a user namespace
(`hostUsers: false`) is exempt from the runAsNonRoot/runAsUser checks, as upstream.

Not modelled (our pods use none of it, and each function fails loudly when it sees one):
Windows pods (`spec.os.name: windows` relaxes several checks upstream).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret", "image",
}  # fmt: skip
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def containers(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in pod.get(field) or []:
            yield f"{field}[{c['name']}]", c


def _sc(c: dict[str, Any]) -> dict[str, Any]:
    return c.get("securityContext") or {}


def host_namespaces(pod: dict[str, Any]) -> list[str]:
    return [f"{f}=true" for f in ("hostNetwork", "hostPID", "hostIPC") if pod.get(f)]


def privileged(pod: dict[str, Any]) -> list[str]:
    return [f"{where}: privileged" for where, c in containers(pod) if _sc(c).get("privileged")]


def capabilities_baseline(pod: dict[str, Any]) -> list[str]:
    out = []
    for where, c in containers(pod):
        added = set((_sc(c).get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:
            out.append(f"{where}: adds {sorted(added - BASELINE_CAPABILITIES)}")
    return out


def host_path_volumes(pod: dict[str, Any]) -> list[str]:
    return [f"volume {v['name']}: hostPath" for v in pod.get("volumes") or [] if "hostPath" in v]


def host_ports(pod: dict[str, Any]) -> list[str]:
    return [
        f"{where}: hostPort {p['hostPort']}"
        for where, c in containers(pod)
        for p in c.get("ports") or []
        if p.get("hostPort")
    ]


def host_probes_and_lifecycle(pod: dict[str, Any]) -> list[str]:
    out = []
    for where, c in containers(pod):
        handlers = [c.get(p) or {} for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += list((c.get("lifecycle") or {}).values())
        for h in handlers:
            for kind in ("httpGet", "tcpSocket"):
                if (h.get(kind) or {}).get("host"):
                    out.append(f"{where}: {kind}.host set")
    return out


def app_armor(pod: dict[str, Any]) -> list[str]:
    allowed = {None, "RuntimeDefault", "Localhost"}
    out = []
    profiles = [("pod", (pod.get("securityContext") or {}).get("appArmorProfile"))]
    profiles += [(where, _sc(c).get("appArmorProfile")) for where, c in containers(pod)]
    for where, profile in profiles:
        if profile and profile.get("type") not in allowed:
            out.append(f"{where}: appArmorProfile {profile.get('type')}")
    return out


def selinux(pod: dict[str, Any]) -> list[str]:
    out = []
    options = [("pod", (pod.get("securityContext") or {}).get("seLinuxOptions"))]
    options += [(where, _sc(c).get("seLinuxOptions")) for where, c in containers(pod)]
    for where, opts in options:
        if not opts:
            continue
        if opts.get("type", "") not in SELINUX_TYPES or opts.get("user") or opts.get("role"):
            out.append(f"{where}: seLinuxOptions {opts}")
    return out


def proc_mount(pod: dict[str, Any]) -> list[str]:
    return [
        f"{where}: procMount {_sc(c)['procMount']}"
        for where, c in containers(pod)
        if _sc(c).get("procMount") not in (None, "Default")
    ]


def seccomp_baseline(pod: dict[str, Any]) -> list[str]:
    out = []
    if ((pod.get("securityContext") or {}).get("seccompProfile") or {}).get("type") == "Unconfined":
        out.append("pod: seccompProfile Unconfined")
    for where, c in containers(pod):
        if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined":
            out.append(f"{where}: seccompProfile Unconfined")
    return out


def sysctls(pod: dict[str, Any]) -> list[str]:
    found = (pod.get("securityContext") or {}).get("sysctls") or []
    return [f"sysctl {s['name']}" for s in found if s["name"] not in SAFE_SYSCTLS]


def windows_host_process(pod: dict[str, Any]) -> list[str]:
    opts = [(pod.get("securityContext") or {}).get("windowsOptions") or {}]
    opts += [_sc(c).get("windowsOptions") or {} for _, c in containers(pod)]
    return ["windowsOptions.hostProcess"] if any(o.get("hostProcess") for o in opts) else []


# --- restricted ---------------------------------------------------------------------------


def restricted_volumes(pod: dict[str, Any]) -> list[str]:
    out = []
    for v in pod.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            out.append(f"volume {v['name']}: {sorted(kinds - RESTRICTED_VOLUME_TYPES)}")
    return out


def allow_privilege_escalation(pod: dict[str, Any]) -> list[str]:
    # Must be explicitly false on every container: unset means "allowed".
    return [
        f"{where}: allowPrivilegeEscalation is not false"
        for where, c in containers(pod)
        if _sc(c).get("allowPrivilegeEscalation") is not False
    ]


def run_as_non_root(pod: dict[str, Any]) -> list[str]:
    if pod.get("hostUsers") is False:
        return []
    pod_level = (pod.get("securityContext") or {}).get("runAsNonRoot")
    out = ["pod: runAsNonRoot is false"] if pod_level is False else []
    for where, c in containers(pod):
        value = _sc(c).get("runAsNonRoot")
        if value is False or (value is None and pod_level is not True):
            out.append(f"{where}: runAsNonRoot is not true (nor set true at pod level)")
    return out


def run_as_user(pod: dict[str, Any]) -> list[str]:
    if pod.get("hostUsers") is False:
        return []
    out = ["pod: runAsUser 0"] if (pod.get("securityContext") or {}).get("runAsUser") == 0 else []
    out += [f"{where}: runAsUser 0" for where, c in containers(pod) if _sc(c).get("runAsUser") == 0]
    return out


def seccomp_restricted(pod: dict[str, Any]) -> list[str]:
    allowed = {"RuntimeDefault", "Localhost"}
    pod_type = ((pod.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    out = [f"pod: seccompProfile {pod_type}"] if pod_type is not None and pod_type not in allowed else []
    for where, c in containers(pod):
        ctype = (_sc(c).get("seccompProfile") or {}).get("type")
        if ctype is None and pod_type not in allowed:
            out.append(f"{where}: no seccompProfile (nor RuntimeDefault/Localhost at pod level)")
        elif ctype is not None and ctype not in allowed:
            out.append(f"{where}: seccompProfile {ctype}")
    return out


def capabilities_restricted(pod: dict[str, Any]) -> list[str]:
    out = []
    for where, c in containers(pod):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}: capabilities.drop does not include ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{where}: adds {sorted(set(caps['add']) - {'NET_BIND_SERVICE'})}")
    return out


BASELINE = [
    host_namespaces, privileged, capabilities_baseline, host_path_volumes, host_ports,
    host_probes_and_lifecycle, app_armor, selinux, proc_mount, seccomp_baseline, sysctls,
    windows_host_process,
]  # fmt: skip
RESTRICTED = [
    restricted_volumes, allow_privilege_escalation, run_as_non_root, run_as_user, seccomp_restricted,
    capabilities_restricted,
]  # fmt: skip


def violations(pod: dict[str, Any]) -> list[str]:
    """Everything `pod-security.kubernetes.io/enforce: restricted` would refuse this pod spec for."""
    assert (pod.get("os") or {}).get("name") != "windows", "Windows pods are not modelled here"
    return [f"{check.__name__}: {v}" for check in BASELINE + RESTRICTED for v in check(pod)]
