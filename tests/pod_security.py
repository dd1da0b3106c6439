"""Kubernetes Pod Security Standards (baseline + restricted) as a pure function of a pod spec.

Mirrors the controls of https://kubernetes.io/docs/concepts/security/pod-security-standards/
as the built-in Pod Security Admission controller (k8s.io/pod-security-admission/policy)
evaluates them at the `latest` policy version:

baseline   hostProcess, hostNamespaces, privileged, capabilities_baseline, hostPathVolumes,
           hostPorts, hostProbesAndHostLifecycle (1.34+), appArmorProfile, seLinuxOptions,
           procMount, seccompProfile_baseline, sysctls
restricted everything in baseline, plus restrictedVolumes, allowPrivilegeEscalation,
           runAsNonRoot, runAsUser, seccompProfile_restricted, capabilities_restricted

Container-level controls cover containers, initContainers and ephemeralContainers. As in the
admission controller, pods with `spec.os.name: windows` are exempt from the restricted
allowPrivilegeEscalation, seccomp and capabilities controls (1.25+).

No maintained PyPI package implements these checks offline (the reference implementation is
Go), so this is a small, self-contained re-implementation, unit-tested control by control in
tests/test_pod_security.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
LEVELS = ("privileged", "baseline", "restricted")

# Capabilities a baseline pod may add (the container runtime's default set).
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
# Safe sysctls, by the policy version that allowed them.
SAFE_SYSCTLS: tuple[tuple[tuple[int, int], frozenset[str]], ...] = (
    (
        (1, 0),
        frozenset(
            {
                "kernel.shm_rmid_forced",
                "net.ipv4.ip_local_port_range",
                "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range",
            }
        ),
    ),
    ((1, 27), frozenset({"net.ipv4.ip_local_reserved_ports"})),
    (
        (1, 29),
        frozenset(
            {
                "net.ipv4.tcp_keepalive_time",
                "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes",
            }
        ),
    ),
    ((1, 32), frozenset({"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"})),
)
SELINUX_TYPES: tuple[tuple[tuple[int, int], frozenset[str]], ...] = (
    ((1, 0), frozenset({"", "container_t", "container_init_t", "container_kvm_t"})),
    ((1, 31), frozenset({"container_engine_t"})),
)
RESTRICTED_VOLUME_SOURCES: tuple[tuple[tuple[int, int], frozenset[str]], ...] = (
    (
        (1, 0),
        frozenset(
            {
                "configMap",
                "csi",
                "downwardAPI",
                "emptyDir",
                "ephemeral",
                "persistentVolumeClaim",
                "projected",
                "secret",
            }
        ),
    ),
    # Image volumes (OCI artifacts, read-only): allowed in restricted from 1.33 (kubernetes#130394).
    ((1, 33), frozenset({"image"})),
)
SECCOMP_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
LATEST = (99, 99)


def namespace_level(namespace_labels: Mapping[str, str] | None) -> tuple[str, tuple[int, int]]:
    """The enforce level and policy version of a namespace (unlabelled: restricted, latest).

    A missing label is evaluated as `restricted` so the checker errs on the strict side; the
    cluster default (AdmissionConfiguration) is privileged, which checks nothing.
    """
    labels = namespace_labels or {}
    level = labels.get(ENFORCE, "restricted")
    if level not in LEVELS:
        raise ValueError(f"unknown {ENFORCE} level {level!r}; valid: {', '.join(LEVELS)}")
    return level, _version(labels.get(ENFORCE_VERSION, "latest"))


def _version(text: str) -> tuple[int, int]:
    if text == "latest":
        return LATEST
    match = re.fullmatch(r"v(\d+)\.(\d+)", text)
    if not match:
        raise ValueError(f"bad {ENFORCE_VERSION} {text!r}: want latest or vMAJOR.MINOR")
    return int(match.group(1)), int(match.group(2))


def _allowed(table: tuple[tuple[tuple[int, int], frozenset[str]], ...], version: tuple[int, int]) -> frozenset[str]:
    return frozenset().union(*(names for since, names in table if since <= version))


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for field in CONTAINER_LISTS:
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name', '?')}]", container


def _sc(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("securityContext") or {}


def _split(pod: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Accept a bare pod spec or a pod template / Pod (`{metadata, spec}`)."""
    if "spec" in pod and isinstance(pod["spec"], Mapping) and "containers" not in pod:
        return pod.get("metadata") or {}, pod["spec"]
    return {}, pod


