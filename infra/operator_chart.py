"""What we know about each GPU Operator chart version, and the checks made against it.

Data per chart version: the leaf key paths its chart accepts (infra/data/gpu_operator_<version>_
value_paths.txt, derived from NVIDIA's values.yaml, plus gpu_operator_<version>_template_paths.txt,
the `.Values` paths its ClusterPolicy template reads) and the distribution facts
(infra/distributions.py). A chart version without both is refused during validation, naming
`operator.chartVersion`: Helm ignores unknown values silently, so an unchecked chart could drop
our settings without a word. The operator's values are built from the plan and checked here too,
before anything is registered.

To support a new chart version: add its value-paths file (one path per line, from its
values.yaml) and its row in distributions.PROFILES_BY_CHART, then run the reference tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import yaml

from components.dcgm_monitoring import exporter_env
from components.gpu_operator import GpuOperatorArgs, operator_values
from infra.distributions import PROFILES_BY_CHART
from infra.errors import key_path

if TYPE_CHECKING:
    from infra.plan import RolloutPlan

DATA_PACKAGE = "infra.data"
VALUE_PATHS_FILE = re.compile(r"^gpu_operator_(v\d+\.\d+\.\d+)_value_paths\.txt$")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.lstrip("v").split("."))


@cache
def _value_path_files() -> dict[str, str]:
    """Chart version -> its value-paths file name."""
    files = {}
    for entry in resources.files(DATA_PACKAGE).iterdir():
        if match := VALUE_PATHS_FILE.match(entry.name):
            files[match.group(1)] = entry.name
    return files


def supported_chart_versions() -> list[str]:
    """Chart versions we hold both the value paths and the distribution facts of, oldest first."""
    return sorted(set(_value_path_files()) & set(PROFILES_BY_CHART), key=_version_key)


def chart_version_problem(version: str) -> tuple[str, str] | None:
    if version in supported_chart_versions():
        return None
    return (
        key_path("operator", "chartVersion"),
        f"'{version}' is a chart version this project has no data for (its accepted values and "
        f"distribution facts); supported: {', '.join(supported_chart_versions())}",
    )


def _paths_file(name: str) -> frozenset[str]:
    text = resources.files(DATA_PACKAGE).joinpath(name).read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


@cache
def values_yaml_paths(version: str = "v26.7.0") -> frozenset[str]:
    """Every leaf key path of the chart version's values.yaml (derived data, see its header)."""
    return _paths_file(_value_path_files()[version])


@cache
def template_paths(version: str = "v26.7.0") -> frozenset[str]:
    """Every `.Values.<path>` the chart's ClusterPolicy template reads: values.yaml does not
    list them all (validator.cuda.env), the template is what the chart accepts."""
    name = f"gpu_operator_{version}_template_paths.txt"
    if not resources.files(DATA_PACKAGE).joinpath(name).is_file():
        return frozenset()
    return _paths_file(name)


