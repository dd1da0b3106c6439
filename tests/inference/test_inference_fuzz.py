"""Property tests: no image bytes or request shape crashes the service (2xx or 4xx, never 5xx)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inference_support import TestClient, encode, make_settings, photo_like, wait_until

from inference import contract
from inference.app import create_app
from inference.errors import ClientError
from inference.imaging import decode_image

# "ci" keeps the suite short; HYPOTHESIS_PROFILE=thorough for a longer local run.
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SEEDS = {
    "JPEG": encode(photo_like(96, 64)),
    "PNG": encode(photo_like(96, 64), "PNG"),
    "WEBP": encode(photo_like(96, 64), "WEBP"),
}


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid small image with bytes flipped, a cut, or a spliced-in chunk."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=64))
    return bytes(data)


image_bytes = st.one_of(st.binary(max_size=512), mutated_images())


@given(data=image_bytes)
def test_decoding_returns_an_rgb_image_or_a_client_error(data: bytes) -> None:
    try:
        image, (width, height) = decode_image(data, max_pixels=1_000_000, target_size=lambda w, h: (w, h))
    except ClientError as error:
        assert 400 <= error.status < 500
    else:
        assert image.mode == "RGB" and width * height <= 1_000_000


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    app = create_app(
        make_settings(model_dir, detector="scripted_detector.onnx", identifier=None, max_request_bytes=4096)
    )
    with TestClient(app) as client:
        assert wait_until(lambda: client.get(contract.READY_PATH).status_code == 200, timeout=30)
        yield client


content_types = st.one_of(
    st.sampled_from(
        [
            "image/jpeg",
            "image/png",
            "application/octet-stream",
            "multipart/form-data; boundary=b",
            "multipart/form-data",
            "text/plain",
            "",
        ]
    ),
    st.text(max_size=40),
)


@given(body=image_bytes, content_type=content_types)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_raw_requests_never_fail_the_server(client: TestClient, body: bytes, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type.isascii() and content_type.isprintable() else {}
    response = client.post(contract.DETECT_PATH, content=body, headers=headers)
    assert response.status_code == 200 or 400 <= response.status_code < 500
    assert set(response.json()) >= ({"detections"} if response.status_code == 200 else {"error", "detail"})


@given(image=image_bytes, field=st.sampled_from(["image", "img", "Image"]), filename=st.text(max_size=20))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_multipart_requests_never_fail_the_server(client: TestClient, image: bytes, field: str, filename: str) -> None:
    response = client.post(contract.DETECT_PATH, files={field: (filename or "f", image, "image/jpeg")})
    assert response.status_code == 200 or 400 <= response.status_code < 500
    if field != "image":
        assert response.json()["error"] in ("missing_image_field", "body_too_large")