# --- baseline --------------------------------------------------------------------------------


def baseline_violations(
    pod: Mapping[str, Any], version: tuple[int, int] = LATEST, metadata: Mapping[str, Any] | None = None
) -> list[str]:
    meta, spec = _split(pod)
    meta = metadata if metadata is not None else meta
    pod_sc = _sc(spec)
    containers = list(_containers(spec))
    found: list[str] = []

    # HostProcess
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess") is True:
        found.append("hostProcess: pod sets securityContext.windowsOptions.hostProcess=true")
    for where, c in containers:
        if (_sc(c).get("windowsOptions") or {}).get("hostProcess") is True:
            found.append(f"hostProcess: {where} sets securityContext.windowsOptions.hostProcess=true")

    # Host namespaces
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) is True:
            found.append(f"hostNamespaces: pod sets {field}=true")

    for where, c in containers:
        sc = _sc(c)
        # Privileged containers
        if sc.get("privileged") is True:
            found.append(f"privileged: {where} sets securityContext.privileged=true")
        # Capabilities (baseline)
        extra = sorted(set((sc.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES)
        if extra:
            found.append(f"capabilities: {where} adds non-default capabilities {', '.join(extra)}")
        # Host ports
        for port in c.get("ports") or []:
            if port.get("hostPort") not in (None, 0):
                found.append(f"hostPorts: {where} uses hostPort {port['hostPort']}")
        # Host probes / lifecycle handlers (1.34+)
        if version >= (1, 34):
            for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = c.get(probe_name) or {}
                for handler in ("httpGet", "tcpSocket"):
                    if (probe.get(handler) or {}).get("host"):
                        found.append(f"hostProbesAndHostLifecycle: {where} {probe_name}.{handler}.host is set")
            for hook in ("postStart", "preStop"):
                handler_spec = (c.get("lifecycle") or {}).get(hook) or {}
                for handler in ("httpGet", "tcpSocket"):
                    if (handler_spec.get(handler) or {}).get("host"):
                        found.append(f"hostProbesAndHostLifecycle: {where} lifecycle.{hook}.{handler}.host is set")
        # /proc mount type
        if sc.get("procMount") not in (None, "Default"):
            found.append(f"procMount: {where} sets securityContext.procMount={sc['procMount']}")

    # HostPath volumes
    for volume in spec.get("volumes") or []:
        if volume.get("hostPath") is not None:
            found.append(f"hostPathVolumes: volume {volume.get('name', '?')} is a hostPath")

    # AppArmor: fields and the (pre-1.30) annotations
    apparmor_type = (pod_sc.get("appArmorProfile") or {}).get("type")
    if apparmor_type is not None and apparmor_type not in APPARMOR_ALLOWED:
        found.append(f"appArmorProfile: pod sets appArmorProfile.type={apparmor_type}")
    for where, c in containers:
        apparmor_type = (_sc(c).get("appArmorProfile") or {}).get("type")
        if apparmor_type is not None and apparmor_type not in APPARMOR_ALLOWED:
            found.append(f"appArmorProfile: {where} sets appArmorProfile.type={apparmor_type}")
    for key, value in (meta.get("annotations") or {}).items():
        if (
            key.startswith(APPARMOR_ANNOTATION)
            and value != "runtime/default"
            and not str(value).startswith("localhost/")
        ):
            found.append(f"appArmorProfile: annotation {key}={value}")

    # SELinux
    selinux_types = _allowed(SELINUX_TYPES, version)
    for where, sc in [("pod", pod_sc), *((where, _sc(c)) for where, c in containers)]:
        options = sc.get("seLinuxOptions")
        if options is None:
            continue
        if (options.get("type") or "") not in selinux_types:
            found.append(f"seLinuxOptions: {where} sets seLinuxOptions.type={options['type']}")
        for field in ("user", "role"):
            if options.get(field):
                found.append(f"seLinuxOptions: {where} sets seLinuxOptions.{field}")

    # Seccomp (baseline: anything but Unconfined)
    for where, sc in [("pod", pod_sc), *((where, _sc(c)) for where, c in containers)]:
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.append(f"seccompProfile: {where} sets seccompProfile.type=Unconfined")

    # Sysctls
    safe = _allowed(SAFE_SYSCTLS, version)
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in safe:
            found.append(f"sysctls: pod sets unsafe sysctl {sysctl.get('name')}")
    return found


# --- restricted ------------------------------------------------------------------------------


def _restricted_only(spec: Mapping[str, Any], version: tuple[int, int]) -> list[str]:
    pod_sc = _sc(spec)
    containers = list(_containers(spec))
    windows = (spec.get("os") or {}).get("name") == "windows"
    found: list[str] = []

    # Volume types
    allowed_sources = _allowed(RESTRICTED_VOLUME_SOURCES, version)
    for volume in spec.get("volumes") or []:
        # A volume with no source at all is defaulted to emptyDir by the API server.
        bad = sorted(key for key in volume if key != "name" and key not in allowed_sources)
        if bad:
            found.append(f"restrictedVolumes: volume {volume.get('name', '?')} uses {', '.join(bad)}")

    # Running as non-root: pod-level true covers containers that leave it unset
    pod_non_root = pod_sc.get("runAsNonRoot")
    if pod_non_root is False:
        found.append("runAsNonRoot: pod sets securityContext.runAsNonRoot=false")
    for where, c in containers:
        value = _sc(c).get("runAsNonRoot")
        if value is False:
            found.append(f"runAsNonRoot: {where} sets securityContext.runAsNonRoot=false")
        elif value is None and pod_non_root is not True:
            found.append(f"runAsNonRoot: {where} must set securityContext.runAsNonRoot=true (the pod does not)")
    # Running as non-root user
    if pod_sc.get("runAsUser") == 0:
        found.append("runAsUser: pod sets securityContext.runAsUser=0")
    for where, c in containers:
        if _sc(c).get("runAsUser") == 0:
            found.append(f"runAsUser: {where} sets securityContext.runAsUser=0")

    if windows:
        return found

    # Privilege escalation: every container must say false
    for where, c in containers:
        if _sc(c).get("allowPrivilegeEscalation") is not False:
            found.append(f"allowPrivilegeEscalation: {where} must set securityContext.allowPrivilegeEscalation=false")

    # Seccomp: RuntimeDefault or Localhost at pod level or on every container
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_ALLOWED:
        found.append(f"seccompProfile: pod sets seccompProfile.type={pod_seccomp}")
    for where, c in containers:
        seccomp = (_sc(c).get("seccompProfile") or {}).get("type")
        if seccomp is None:
            if pod_seccomp not in SECCOMP_ALLOWED:
                found.append(
                    f"seccompProfile: {where} must set seccompProfile.type "
                    "to RuntimeDefault or Localhost (the pod does not)"
                )
        elif seccomp not in SECCOMP_ALLOWED:
            found.append(f"seccompProfile: {where} sets seccompProfile.type={seccomp}")

    # Capabilities: drop ALL, add at most NET_BIND_SERVICE
    for where, c in containers:
        capabilities = _sc(c).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"capabilities: {where} must drop ALL capabilities")
        extra = sorted(set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"})
        if extra:
            found.append(f"capabilities: {where} adds {', '.join(extra)} (restricted allows only NET_BIND_SERVICE)")
    return found


def violations(
    pod: Mapping[str, Any],
    level: str = "restricted",
    version: tuple[int, int] = LATEST,
    metadata: Mapping[str, Any] | None = None,
) -> list[str]:
    """Every control of `level` that `pod` (a pod spec, or `{metadata, spec}`) violates."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; valid: {', '.join(LEVELS)}")
    if level == "privileged":
        return []
    found = baseline_violations(pod, version, metadata)
    if level == "restricted":
        found += _restricted_only(_split(pod)[1], version)
    return found


def restricted_violations(
    pod_spec: dict, namespace_labels: dict | None = None, *, metadata: Mapping[str, Any] | None = None
) -> list[str]:
    """Violations of the namespace's enforce level (default, and unlabelled: restricted).

    `pod_spec` is a PodSpec (or a pod template `{metadata, spec}`); `metadata` supplies the
    pod's annotations (AppArmor) when only the spec is passed.
    """
    level, version = namespace_level(namespace_labels)
    return violations(pod_spec, level, version, metadata)
