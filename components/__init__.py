"""Pulumi ComponentResources of the Cat Watcher GPU rollout, and the pure builders behind them."""

from components.cat_watcher import CatWatcher, CatWatcherArgs
from components.dcgm_monitoring import DcgmMonitoring, DcgmMonitoringArgs
from components.gpu_operator import GpuOperator, GpuOperatorArgs
from components.sharing_config import SharingConfig, SharingConfigArgs

__all__ = [
    "CatWatcher",
    "CatWatcherArgs",
    "DcgmMonitoring",
    "DcgmMonitoringArgs",
    "GpuOperator",
    "GpuOperatorArgs",
    "SharingConfig",
    "SharingConfigArgs",
]
