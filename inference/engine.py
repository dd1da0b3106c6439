"""The two-stage pipeline: letterboxed YOLOv8 detection, then batched identification of each cat."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inference import contract
from inference.errors import ModelLoadError
from inference.image_limits import ImageLimits, check_image_limits
from inference.imaging import (
    Letterbox,
    boxes_to_source,
    crop_batch,
    decode_pixels,
    imagenet_batch,
    letterbox_geometry,
    letterbox_tensor,
)
from inference.labels import BEHAVIOURS
from inference.modelprep import cpu_rewrites, uint8_image_input
from inference.postprocess import decode_detections, identities
from inference.runtime import DeviceStatus, ModelRuntime, Session, SessionFactory, create_session, first_line
from inference.settings import InferenceSettings, env_name

DETECTOR = "detector"
IDENTIFIER = "identifier"
CAT_NAMES_FILE = "cat_names.json"
# How the pod's GPU memory limit is split between the two sessions' arenas.
ARENA_SHARES_WITH_IDENTIFIER = {DETECTOR: contract.DETECTOR_ARENA_SHARE, IDENTIFIER: 1 - contract.DETECTOR_ARENA_SHARE}
DEFAULT_DETECTOR_SIZE = 640
DEFAULT_IDENTIFIER_SIZE = 224
DETECTOR_VARIABLE = env_name(("inference", "detector_model_path"))
IDENTIFIER_VARIABLE = env_name(("inference", "identifier_model_path"))
CAT_NAMES_VARIABLE = env_name(("inference", "cat_names"))
CPU_DETECTOR_VARIABLE = env_name(("inference", "cpu_detector_model_path"))
CPU_IDENTIFIER_VARIABLE = env_name(("inference", "cpu_identifier_model_path"))
MAX_BATCH_VARIABLE = env_name(("inference", "max_batch"))

log = logging.getLogger(__name__)


@dataclass
class PreparedImage:
    """A decoded request image ([H, W, 3] uint8 array, or Pillow's RGB image) and its detector
    input; timings in milliseconds."""

    pixels: np.ndarray | Image.Image
    letterbox: Letterbox
    tensor: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInput:
    name: str
    size: int
    # Whether the first axis is dynamic, so several frames can run as one batch.
    batchable: bool = False
    # uint8 when the model scales 0..255 itself (modelprep), else float32 in 0..1.
    dtype: type[np.generic] = np.float32


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def read_model(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"{variable}: cannot read model {path}: {error.strerror or error}") from None


def square_input(session: Session, default_size: int, variable: str) -> ModelInput:
    """The model's [N, 3, S, S] input; S from the graph, or `default_size` if it is dynamic."""
    model_input = session.get_inputs()[0]
    shape = list(model_input.shape)
    if len(shape) != 4 or shape[1] != 3:
        raise ModelLoadError(f"{variable}: expected an [N, 3, H, W] image input, got {model_input.name} {shape}")
    sizes = {dim for dim in shape[2:] if isinstance(dim, int)}
    if len(sizes) > 1:
        raise ModelLoadError(f"{variable}: expected a square input, got {model_input.name} {shape}")
    dtype = np.uint8 if model_input.type == "tensor(uint8)" else np.float32
    return ModelInput(
        model_input.name, sizes.pop() if sizes else default_size, batchable=not isinstance(shape[0], int), dtype=dtype
    )


def resolve_cat_names(settings: InferenceSettings, identifier_path: Path) -> tuple[str, ...]:
    """Configured names, else the cat_names.json shipped beside the identifier model."""
    if settings.cat_names:
        return settings.cat_names
    names_file = identifier_path.parent / CAT_NAMES_FILE
    try:
        names = json.loads(names_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(
            f"{CAT_NAMES_VARIABLE}: required with an identifier model unless {names_file} lists them ({error})"
        ) from None
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise ModelLoadError(f"{CAT_NAMES_VARIABLE}: {names_file} must hold a non-empty JSON list of names")
    return tuple(names)


class CatWatcherEngine:
    """Decodes request images and runs detection and identification through one ModelRuntime."""

    def __init__(
        self,
        settings: InferenceSettings,
        runtime: ModelRuntime,
        detector: ModelInput,
        identifier: ModelInput | None,
        cat_names: tuple[str, ...],
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.detector = detector
        self.identifier = identifier
        self.cat_names = cat_names
        self.image_limits = ImageLimits.from_settings(settings)
        # Frames per detector run: batching needs the model's dynamic batch axis.
        self.max_batch = settings.max_batch if detector.batchable else 1

    @classmethod
    def load(
        cls,
        settings: InferenceSettings,
        session_factory: SessionFactory = create_session,
        available_providers: list[str] | None = None,
        on_status_change: Callable[[DeviceStatus], None] | None = None,
    ) -> CatWatcherEngine:
        """Loads both models, checks their shapes and warms them up (which also surfaces CUDA OOM)."""
        shares = ARENA_SHARES_WITH_IDENTIFIER if settings.identifier_model_path is not None else {DETECTOR: 1.0}
        runtime = ModelRuntime(settings, session_factory, available_providers, on_status_change, shares)
        detector_session = _load(
            runtime,
            DETECTOR,
            settings.detector_model_path,
            DETECTOR_VARIABLE,
            settings.cpu_detector_model_path,
            CPU_DETECTOR_VARIABLE,
            uint8_image_input,
        )
        detector = square_input(detector_session, DEFAULT_DETECTOR_SIZE, DETECTOR_VARIABLE)
        identifier: ModelInput | None = None
        cat_names: tuple[str, ...] = ()
        if settings.identifier_model_path is not None:
            cat_names = resolve_cat_names(settings, settings.identifier_model_path)
            identifier_session = _load(
                runtime,
                IDENTIFIER,
                settings.identifier_model_path,
                IDENTIFIER_VARIABLE,
                settings.cpu_identifier_model_path,
                CPU_IDENTIFIER_VARIABLE,
            )
            identifier = square_input(identifier_session, DEFAULT_IDENTIFIER_SIZE, IDENTIFIER_VARIABLE)
        if settings.max_batch > 1 and not detector.batchable:
            log.warning(
                "%s=%d ignored: %s has a fixed batch size; frames run one at a time",
                MAX_BATCH_VARIABLE,
                settings.max_batch,
                settings.detector_model_path,
            )
        engine = cls(settings, runtime, detector, identifier, cat_names)
        engine._warm_up()
        return engine

    def _warm_up(self) -> None:
        # At the largest batch the service will run, so the GPU arena is sized (or fails) now.
        batch = self.max_batch
        detector_output = self._run(
            DETECTOR,
            DETECTOR_VARIABLE,
            {self.detector.name: np.zeros((batch, 3, self.detector.size, self.detector.size), self.detector.dtype)},
        )
        if (
            detector_output.ndim != 3
            or detector_output.shape[0] != batch
            or detector_output.shape[1] != 4 + len(BEHAVIOURS)
        ):
            raise ModelLoadError(
                f"{DETECTOR_VARIABLE}: expected output [{batch}, {4 + len(BEHAVIOURS)}, "
                f"anchors] (box + {', '.join(BEHAVIOURS)}), got {list(detector_output.shape)}"
            )
        if self.identifier is not None:
            logits = self._run(
                IDENTIFIER,
                IDENTIFIER_VARIABLE,
                {self.identifier.name: np.zeros((2, 3, self.identifier.size, self.identifier.size), np.float32)},
            )
            if logits.shape != (2, len(self.cat_names)):
                raise ModelLoadError(
                    f"{IDENTIFIER_VARIABLE}: expected logits [N, {len(self.cat_names)}] for "
                    f"cats {', '.join(self.cat_names)}, got {list(logits.shape)} for a batch of 2"
                )

    def _run(self, name: str, variable: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        try:
            return self.runtime.run(name, feeds)[0]
        except Exception as error:  # noqa: BLE001 - onnxruntime's pybind errors share no base below Exception
            raise ModelLoadError(f"{variable}: model fails on a blank input: {first_line(error)}") from None

    @property
    def status(self) -> DeviceStatus:
        return self.runtime.status

    def prepare(self, data: bytes) -> PreparedImage:
        """Decode and letterbox: CPU work done outside the model-run limit. Raises ClientError."""
        start = time.perf_counter()
        check_image_limits(data, self.image_limits)
        pixels, source_size = decode_pixels(
            data,
            self.settings.max_image_pixels,
            target_size=self._resized_size,
            max_seconds=self.image_limits.max_decode_seconds,
        )
        decoded = time.perf_counter()
        box = letterbox_geometry(*source_size, self.detector.size)
        tensor = letterbox_tensor(pixels, box, self.detector.size, self.detector.dtype)
        return PreparedImage(
            pixels, box, tensor, {"decode": (decoded - start) * 1000, "preprocess": _elapsed_ms(decoded)}
        )

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        box = letterbox_geometry(width, height, self.detector.size)
        return box.resized_width, box.resized_height

    def infer(self, prepared: PreparedImage) -> dict[str, Any]:
        """Detection, then identification of all detected cats in one batched run."""
        return self.infer_batch([prepared])[0]

    def infer_batch(self, batch: Sequence[PreparedImage]) -> list[dict[str, Any]]:
        """Runs up to `max_batch` frames through the detector at once, then identifies every cat
        they contain in one identifier run. Results are those of each frame on its own."""
        if len(batch) > self.max_batch:
            return [
                result
                for start in range(0, len(batch), self.max_batch)
                for result in self.infer_batch(batch[start : start + self.max_batch])
            ]
        start = time.perf_counter()
        tensor = batch[0].tensor if len(batch) == 1 else np.concatenate([prepared.tensor for prepared in batch])
        output = self.runtime.run(DETECTOR, {self.detector.name: tensor})[0]
        settings = self.settings
        found = []
        for index, prepared in enumerate(batch):
            detections = decode_detections(
                output[index : index + 1],
                settings.presence_threshold,
                settings.confidence_threshold,
                settings.iou_threshold,
                settings.max_detections,
            )
            found.append((detections, boxes_to_source(detections.boxes, prepared.letterbox)))
        detected = time.perf_counter()
        identified: list[tuple[Sequence[str | None], Sequence[float | None]]] = [
            ([None] * len(boxes), [None] * len(boxes)) for _, boxes in found
        ]
        if self.identifier is not None and any(len(boxes) for _, boxes in found):
            identified = self._identify(batch, [boxes for _, boxes in found])
        finished = time.perf_counter()
        results = []
        for prepared, (detections, boxes), (cat_ids, cat_confidences) in zip(batch, found, identified, strict=True):
            prepared.timings["detect"] = (detected - start) * 1000
            prepared.timings["identify"] = (finished - detected) * 1000
            results.append(
                {
                    "detections": [
                        {
                            "box": box,
                            "behaviour": behaviour,
                            "confidence": score,
                            "cat_id": cat_id,
                            "cat_confidence": cat_confidence,
                        }
                        for box, behaviour, score, cat_id, cat_confidence in zip(
                            _rounded(boxes, 1),
                            detections.behaviours,
                            _rounded(detections.scores, 4),
                            cat_ids,
                            cat_confidences,
                            strict=True,
                        )
                    ],
                }
            )
        return results

    def _identify(
        self, batch: Sequence[PreparedImage], boxes_per_frame: Sequence[np.ndarray]
    ) -> list[tuple[Sequence[str | None], Sequence[float | None]]]:
        assert self.identifier is not None
        crops = []
        for prepared, boxes in zip(batch, boxes_per_frame, strict=True):
            pixels = np.asarray(prepared.pixels)
            # Crops come from the decoded image, which DCT scaling may have made smaller.
            scale = np.array(
                [pixels.shape[1] / prepared.letterbox.source_width, pixels.shape[0] / prepared.letterbox.source_height]
                * 2,
                dtype=np.float32,
            )
            crops.append(crop_batch(pixels, boxes * scale, self.identifier.size))
        logits = self.runtime.run(IDENTIFIER, {self.identifier.name: imagenet_batch(np.concatenate(crops))})[0]
        names, confidences = identities(logits, self.cat_names, self.settings.identity_threshold)
        results: list[tuple[Sequence[str | None], Sequence[float | None]]] = []
        offset = 0
        for boxes in boxes_per_frame:
            count = len(boxes)
            results.append((names[offset : offset + count], _rounded(confidences[offset : offset + count], 4)))
            offset += count
        return results


def _rounded(values: np.ndarray, decimals: int) -> list[Any]:
    # Round in float64: float32 values rounded in float32 print as 0.8999999761581421.
    return np.round(values.astype(np.float64), decimals).tolist()


def _load(
    runtime: ModelRuntime,
    name: str,
    path: Path,
    variable: str,
    cpu_path: Path | None,
    cpu_variable: str,
    prepare: Callable[[bytes], bytes | None] | None = None,
) -> Session:
    """Loads `path` (and `cpu_path` for CPU), each rewritten by `prepare` where it applies.

    Whatever runs on CPU is also made Split- and Concat-free (modelprep.cpu_rewrites): the same
    values, computed without leaving onnxruntime's blocked CPU layout. A GPU runs the model as
    given.
    """
    model = _prepared(read_model(path, variable), prepare)
    if cpu_path is None:
        cpu_rewrite = cpu_rewrites(model)
        return _session(lambda: runtime.load(name, model, cpu_rewrite), variable, path)
    cpu_model = _prepared(_prepared(read_model(cpu_path, cpu_variable), prepare), cpu_rewrites)
    if runtime.status.device == "cpu":
        # The CPU model is what runs; the model it replaces must still be usable.
        reference = _session(lambda: runtime.cpu_session(model), variable, path)
        session = cpu_session = _session(lambda: runtime.load(name, model, cpu_model), cpu_variable, cpu_path)
    else:
        session = reference = _session(lambda: runtime.load(name, model, cpu_model), variable, path)
        # Checked now: a fallback must not be the first to find a broken CPU model.
        cpu_session = (
            session
            if runtime.status.device == "cpu"
            else _session(lambda: runtime.cpu_session(cpu_model), cpu_variable, cpu_path)
        )
    if _signature(cpu_session) != _signature(reference):
        raise ModelLoadError(
            f"{cpu_variable}: {cpu_path} must have the inputs and outputs "
            f"of {path}: {_signature(cpu_session)} vs {_signature(reference)}"
        )
    return session


def _prepared(model: bytes, prepare: Callable[[bytes], bytes | None] | None) -> bytes:
    rewritten = prepare(model) if prepare is not None else None
    return model if rewritten is None else rewritten


def _session(create: Callable[[], Session], variable: str, path: Path) -> Session:
    try:
        return create()
    except Exception as error:  # noqa: BLE001 - onnxruntime's pybind errors share no base below Exception
        raise ModelLoadError(f"{variable}: {path} is not a usable ONNX model: {first_line(error)}") from None


def _signature(session: Session) -> list[tuple[str, list[Any]]]:
    return [(value.name, list(value.shape)) for value in [*session.get_inputs(), *session.get_outputs()]]
