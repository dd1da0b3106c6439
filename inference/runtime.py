"""ONNX Runtime sessions on CUDA with a one-way fallback to CPU.

The CUDA provider can be missing (CPU-only build), fail to start (no driver, wrong CUDA/cuDNN:
onnxruntime then silently creates a CPU session) or run out of memory mid-run when the GPU slice
is oversubscribed. In every case the service keeps answering on CPU, says it is degraded and logs
why once. It does not try CUDA again: a pod restart does (alert on `catwatcher_degraded`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import onnxruntime as ort

from inference.settings import InferenceSettings

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"

Provider = str | tuple[str, dict[str, str]]
DeviceName = Literal["cuda", "cpu"]

# What onnxruntime's CUDA/cuBLAS/cuDNN errors say when the GPU, not the request, failed. The
# arena's own limit errors name neither CUDA nor memory exhaustion ("BFCArena::AllocateRawInternal
# Available memory of 0 is smaller than requested bytes of ...", "Failed to allocate memory for
# requested buffer of size ..."); they are only read as GPU failures while running on CUDA.
_GPU_FAILURE = re.compile(
    r"cuda|cublas|cudnn|cufft|curand|out of memory|\boom\b|gpu|device memory|tensorrt"
    r"|bfc_?arena|available memory of \d+ is smaller than requested|failed to allocate memory",
    re.IGNORECASE,
)

log = logging.getLogger(__name__)


class Session(Protocol):
    """The part of onnxruntime.InferenceSession the service uses (fakes implement it in tests)."""

    def get_providers(self) -> list[str]: ...
    def get_inputs(self) -> list[Any]: ...
    def get_outputs(self) -> list[Any]: ...
    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


SessionFactory = Callable[[bytes, Sequence[Provider], ort.SessionOptions], Session]


def cuda_provider_options(settings: InferenceSettings, arena_share: float = 1.0) -> dict[str, str]:
    """CUDA execution provider options (onnxruntime takes them as strings).

    Every session has its own arena, so each gets `arena_share` of the pod's arena limit:
    together they stay within it. `gpu_mem_limit` caps only the arenas, not the CUDA context and
    cuBLAS/cuDNN state, so the arena limit is the pod's budget minus that overhead
    (`InferenceSettings.arena_limit_mb`); HEURISTIC avoids EXHAUSTIVE's big workspaces.
    """
    options = {
        "device_id": str(settings.device_id),
        "arena_extend_strategy": settings.arena_extend_strategy,
        "cudnn_conv_algo_search": settings.cudnn_conv_algo_search,
    }
    if settings.gpu_memory_limit is not None:
        options["gpu_mem_limit"] = str(int(settings.arena_limit_bytes * arena_share))
    return options


def execution_providers(
    settings: InferenceSettings, available: Sequence[str], arena_share: float = 1.0
) -> list[Provider]:
    """CUDA first (CPU kept as onnxruntime's own fallback for unsupported ops) or CPU only.

    `auto` asks for CUDA only when this onnxruntime build has the provider; `cuda` always does.
    """
    wants_cuda = settings.device == "cuda" or (settings.device == "auto" and CUDA_PROVIDER in available)
    if not wants_cuda:
        return [CPU_PROVIDER]
    return [(CUDA_PROVIDER, cuda_provider_options(settings, arena_share)), CPU_PROVIDER]


def session_options(settings: InferenceSettings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle intra-op threads would otherwise busy-wait for work: that burns the pod's CPU quota
    # (CFS throttling) and starves the threads decoding the next request.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Errors only: a provider fallback is reported by this module's single warning instead.
    options.log_severity_level = 3
    return options


@functools.cache
def preload_cuda_libraries() -> None:
    """Makes CUDA/cuDNN from the nvidia-* wheels (onnxruntime-gpu[cuda,cudnn]) loadable.

    Without system CUDA libraries (python:slim images) the provider cannot start otherwise.
    Missing libraries are only reported; creating the session then shows whether CUDA works.
    """
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime-gpu >= 1.21
    if preload is not None:
        # It prints each library it misses; cuda_unavailable_reason says it once, plainly.
        with contextlib.redirect_stdout(io.StringIO()):
            preload()


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA provider cannot run here, or None: asked of the driver and the dynamic
    loader, not of onnxruntime, which prints red error lines when the provider fails to load."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError as error:
        return f"no NVIDIA driver ({error})"
    if (code := driver.cuInit(0)) != 0:
        return f"the NVIDIA driver found no usable GPU (cuInit error {code})"
    count, version = ctypes.c_int(0), ctypes.c_int(0)
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "no CUDA device is visible"
    needed = _built_cuda_major()
    if needed and driver.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value // 1000 < needed:
        return (
            f"the NVIDIA driver supports CUDA {version.value // 1000}.{version.value % 1000 // 10}, "
            f"this onnxruntime needs CUDA {needed}"
        )
    preload_cuda_libraries()
    try:
        ctypes.CDLL(str(Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"))
    except OSError as error:
        return f"the CUDA provider's libraries do not load ({error})"
    return None


def _built_cuda_major() -> int | None:
    try:
        from onnxruntime.capi import build_and_package_info

        return int(str(build_and_package_info.cuda_version).split(".")[0])
    except (ImportError, AttributeError, ValueError):
        return None


def is_gpu_failure(error: BaseException) -> bool:
    return bool(_GPU_FAILURE.search(str(error)))


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def create_session(model: bytes, providers: Sequence[Provider], options: ort.SessionOptions) -> Session:
    return ort.InferenceSession(model, sess_options=options, providers=list(providers))


@dataclass(frozen=True)
class DeviceStatus:
    device: DeviceName
    degraded: bool
    reason: str | None = None


class ModelRuntime:
    """Sessions for every model on one device; moves them all to CPU on the first GPU failure."""

    def __init__(
        self,
        settings: InferenceSettings,
        session_factory: SessionFactory = create_session,
        available_providers: Sequence[str] | None = None,
        on_status_change: Callable[[DeviceStatus], None] | None = None,
        arena_shares: Mapping[str, float] | None = None,
        cuda_check: Callable[[], str | None] | None = None,
    ) -> None:
        """`cuda_check` says why CUDA is unusable (None: usable). By default the real check runs
        when providers and sessions are onnxruntime's own, none when either is injected."""
        if cuda_check is None and available_providers is None and session_factory is create_session:
            cuda_check = cuda_unavailable_reason
        available = ort.get_available_providers() if available_providers is None else available_providers
        self._settings = settings
        self._available = list(available)
        # Each model's part of the pod's GPU memory limit (a model not named gets all of it).
        self._arena_shares = dict(arena_shares or {})
        self._providers = execution_providers(settings, available)
        unavailable = cuda_check() if cuda_check is not None and CUDA_PROVIDER in _names(self._providers) else None
        if unavailable is not None:
            # `auto` on a machine without CUDA is the normal CPU case; `cuda` falling back is degraded.
            log.log(
                logging.WARNING if settings.device == "cuda" else logging.INFO,
                "CUDA unavailable: %s; running on CPU",
                unavailable,
            )
            self._providers = [CPU_PROVIDER]
        elif CUDA_PROVIDER in _names(self._providers):
            preload_cuda_libraries()
        self._options = session_options(settings)
        self._factory = session_factory
        self._on_status_change = on_status_change
        self._lock = threading.Lock()
        # Each model's bytes and the model it runs as on CPU (e.g. int8; None = the same one).
        self._models: dict[str, tuple[bytes, bytes | None]] = {}
        self._sessions: dict[str, tuple[Session, DeviceName]] = {}
        device: DeviceName = "cuda" if CUDA_PROVIDER in _names(self._providers) else "cpu"
        degraded = unavailable is not None and settings.device == "cuda"
        self._status = DeviceStatus(
            device, degraded=degraded, reason=f"CUDA unavailable: {unavailable}" if degraded else None
        )
        self._notify()

    @property
    def status(self) -> DeviceStatus:
        return self._status

    def session(self, name: str) -> Session:
        return self._sessions[name][0]

    def load(self, name: str, model: bytes, cpu_model: bytes | None = None) -> Session:
        """Creates `name`'s session on the current device; raises if the model itself is unusable.

        `cpu_model` replaces `model` whenever it runs on CPU: from the start on a CPU device, or
        after a fallback. Callers check it is usable (see `cpu_session`) before a GPU needs it.
        """
        with self._lock:
            self._models[name] = (model, cpu_model)
            if self._status.device == "cpu":
                self._sessions[name] = (self._cpu_session(name), "cpu")
                return self._sessions[name][0]
            providers = execution_providers(self._settings, self._available, self._arena_shares.get(name, 1.0))
            try:
                session = self._factory(model, providers, self._options)
            except Exception as error:
                if not is_gpu_failure(error):
                    raise
                self._fall_back(f"CUDA session could not be created: {first_line(error)}")
                return self._sessions[name][0]
            if CUDA_PROVIDER not in session.get_providers():
                self._fall_back(
                    "CUDA provider failed to start (missing CUDA/cuDNN "
                    "libraries or no GPU); see the onnxruntime error above"
                )
                return self._sessions[name][0]
            self._sessions[name] = (session, "cuda")
            return session

    def run(self, name: str, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Runs `name`; a GPU failure moves every model to CPU and this request is retried there."""
        session, device = self._sessions[name]
        try:
            return session.run(None, feeds)
        except Exception as error:
            if device != "cuda" or not is_gpu_failure(error):
                raise
            with self._lock:
                # Another thread may have fallen back while this run was failing.
                if self._sessions[name][1] == "cuda":
                    self._fall_back(f"{name} run failed on CUDA: {first_line(error)}")
        return self._sessions[name][0].run(None, feeds)

    def _fall_back(self, reason: str) -> None:
        """Rebuilds every loaded model on CPU. Called with the lock held, at most once."""
        log.warning("serving on CPU, degraded: %s", reason)
        self._sessions = {name: (self._cpu_session(name), "cpu") for name in self._models}
        self._status = DeviceStatus("cpu", degraded=True, reason=reason)
        self._notify()

    def _cpu_session(self, name: str) -> Session:
        model, cpu_model = self._models[name]
        return self._factory(cpu_model if cpu_model is not None else model, [CPU_PROVIDER], self._options)

    def cpu_session(self, model: bytes) -> Session:
        """A standalone CPU session with this runtime's options (to check a CPU-only model)."""
        return self._factory(model, [CPU_PROVIDER], self._options)

    def _notify(self) -> None:
        if self._on_status_change is not None:
            self._on_status_change(self._status)


def _names(providers: Sequence[Provider]) -> list[str]:
    return [provider if isinstance(provider, str) else provider[0] for provider in providers]
