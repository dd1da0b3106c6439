"""What we know about each GPU Operator chart version, and the checks made against it.

Data per chart version: the leaf key paths its chart accepts (infra/data/gpu_operator_<version>_
value_paths.txt, derived from NVIDIA's values.yaml) and the distribution facts
(infra/distributions.py). A chart version without both is refused during validation, naming
`operator.chartVersion`: Helm ignores unknown values silently, so an unchecked chart could drop
our settings without a word. The operator's values are built from the plan and checked here too,
before anything is registered.

To support a new chart version: add its value-paths file (one path per line, from its
values.yaml) and its row in distributions.PROFILES_BY_CHART, then run the reference tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import pulumi

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


@cache
def chart_value_paths(version: str = "v26.7.0") -> frozenset[str]:
    """Every leaf key path the chart version accepts (derived data, see the file's header)."""
    text = resources.files(DATA_PACKAGE).joinpath(_value_path_files()[version]).read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


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
        return [(
            key_path("operator", "chartVersion"),
            f"gpu-operator {version} has no values {', '.join(unknown)}; this stack needs them",
        )]
    return []
