"""Service settings, read from `CAT_WATCHER__<SECTION>__<FIELD>` environment variables.

Invalid or unknown variables fail the start with one line naming the variable, never its
value (some are secrets).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from inference.contract import DEFAULT_PORT, ENV_NESTED_DELIMITER, ENV_PREFIX, GPU_MEMORY_LIMIT_ENV, MODELS_DIR

Device = Literal["auto", "cuda", "cpu"]
ArenaExtendStrategy = Literal["kNextPowerOfTwo", "kSameAsRequested"]
CudnnConvAlgoSearch = Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"]
Probability = Annotated[float, Field(gt=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InferenceSettings(_Section):
    # `auto` uses CUDA when this onnxruntime build has the provider, `cuda` insists on it; both
    # fall back to CPU (reported as degraded) rather than crash when CUDA cannot be used.
    device: Device = "auto"
    device_id: int = Field(default=0, ge=0)
    # MiB of GPU memory the pod may hold in all (its budget); None leaves the arena unbounded.
    gpu_memory_limit: int | None = Field(default=None, gt=0)
    # MiB of that budget the process holds outside ONNX Runtime's arenas (CUDA context,
    # cuBLAS/cuDNN): the arenas together get gpu_memory_limit - gpu_memory_overhead.
    gpu_memory_overhead: int = Field(default=0, ge=0)
    # kSameAsRequested grows the arena by what is asked for, not to the next power of two, so
    # the pod stays inside its GPU slice.
    arena_extend_strategy: ArenaExtendStrategy = "kSameAsRequested"
    # EXHAUSTIVE benchmarks every cuDNN algorithm with large workspaces outside the arena
    # limit; HEURISTIC picks one without those allocations.
    cudnn_conv_algo_search: CudnnConvAlgoSearch = "HEURISTIC"
    # 0 lets onnxruntime choose (one thread per physical core).
    intra_op_threads: int = Field(default=0, ge=0)
    inter_op_threads: int = Field(default=0, ge=0)

    detector_model_path: Path = Path(MODELS_DIR) / "detector.onnx"
    identifier_model_path: Path | None = None
    # Empty: read from cat_names.json next to the identifier model.
    cat_names: Annotated[tuple[str, ...], NoDecode] = ()

    presence_threshold: Probability = 0.25
    confidence_threshold: Probability = 0.5
    iou_threshold: Probability = 0.45
    identity_threshold: Probability = 0.5
    max_detections: int = Field(default=100, gt=0)

    max_request_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    max_concurrent_runs: int = Field(default=1, gt=0)

    # Decode limits, checked from the image's header before any pixel is decoded (see
    # inference/image_limits.py). Row pointers, libjpeg's coefficient buffer and libwebp's canvas
    # make a small file cost far more than its pixel count, so each dimension and the estimated
    # decoded bytes are bounded on their own. A camera frame (8K or less) passes all of them.
    max_image_width: int = Field(default=10_000, gt=0)
    max_image_height: int = Field(default=10_000, gt=0)
    # As stored in the file after decompression: 16-bit RGBA is 8.
    max_image_bytes_per_pixel: int = Field(default=8, gt=0)
    # Everything decoding one image allocates: decoded image, its RGB copy, libjpeg's coefficients,
    # libwebp's canvases. 2 x max_concurrent_runs images decode at once (docs: memory budget).
    max_decoded_image_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    # Progressive JPEGs from cameras and encoders have about 10 scans; each scan re-reads every
    # coefficient of the image.
    max_jpeg_scans: int = Field(default=32, gt=0)
    # CPU seconds one decode may use (the decoding thread's, so load does not count); checked
    # every 512 bytes of input, then the decode is abandoned.
    max_decode_seconds: float = Field(default=3.0, gt=0)
    # JPEG marker segments, PNG chunks (IDAT split into 8 KiB chunks included) or WebP RIFF
    # chunks (animation frames included): Pillow handles each in Python.
    max_image_chunks: int = Field(default=4096, gt=0)
    # Multipart parts in a detect request (found by counting boundaries before parsing).
    max_multipart_parts: int = Field(default=8, gt=0)

    # Speed (issue 16). Micro-batching: frames waiting for a model run go through the detector
    # as one batch of up to `max_batch` (needs a dynamic batch axis; fixed-batch models run one
    # by one). A run that could take more frames waits at most `max_batch_wait_ms` for them.
    # 1 = no batching: on CPU a batch costs as much as its frames one by one, so waiting only
    # adds latency; on a GPU slice 4 and a few milliseconds raise throughput.
    max_batch: int = Field(default=1, ge=1, le=64)
    max_batch_wait_ms: float = Field(default=2.0, ge=0.0, le=1000.0)
    # Added to the nice value of the threads decoding requests (0..19, 0 = same priority as
    # the model runs): they then use the cores the model leaves idle instead of slowing it.
    decode_nice: int = Field(default=10, ge=0, le=19)
    # Models used whenever that model runs on CPU (device=cpu, no CUDA, or after a GPU failure),
    # e.g. the int8 output of `catwatcher-inference quantize`; unset = the fp32 model.
    cpu_detector_model_path: Path | None = None
    cpu_identifier_model_path: Path | None = None

    @field_validator("device", "arena_extend_strategy", "cudnn_conv_algo_search", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("cat_names", mode="before")
    @classmethod
    def _parse_cat_names(cls, value: Any) -> Any:
        """Accepts a JSON list (`["Tom", "Kitty"]`) or a comma list (`Tom,Kitty`)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"invalid JSON list ({error.msg})") from None
        return [name.strip() for name in text.split(",") if name.strip()]

    @field_validator("cat_names")
    @classmethod
    def _unique_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(names)) != len(names):
            raise ValueError("cat names must be unique")
        return names

    @model_validator(mode="after")
    def _presence_not_above_confidence(self) -> InferenceSettings:
        if self.presence_threshold > self.confidence_threshold:
            raise _FieldError("presence_threshold", "must not exceed CAT_WATCHER__INFERENCE__CONFIDENCE_THRESHOLD")
        if self.cpu_identifier_model_path is not None and self.identifier_model_path is None:
            raise _FieldError(
                "cpu_identifier_model_path",
                "needs CAT_WATCHER__INFERENCE__IDENTIFIER_MODEL_PATH (the model it replaces on CPU)",
            )
        return self

    @model_validator(mode="after")
    def _overhead_below_limit(self) -> InferenceSettings:
        if self.gpu_memory_overhead and self.gpu_memory_limit is None:
            raise _FieldError(
                "gpu_memory_overhead", f"only counts with {GPU_MEMORY_LIMIT_ENV} (the pod's GPU budget); set that too"
            )
        if self.gpu_memory_limit is not None and self.gpu_memory_overhead >= self.gpu_memory_limit:
            raise _FieldError(
                "gpu_memory_overhead",
                f"{self.gpu_memory_overhead} MiB leaves no arena within "
                f"{GPU_MEMORY_LIMIT_ENV}={self.gpu_memory_limit}; "
                "must be below it",
            )
        return self

    @property
    def gpu_memory_limit_bytes(self) -> int:
        return 0 if self.gpu_memory_limit is None else self.gpu_memory_limit * 1024 * 1024

    @property
    def arena_limit_mb(self) -> int | None:
        """What ONNX Runtime's arenas may hold together: the budget minus what they cannot see."""
        return None if self.gpu_memory_limit is None else self.gpu_memory_limit - self.gpu_memory_overhead

    @property
    def arena_limit_bytes(self) -> int:
        return 0 if self.arena_limit_mb is None else self.arena_limit_mb * 1024 * 1024


class ServerSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = False
    # Detect requests in progress at once (reading, queued or running); more get a JSON 503 at
    # once. Each may hold a request body of up to inference.max_request_bytes, so this bounds the
    # memory bodies can take. Probes and /metrics are never refused, and idle connections do not
    # count (they are closed after header_timeout).
    max_pending_requests: int = Field(default=32, ge=1)
    # Seconds a connection may take to send a complete request head (idle keep-alive included);
    # then it is closed. Slow or idle clients cannot pile up.
    header_timeout: float = Field(default=10.0, gt=0)
    # Seconds a detect request may take to send its whole body; then 408 and the connection closes.
    body_timeout: float = Field(default=20.0, gt=0)
    # Request line plus headers; more is refused with 431 (h11 also stops buffering there).
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    # Overload and timeout warnings are logged at most once per this many seconds, with a count.
    log_interval: float = Field(default=60.0, gt=0)


class MqttSettings(_Section):
    """Accepted for the Deployment's Secret-provided environment; unused by inference itself."""

    host: str | None = None
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None


class FrigateSettings(_Section):
    """Accepted for the Deployment's Secret-provided environment; unused by inference itself."""

    url: str | None = None
    username: str | None = None
    password: SecretStr | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        # An empty variable means unset, so a Deployment can clear a default baked into the image.
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
    )

    inference: InferenceSettings = InferenceSettings()
    server: ServerSettings = ServerSettings()
    mqtt: MqttSettings = MqttSettings()
    frigate: FrigateSettings = FrigateSettings()


