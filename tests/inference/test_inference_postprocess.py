"""NMS, detection decoding and identity assignment on crafted values."""

from __future__ import annotations

import numpy as np
import pytest
from inference_support import SCRIPTED_ANCHORS

from inference.postprocess import decode_detections, identities, nms, pairwise_iou, softmax


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Textbook greedy NMS, one box at a time: the reference the vectorised version must match."""
    order = list(np.argsort(-scores, kind="stable"))
    kept: list[int] = []
    while order:
        best = order.pop(0)
        kept.append(int(best))
        order = [i for i in order if pairwise_iou(boxes[best : best + 1], boxes[i : i + 1])[0, 0] <= threshold]
    return kept


def test_pairwise_iou_hand_values() -> None:
    a = np.array([[0, 0, 10, 10]], dtype=np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(pairwise_iou(a, b), [[50 / 150, 1.0, 0.0, 0.0]])


def test_nms_on_crafted_boxes() -> None:
    boxes = np.array(
        [
            [0, 0, 10, 10],  # 0: best of cluster A
            [1, 0, 11, 10],  # 1: IoU 0.82 with 0 -> suppressed
            [20, 20, 30, 30],  # 2: alone
            [5, 0, 15, 10],  # 3: IoU 0.33 with 0, 0.43 with 1 -> kept at 0.45
            [21, 21, 31, 31],  # 4: IoU 0.68 with 2 -> suppressed
        ],
        dtype=np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95], dtype=np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [4, 0, 3]
    assert nms(boxes, scores, 0.9).tolist() == [4, 0, 1, 2, 3]
    assert nms(boxes[:0], scores[:0], 0.45).tolist() == []


def test_nms_keeps_a_box_whose_only_suppressor_was_itself_suppressed() -> None:
    """The chain case that one-shot "Fast NMS" gets wrong: A suppresses B, so B cannot suppress C."""
    boxes = np.array([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.4).tolist() == [0, 2]


@pytest.mark.parametrize("seed", range(20))
def test_nms_matches_greedy_reference_on_random_clusters(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 200, (60, 2))
    sizes = rng.uniform(10, 60, (60, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)
    scores = rng.random(60).astype(np.float32)
    assert nms(boxes, scores, 0.5).tolist() == greedy_nms(boxes, scores, 0.5)


def test_decode_detections_assigns_behaviours_and_suppresses_across_classes() -> None:
    output = SCRIPTED_ANCHORS.T[None]
    detections = decode_detections(
        output, presence_threshold=0.25, confidence_threshold=0.5, iou_threshold=0.45, max_detections=100
    )
    # The drinking box overlaps the eating one: agnostic NMS keeps only the better-scored eating box.
    assert detections.behaviours == ["eating", "present"]
    np.testing.assert_allclose(detections.scores, [0.9, 0.3])
    np.testing.assert_allclose(detections.boxes, [[150, 260, 250, 340], [470, 290, 530, 350]])


def test_decode_detections_thresholds_and_limits() -> None:
    output = SCRIPTED_ANCHORS.T[None]
    strict = decode_detections(
        output, presence_threshold=0.5, confidence_threshold=0.95, iou_threshold=0.45, max_detections=100
    )
    assert strict.behaviours == ["present"] and strict.boxes.shape == (1, 4)
    capped = decode_detections(
        output, presence_threshold=0.05, confidence_threshold=0.5, iou_threshold=0.99, max_detections=2
    )
    assert capped.behaviours == ["eating", "drinking"]
    empty = decode_detections(np.zeros((1, 11, 8400), np.float32), 0.25, 0.5, 0.45, 100)
    assert empty.boxes.shape == (0, 4) and empty.behaviours == []


def test_softmax_is_stable_and_normalised() -> None:
    probabilities = softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, np.log(3.0), 0.0]], dtype=np.float32))
    np.testing.assert_allclose(probabilities, [[0.5, 0.5, 0.0], [0.2, 0.6, 0.2]], atol=1e-6)


def test_identities_are_unknown_below_threshold() -> None:
    logits = np.array([[5.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 3.0]], dtype=np.float32)
    names, confidence = identities(logits, ("mochi", "luna", "tiger"), threshold=0.5)
    assert names == ["mochi", "unknown", "tiger"]
    np.testing.assert_allclose(confidence[1], np.exp(0.1) / (2 + np.exp(0.1)), rtol=1e-6)