def template_value_refs(template: str) -> frozenset[str]:
    """The `.Values.<path>` references in a chart template's text (how the data file is made)."""
    return frozenset(ref.rstrip(".") for ref in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", template))


def chart_value_paths(version: str = "v26.7.0") -> frozenset[str]:
    """Every leaf key path the chart version accepts."""
    return values_yaml_paths(version) | template_paths(version)


def value_paths(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Leaf key paths of a values tree (`devicePlugin.config.name`); lists are leaves."""
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and value:
            yield from value_paths(value, path)
        else:
            yield path


def unknown_value_paths(values: Mapping[str, Any], version: str = "v26.7.0") -> list[str]:
    """Keys the chart does not have: Helm would ignore them silently, so we refuse them."""
    return sorted(set(value_paths(values)) - chart_value_paths(version))


def gpu_operator_args(
    plan: RolloutPlan,
    *,
    namespace: pulumi.Input[str],
    sharing_config_map: pulumi.Input[str],
    sharing_content_hash: str,
    mig_config_map: pulumi.Input[str] | None,
) -> GpuOperatorArgs:
    """The plan mapped onto the GpuOperator component's args (the program and validation share it)."""
    config, runtime = plan.config, plan.node_runtime
    return GpuOperatorArgs(
        namespace=namespace,
        release_name=config.operator.release_name,
        chart_version=config.operator.chart_version,
        repository=config.operator.repository,
        sharing_config_map=sharing_config_map,
        sharing_default_key=plan.default_config_key,
        sharing_content_hash=sharing_content_hash,
        sharing_values=plan.sharing_operator_values,
        mig_config_map=mig_config_map,
        install_driver=runtime.install_driver,
        install_toolkit=runtime.install_toolkit,
        toolkit_env=runtime.toolkit_env,
        cdi_nri_plugin=runtime.cdi_nri_plugin,
        dcgm_exporter=config.monitoring.enabled and config.monitoring.exporter == "operator",
        dcgm_exporter_env=exporter_env(plan.gpu_resources, shared_gpus=plan.shared_gpus),
        timeout_seconds=config.operator.timeout_seconds,
        restart_image=config.operator.restart_image,
        config_readers=plan.config_readers,
        allocatable_checks=plan.allocatable_checks,
        verify_timeout_seconds=config.operator.verify_timeout_seconds,
        # The validator's cuda step runs a CUDA 13 workload, which needs compute capability 7.5.
        cuda_workload_validation=not plan.pre_turing_groups,
        driver_version=config.operator.driver_version,
    )


def operator_value_problems(plan: RolloutPlan) -> list[tuple[str, str]]:
    """The chart values this plan would set, checked against its chart version's keys."""
    version = plan.config.operator.chart_version
    # Names only matter as values, not as key paths: stand-ins do for the check.
    args = gpu_operator_args(
        plan,
        namespace=plan.config.operator.namespace,
        sharing_config_map="sharing-config",
        sharing_content_hash="0" * 64,
        mig_config_map="mig-config" if plan.mig_layouts is not None else None,
    )
    if unknown := unknown_value_paths(operator_values(args), version):
        return [
            (
                key_path("operator", "chartVersion"),
                f"gpu-operator {version} has no values {', '.join(unknown)}; this stack needs them",
            )
        ]
    return []


# --- the operator's own objects (its assets) -----------------------------------------------

OPERATOR_NAMESPACE = "<operator namespace>"  # how the contract file writes the operator's namespace


@dataclass(frozen=True, order=True)
class OwnedObject:
    """An object the operator creates and reconciles; ours must never share kind and name
    with one (in its namespace, or cluster-wide for cluster-scoped kinds)."""

    kind: str
    namespace: str | None  # OPERATOR_NAMESPACE, or None for cluster-scoped objects
    name: str


@dataclass(frozen=True)
class OperatorContract:
    owned: tuple[OwnedObject, ...]
    # DaemonSets that run the config-manager on the sharing ConfigMap (read it at start only).
    sharing_config_readers: tuple[str, ...]


def contract_from_assets(assets: Path) -> OperatorContract:
    """Derive the contract from the operator's `assets/` manifests (NVIDIA/gpu-operator)."""
    owned = []
    readers = []
    for path in sorted(assets.glob("*/*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document:
                continue
            metadata = document["metadata"]
            namespaced = "namespace" in metadata  # the operator fills it in: its own namespace
            owned.append(OwnedObject(document["kind"], OPERATOR_NAMESPACE if namespaced else None, metadata["name"]))
            if document["kind"] == "DaemonSet":
                pod = document["spec"]["template"]["spec"]
                containers = pod.get("initContainers", []) + pod.get("containers", [])
                if any(c.get("command") == ["config-manager"] for c in containers):
                    readers.append(metadata["name"])
    return OperatorContract(owned=tuple(sorted(set(owned))), sharing_config_readers=tuple(sorted(readers)))


def contract_to_yaml(contract: OperatorContract) -> dict[str, Any]:
    return {
        "owned": [{"kind": o.kind, "namespace": o.namespace, "name": o.name} for o in contract.owned],
        "sharingConfigReaders": list(contract.sharing_config_readers),
    }


@cache
def operator_contract(version: str = "v26.7.0") -> OperatorContract:
    """The derived copy shipped with the project (infra/data/gpu_operator_<version>_contract.yaml)."""
    text = resources.files(DATA_PACKAGE).joinpath(f"gpu_operator_{version}_contract.yaml").read_text()
    data = yaml.safe_load(text)
    return OperatorContract(
        owned=tuple(OwnedObject(o["kind"], o["namespace"], o["name"]) for o in data["owned"]),
        sharing_config_readers=tuple(data["sharingConfigReaders"]),
    )


def owned_name_clashes(
    manifests: Iterable[Mapping[str, Any]], operator_namespace: str, contract: OperatorContract
) -> list[str]:
    """Our objects that have the kind, namespace and name of one the operator owns."""
    owned = {
        (o.kind, operator_namespace if o.namespace == OPERATOR_NAMESPACE else None, o.name) for o in contract.owned
    }
    clashes = []
    for manifest in manifests:
        metadata = manifest.get("metadata", {})
        key = (manifest.get("kind"), metadata.get("namespace"), metadata.get("name"))
        if key in owned:
            clashes.append(f"{key[0]} {key[1] + '/' if key[1] else ''}{key[2]}")
    return clashes
