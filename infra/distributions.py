"""Cluster distributions: what `catwatcher:cluster.distribution` implies for the GPU Operator.

One table (`PROFILES`) holds, per distribution, where its containerd lives (the container
toolkit's `toolkit.env`), whether the operator installs the driver and the toolkit, and which
runtime class GPU pods name. `resolve()` is the pure mapping from the validated stack config to
the settings the components take (`NodeRuntime`); `markdown_table()` renders the same table for
the README. Nothing here reads pulumi.Config.

Facts, as checked (chart v26.7.0, container toolkit v1.20.0):

- kubeadm: the toolkit's defaults are stock containerd's, CONTAINERD_CONFIG=/etc/containerd/
  config.toml, CONTAINERD_SOCKET=/run/containerd/containerd.sock, RUNTIME_CONFIG_SOURCE=
  "command,file" (NVIDIA cloud-native-docs, gpu-operator "Specifying Configuration Options for
  containerd"). We set nothing. Since v25.10 CDI is on by default and pods that get their GPU
  from the device plugin need no `runtimeClassName` (NVIDIA cloud-native-docs, "Container Device
  Interface"); the toolkit owns /etc/containerd/config.toml here, so CDI stays enabled.
- k3s and RKE2 generate containerd's config.toml from their own template at every start and
  detect the toolkit's runtime binaries in /usr/local/nvidia/toolkit themselves (k3s-io/k3s
  #3890; RuntimeClasses pre-installed since k3s-io/k3s #8700). Their containerd socket is
  /run/k3s/containerd/containerd.sock (NVIDIA/gpu-operator #238, #415; docs.rke2.io CLI tools and
  "GPU Operators", whose v26.3 manifest sets only CONTAINERD_SOCKET).
  * CONTAINERD_CONFIG is the generated config.toml, never config.toml.tmpl: the toolkit cannot
    parse the template (rancher/rke2 #3385: "keys cannot contain { character"), and a template
    written by the toolkit replaces the distribution's own, which loses the CNI config on k3s
    (NVIDIA/gpu-operator #473, 2024 comments) and leaves RKE2 unbootable after a reboot
    (NVIDIA/gpu-operator #992; #623 asks for config.toml). NVIDIA's older RKE2 advice of the
    .tmpl (#473, 2023) is superseded by that.
  * Not the default /etc/containerd/config.toml either: on a host that also runs Docker's
    containerd the toolkit would rewrite and restart that one (NVIDIA/nvidia-container-toolkit
    #982). For the same reason RUNTIME_CONFIG_SOURCE=file: `containerd config dump` would run
    whichever containerd binary is on the host's PATH, not the distribution's (#982; the
    command-based source is what broke k0s in NVIDIA/gpu-operator #1323).
  * CONTAINERD_SET_AS_DEFAULT=false: the distribution regenerates config.toml on restart, so a
    default runtime written there does not survive (rancher/rke2 #8752; k3s offers
    `--default-runtime` instead, k3s-io/k3s #9702). Pods name `runtimeClassName: nvidia`, which
    works after every restart and whether or not the distribution's containerd enables CDI.
- MicroK8s: CONTAINERD_CONFIG=/var/snap/microk8s/current/args/containerd-template.toml,
  CONTAINERD_SOCKET=/var/snap/microk8s/common/run/containerd.sock, RUNTIME_CONFIG_SOURCE=
  file=/var/snap/microk8s/current/args/containerd.toml (NVIDIA cloud-native-docs, "MicroK8s").
- k0s: containerd imports drop-ins from /etc/k0s/containerd.d/, its socket is
  /run/k0s/containerd.sock (replicatedhq/replicated-docs #2973: CONTAINERD_CONFIG=/etc/k0s/
  containerd.d/nvidia.toml, CONTAINERD_SOCKET=/run/k0s/containerd.sock), and its containerd is
  /var/lib/k0s/bin/containerd, which the toolkit must be told (RUNTIME_EXECUTABLE_PATH,
  NVIDIA/nvidia-container-toolkit #1029, fixing the k0s failure of NVIDIA/gpu-operator #1323).
- Talos: the driver and the toolkit come from system extensions (nonfree-kmod-nvidia or
  nvidia-open-gpu-kernel-modules, plus nvidia-container-toolkit; Talos "NVIDIA GPU" guides), so
  driver.enabled=false and toolkit.enabled=false: the driver container cannot build for Talos
  (siderolabs/talos #8402) and the toolkit would rewrite a containerd config Talos owns
  (cozystack/cozystack #3585). The extension registers the `nvidia` runtime handler.
- NRI plugin (`cdi.nriPluginEnabled`): needs CDI and containerd v1.7.30, v2.1.x or v2.2.x (not
  CRI-O); the toolkit then changes no containerd config (no CONTAINERD_* env needed on k3s, k0s,
  RKE2) and the `nvidia` RuntimeClass is not created, so pods must not name it (NVIDIA
  cloud-native-docs, "Node Resource Interface (NRI) Plugin"; docs.rke2.io "GPU Operators":
  containerd 2.1 from v1.31.13/v1.32.9/v1.33.5/v1.34.1+rke2r1). The plugin runs in the toolkit
  DaemonSet, so it needs installToolkit.

Explicit operator.installDriver / operator.installToolkit win over the distribution default,
except where the distribution makes them impossible (the driver or toolkit container on Talos,
the NRI plugin without the toolkit): those are refused with the key named, because the rollout
would otherwise hang on the first `pulumi up` instead of failing at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infra.errors import ConfigError, key_path
from infra.model import ClusterSpec, Distribution, OperatorSpec

NVIDIA_RUNTIME_CLASS = "nvidia"
NRI_CONTAINERD = "containerd v1.7.30+, v2.1.x or v2.2.x"

Env = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Profile:
    """What one distribution implies; data, one row of the table."""

    title: str
    toolkit_env: Env  # name, value; in order
    runtime_class: str | None  # when the NRI plugin is off
    install_driver: bool  # defaults, when the stack does not say
    install_toolkit: bool
    driver_possible: bool = True  # False: an explicit installDriver: true is refused
    toolkit_possible: bool = True
    host_steps: str = ""  # what the user still does on the host (README)


def _rancher(name: str) -> Env:
    return (
        ("CONTAINERD_CONFIG", f"/var/lib/rancher/{name}/agent/etc/containerd/config.toml"),
        ("CONTAINERD_SOCKET", "/run/k3s/containerd/containerd.sock"),
        ("RUNTIME_CONFIG_SOURCE", "file"),
        ("CONTAINERD_RUNTIME_CLASS", NVIDIA_RUNTIME_CLASS),
        ("CONTAINERD_SET_AS_DEFAULT", "false"),
    )


PROFILES: Mapping[Distribution, Profile] = {
    "kubeadm": Profile(
        title="stock containerd",
        toolkit_env=(),  # the toolkit's defaults are stock containerd's
        runtime_class=None,
        install_driver=True,
        install_toolkit=True,
        host_steps="containerd at its default paths; with a preinstalled driver set `operator.installDriver: false`",
    ),
    "k3s": Profile(
        title="k3s",
        toolkit_env=_rancher("k3s"),
        runtime_class=NVIDIA_RUNTIME_CLASS,
        install_driver=True,
        install_toolkit=True,
        host_steps="no containerd template of your own; the toolkit's SIGHUP "
        "restarts k3s once, which then detects the `nvidia` runtime",
    ),
    "rke2": Profile(
        title="RKE2",
        toolkit_env=_rancher("rke2"),
        runtime_class=NVIDIA_RUNTIME_CLASS,
        install_driver=True,
        install_toolkit=True,
        host_steps="no `config.toml.tmpl` of your own; the toolkit's SIGHUP "
        "restarts RKE2 once, which then detects the `nvidia` runtime",
    ),
    "microk8s": Profile(
        title="MicroK8s",
        toolkit_env=(
            ("CONTAINERD_CONFIG", "/var/snap/microk8s/current/args/containerd-template.toml"),
            ("CONTAINERD_SOCKET", "/var/snap/microk8s/common/run/containerd.sock"),
            ("RUNTIME_CONFIG_SOURCE", "file=/var/snap/microk8s/current/args/containerd.toml"),
        ),
        runtime_class=NVIDIA_RUNTIME_CLASS,
        install_driver=True,
        install_toolkit=True,
        host_steps="do not also enable the `gpu`/`nvidia` addon (it installs its own operator)",
    ),
    "k0s": Profile(
        title="k0s",
        toolkit_env=(
            ("CONTAINERD_CONFIG", "/etc/k0s/containerd.d/nvidia.toml"),
            ("CONTAINERD_SOCKET", "/run/k0s/containerd.sock"),
            ("RUNTIME_EXECUTABLE_PATH", "/var/lib/k0s/bin/containerd"),
        ),
        runtime_class=NVIDIA_RUNTIME_CLASS,
        install_driver=True,
        install_toolkit=True,
        host_steps="keep k0s's default `/etc/k0s/containerd.toml` (it imports `/etc/k0s/containerd.d/*.toml`)",
    ),
    "talos": Profile(
        title="Talos",
        toolkit_env=(),
        runtime_class=NVIDIA_RUNTIME_CLASS,
        install_driver=False,
        install_toolkit=False,
        driver_possible=False,
        toolkit_possible=False,
        host_steps=(
            "build the image with the `nonfree-kmod-nvidia` (or `nvidia-open-gpu-kernel-modules`) and "
            "`nvidia-container-toolkit` extensions of the same driver version; load the modules "
            "`nvidia`, `nvidia_uvm`, `nvidia_drm`, `nvidia_modeset` "
            "and set `net.core.bpf_jit_harden: 1` in the machine config"
        ),
    ),
}


# Distribution facts per GPU Operator chart version (the table above was checked for v26.7.0).
PROFILES_BY_CHART: Mapping[str, Mapping[Distribution, Profile]] = {"v26.7.0": PROFILES}


@dataclass(frozen=True)
class NodeRuntime:
    """The resolved settings the components take (GpuOperatorArgs, CatWatcherArgs)."""

    distribution: Distribution
    install_driver: bool
    install_toolkit: bool
    toolkit_env: tuple[Mapping[str, str], ...]
    cdi_nri_plugin: bool
    runtime_class: str | None


def profile(distribution: Distribution, chart_version: str = "v26.7.0") -> Profile:
    return PROFILES_BY_CHART[chart_version][distribution]


def resolve(cluster: ClusterSpec, operator: OperatorSpec) -> NodeRuntime:
    """Stack config -> node runtime settings; raises one ConfigError naming each bad key."""
    row = profile(cluster.distribution, operator.chart_version)
    driver = row.install_driver if operator.install_driver is None else operator.install_driver
    toolkit = row.install_toolkit if operator.install_toolkit is None else operator.install_toolkit
    problems: list[tuple[str, str]] = []
    if driver and not row.driver_possible:
        problems.append(
            (
                key_path("operator", "installDriver"),
                f"{cluster.distribution} nodes get the NVIDIA driver from the OS (system extension); "
                "the operator's driver container cannot install it there: remove the key or set false",
            )
        )
    if toolkit and not row.toolkit_possible:
        problems.append(
            (
                key_path("operator", "installToolkit"),
                f"{cluster.distribution} nodes get the container toolkit from the OS (system extension) and own "
                "containerd's config; the operator's toolkit cannot configure it: remove the key or set false",
            )
        )
    if cluster.use_nri_plugin and not toolkit:
        why = (
            f"{cluster.distribution} has no operator toolkit"
            if not row.toolkit_possible
            else "operator.installToolkit is false"
        )
        problems.append(
            (
                key_path("cluster", "useNriPlugin"),
                f"the NRI plugin runs in the operator's container-toolkit DaemonSet, and {why}",
            )
        )
    if problems:
        raise ConfigError(problems)
    nri = cluster.use_nri_plugin
    # With the NRI plugin the toolkit changes no containerd config and the `nvidia` RuntimeClass
    # does not exist; without the toolkit there is nothing to configure.
    env = () if nri or not toolkit else tuple({"name": name, "value": value} for name, value in row.toolkit_env)
    return NodeRuntime(
        distribution=cluster.distribution,
        install_driver=driver,
        install_toolkit=toolkit,
        toolkit_env=env,
        cdi_nri_plugin=nri,
        runtime_class=None if nri else row.runtime_class,
    )


def _env_cell(env: Env) -> str:
    return "<br>".join(f"`{name}={value}`" for name, value in env) or "chart defaults"


def markdown_table() -> str:
    """The README's distribution table: what the project sets and what is left to the host."""
    lines = [
        "| `cluster.distribution` | toolkit `env` set | driver / toolkit "
        "by the operator | pods' `runtimeClassName` | on the host, you |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, row in PROFILES.items():
        default = lambda on: "yes" if on else "no"  # noqa: E731
        installs = f"{default(row.install_driver)} / {default(row.install_toolkit)}"
        if not (row.driver_possible and row.toolkit_possible):
            installs += " (refused if set)"
        runtime = f"`{row.runtime_class}`" if row.runtime_class else "none"
        env = _env_cell(row.toolkit_env) if row.install_toolkit else "none (no toolkit)"
        name = f"`{key}`" if row.title.lower() == key else f"`{key}` ({row.title})"
        lines.append(f"| {name} | {env} | {installs} | {runtime} | {row.host_steps} |")
    lines.append(
        "| any, with `cluster.useNriPlugin: true` | none (`cdi.enabled`, `cdi.nriPluginEnabled`) | as above; "
        "needs the toolkit (refused on `talos`) | none (no `nvidia` RuntimeClass exists) | "
        f"run {NRI_CONTAINERD} with CDI and NRI enabled (not CRI-O) |"
    )
    return "\n".join(lines) + "\n"