class SettingsError(ValueError):
    """One line per problem, each starting with the variable's name."""


class _FieldError(ValueError):
    """A cross-field problem that belongs to one named field (reported under that variable)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def env_name(location: tuple[str | int, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part).upper() for part in location)


def known_variables() -> frozenset[str]:
    return frozenset(
        env_name((section, field))
        for section, info in Settings.model_fields.items()
        for field in info.annotation.model_fields  # type: ignore[union-attr]
    )


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`CAT_WATCHER__*` names that match no setting: a typo must not silently become a default."""
    known = known_variables()
    return sorted(name for name in environ if name.upper().startswith(ENV_PREFIX) and name.upper() not in known)


def _describe(error: Mapping[str, Any]) -> str:
    location = tuple(error["loc"])
    message = str(error["msg"])
    if error["type"] == "literal_error":
        choices = str(error["ctx"]["expected"]).replace("'", "").replace(" or ", ", ")
        message = f"must be one of {choices}"
    message = message.removeprefix("Value error, ").replace("Input should be", "must be")
    if message.partition(": ")[0] in InferenceSettings.model_fields and len(location) == 1:
        # A _FieldError raised by a section's model validator: point at the field it names.
        field, _, message = message.partition(": ")
        location = (*location, field)
    # Tuple/list items are reported at the variable, not at the item index.
    location = tuple(part for part in location if isinstance(part, str))
    return f"{env_name(location)}: {message}"


def eager_module_loading_problem(environ: Mapping[str, str], settings: Settings) -> str | None:
    """CUDA_MODULE_LOADING=EAGER loads every kernel of every library into the GPU at start: the
    process then holds ~2 GiB instead of ~0.8 GiB (measured on an H200), more than the pod's budget
    counts, so a hard cap (MPS, HAMi) or a full GPU fails allocations. Refused unless on CPU."""
    if environ.get("CUDA_MODULE_LOADING", "").strip().upper() != "EAGER" or settings.inference.device == "cpu":
        return None
    return (
        "CUDA_MODULE_LOADING: EAGER makes each process hold ~1.3 GiB more GPU memory (2056 vs 764 MiB "
        "measured) than the pod's GPU budget counts; unset it or set LAZY (CUDA's default since 12.2)"
    )


def load_settings() -> Settings:
    """Reads and validates settings from the process environment."""
    problems = [f"{name}: unknown variable" for name in unknown_variables(os.environ)]
    if not problems:
        try:
            settings = Settings()
        except ValidationError as error:
            problems = [_describe(item) for item in error.errors(include_url=False, include_input=False)]
        else:
            eager = eager_module_loading_problem(os.environ, settings)
            if eager is None:
                return settings
            problems = [eager]
    raise SettingsError("; ".join(problems))
