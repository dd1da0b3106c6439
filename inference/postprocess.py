"""Detector and identifier output decoding: vectorised numpy, no per-box Python loops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference.labels import BEHAVIOURS, PRESENT, UNKNOWN_CAT

# Candidates kept for NMS, best first; bounds the IoU matrix at 1024^2 floats (4 MiB).
PRE_NMS_LIMIT = 1024


@dataclass(frozen=True)
class Detections:
    """Boxes in detector-input pixels (x1, y1, x2, y2), best score first."""

    boxes: np.ndarray  # [N, 4] float32
    scores: np.ndarray  # [N] best behaviour score
    behaviours: list[str]


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, 4] x [M, 4] x1,y1,x2,y2 boxes -> [N, M] intersection over union."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, best first, computed as Cluster-NMS.

    Cluster-NMS (Zheng et al., 2021) repeats one matrix step — drop every box that overlaps a
    better box still kept — until nothing changes. Its fixed point is exactly greedy NMS, and it
    converges in a few rounds instead of one Python iteration per box.
    """
    order = np.argsort(-scores, kind="stable")
    if order.size == 0:
        return order
    ranked = boxes[order]
    # overlaps[i, j]: IoU of box j with a better-ranked box i (upper triangle only).
    overlaps = np.triu(pairwise_iou(ranked, ranked), k=1)
    keep = np.ones(order.size, dtype=bool)
    # Round k settles box k for good, so order.size rounds always suffice.
    for _ in range(order.size):
        updated = overlaps[keep].max(axis=0) <= iou_threshold
        if np.array_equal(updated, keep):
            break
        keep = updated
    return order[keep]


def decode_detections(
    output: np.ndarray,
    presence_threshold: float,
    confidence_threshold: float,
    iou_threshold: float,
    max_detections: int,
) -> Detections:
    """YOLOv8 output [1, 4 + classes, anchors] (cx, cy, w, h, class scores) -> cat detections.

    A cat is present where its best behaviour score reaches `presence_threshold`. Its behaviour is
    that class when the score also reaches `confidence_threshold`, else just `present`. NMS is
    class-agnostic: one cat has one box, whatever it is doing, so boxes with different behaviours
    still suppress each other.
    """
    predictions = output[0]
    class_scores = predictions[4:]
    best_scores = class_scores.max(axis=0)
    candidates = np.flatnonzero(best_scores >= presence_threshold)
    candidates = candidates[np.argsort(-best_scores[candidates], kind="stable")][:PRE_NMS_LIMIT]
    cx, cy, w, h = predictions[:4, candidates]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    kept = nms(boxes, best_scores[candidates], iou_threshold)[:max_detections]
    scores = best_scores[candidates][kept]
    classes = class_scores[:, candidates[kept]].argmax(axis=0)
    labels = np.array([*BEHAVIOURS, PRESENT])
    behaviours = labels[np.where(scores >= confidence_threshold, classes, len(BEHAVIOURS))]
    return Detections(boxes[kept], scores.astype(np.float32), behaviours.tolist())


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def identities(logits: np.ndarray, cat_names: Sequence[str], threshold: float) -> tuple[list[str], np.ndarray]:
    """[N, cats] logits -> each crop's cat name (`unknown` below threshold) and its probability."""
    probabilities = softmax(logits.astype(np.float32))
    best = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    names = np.array([*cat_names, UNKNOWN_CAT])
    return names[np.where(confidence >= threshold, best, len(cat_names))].tolist(), confidence
