"""Decode limits read from the image header, and the decode deadline (inference/image_limits.py)."""

from __future__ import annotations

import io
import time

import pytest
from hostile_images import lossless_webp, png_with_chunks, progressive_scan_bomb, tall_png
from PIL import Image

from inference.errors import ClientError
from inference.image_limits import ImageLimits, check_image_limits, inspect_image
from inference.imaging import decode_image
from inference.settings import InferenceSettings

DEFAULTS = ImageLimits.from_settings(InferenceSettings())


def encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def refusal(data: bytes, limits: ImageLimits = DEFAULTS) -> ClientError:
    with pytest.raises(ClientError) as caught:
        check_image_limits(data, limits)
    return caught.value


ORDINARY = [
    ("JPEG", Image.new("RGB", (1920, 1080)), {}),
    ("JPEG", Image.new("RGB", (1281, 721)), {"progressive": True}),
    ("JPEG", Image.new("L", (640, 480)), {"progressive": True}),
    ("JPEG", Image.new("CMYK", (320, 200)), {}),
    ("PNG", Image.new("RGB", (1280, 720)), {}),
    ("PNG", Image.new("RGBA", (300, 200)), {}),
    ("PNG", Image.new("P", (300, 200)), {}),
    ("PNG", Image.new("I;16", (300, 200)), {}),
    ("PNG", Image.new("RGB", (64, 48)), {"interlace": 1}),
    ("WEBP", Image.new("RGB", (1280, 720)), {}),
    ("WEBP", Image.new("RGBA", (333, 222)), {}),
    ("WEBP", Image.new("RGB", (333, 222)), {"lossless": True}),
]


@pytest.mark.parametrize(
    ("image_format", "image", "options"),
    ORDINARY,
    ids=[f"{f}-{i.mode}-{i.size[0]}x{i.size[1]}-{o}" for f, i, o in ORDINARY],
)
def test_ordinary_images_pass_with_the_size_pillow_sees(
    image_format: str, image: Image.Image, options: dict[str, object]
) -> None:
    data = encoded(image, image_format, **options)
    header = check_image_limits(data, DEFAULTS)
    assert header is not None and header.format == image_format
    assert (header.width, header.height) == Image.open(io.BytesIO(data)).size
    assert header.chunks <= 30 and header.scans <= 10
    # At least the decoded image in Pillow's own pixel size.
    assert header.decoded_bytes >= image.width * image.height * len(Image.open(io.BytesIO(data)).getbands())


def test_progressive_jpeg_counts_every_scan_and_its_coefficients() -> None:
    ordinary = check_image_limits(encoded(Image.new("RGB", (800, 600)), "JPEG", progressive=True), DEFAULTS)
    baseline = check_image_limits(encoded(Image.new("RGB", (800, 600)), "JPEG"), DEFAULTS)
    assert ordinary is not None and baseline is not None
    assert ordinary.scans == 10 and baseline.scans == 1
    # libjpeg's coefficient buffer (64 x 2 bytes per 8x8 block of each component) comes on top.
    assert ordinary.decoded_bytes > baseline.decoded_bytes + 800 * 600 * 2


def test_scan_bomb_is_refused_from_its_markers_naming_the_limit() -> None:
    bomb = progressive_scan_bomb(4000, 4000, 1500)
    assert len(bomb) < 200_000
    error = refusal(bomb)
    assert (error.status, error.error) == (422, "image_too_complex")
    assert "1500 scans" in error.detail and "CAT_WATCHER__INFERENCE__MAX_JPEG_SCANS=32" in error.detail


def test_tall_png_is_refused_by_its_height_before_decoding() -> None:
    data = tall_png(1, 39_999_999)
    assert len(data) < 200_000
    error = refusal(data)
    assert (error.status, error.error) == (413, "image_too_large")
    assert "CAT_WATCHER__INFERENCE__MAX_IMAGE_HEIGHT=10000" in error.detail
    # Under the pixel limit and past the height limit, the row pointers alone are 320 MB.
    header = inspect_image(data)
    assert header is not None and header.decoded_bytes > 39_999_999 * 8


def test_tiny_lossless_webp_with_a_huge_canvas_is_refused_by_decoded_bytes() -> None:
    data = lossless_webp(6324, 6324)
    assert len(data) < 2000
    error = refusal(data)
    assert (error.status, error.error) == (413, "image_too_large")
    assert "CAT_WATCHER__INFERENCE__MAX_DECODED_IMAGE_BYTES" in error.detail


def test_each_dimension_and_bytes_per_pixel_have_their_own_limit() -> None:
    wide = encoded(Image.new("L", (12_000, 8)), "PNG")
    assert "MAX_IMAGE_WIDTH=10000" in refusal(wide).detail
    deep = encoded(Image.new("RGBA", (16, 16)), "PNG")
    import dataclasses

    strict = dataclasses.replace(DEFAULTS, max_bytes_per_pixel=3)
    assert (
        "4 bytes per pixel" in refusal(deep, strict).detail
        and "MAX_IMAGE_BYTES_PER_PIXEL=3" in refusal(deep, strict).detail
    )
    assert (
        "MAX_IMAGE_PIXELS=100"
        in refusal(encoded(Image.new("L", (11, 10)), "PNG"), dataclasses.replace(DEFAULTS, max_pixels=100)).detail
    )


def test_chunk_floods_are_refused() -> None:
    assert check_image_limits(png_with_chunks(100), DEFAULTS) is not None
    error = refusal(png_with_chunks(5000))
    assert error.status == 422 and "5003 chunks" in error.detail and "MAX_IMAGE_CHUNKS=4096" in error.detail
    jpeg = encoded(Image.new("RGB", (16, 16)), "JPEG")
    comments = b"\xff\xfe\x00\x02" * 5000  # empty COM segments, parsed one by one by Pillow
    error = refusal(jpeg[:2] + comments + jpeg[2:])
    assert "marker segments" in error.detail


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_truncated_headers_never_raise_anything_but_a_client_error(image_format: str) -> None:
    options = {"progressive": True} if image_format == "JPEG" else {}
    data = encoded(Image.new("RGB", (64, 48), (10, 200, 30)), image_format, **options)
    for end in range(len(data) + 1):
        try:
            check_image_limits(data[:end], DEFAULTS)
        except ClientError as error:
            assert error.status in (413, 422)


def test_unknown_formats_are_left_to_the_decoder() -> None:
    assert check_image_limits(b"GIF89a....", DEFAULTS) is None
    assert check_image_limits(b"", DEFAULTS) is None


def test_a_slow_decode_is_abandoned_at_its_deadline() -> None:
    # 300 scans under the scan cap would take many seconds: the deadline stops it.
    bomb = progressive_scan_bomb(4000, 4000, 300)
    began = time.monotonic()
    with pytest.raises(ClientError) as caught:
        decode_image(bomb, 40_000_000, lambda width, height: (640, 640), max_seconds=0.5)
    assert time.monotonic() - began < 4
    assert (caught.value.status, caught.value.error) == (422, "image_too_slow")
    assert "CAT_WATCHER__INFERENCE__MAX_DECODE_SECONDS=0.5" in caught.value.detail


def test_deadline_does_not_change_what_is_decoded() -> None:
    frame = Image.effect_noise((320, 240), 40).convert("RGB")
    for options in ({}, {"progressive": True}):
        data = encoded(frame, "JPEG", **options)
        plain, _ = decode_image(data, 40_000_000)
        bounded, _ = decode_image(data, 40_000_000, max_seconds=30)
        assert plain.tobytes() == bounded.tobytes()


def test_header_estimate_is_not_below_the_measured_decode_peak() -> None:
    """Short run of tests/bench/decode_memory.py: the biggest and the tightest estimates."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "decode_memory.py"
    cases = [
        "webp lossless 6324x6324 (34 bytes)",
        "png rgb 5000x5000",
        "png grey 3000x9999",
        "jpeg progressive 6000x4000",
    ]
    arguments = [sys.executable, str(script), "--json"] + [f"--case={case}" for case in cases]
    completed = subprocess.run(arguments, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(completed.stdout)
    assert set(results) == set(cases)
    slack = 8 * 1024 * 1024  # interpreter noise between two /proc reads
    for name, result in results.items():
        assert result["measured_bytes"] <= result["estimated_bytes"] + slack, (name, result)
    # The point of the limit: a 34-byte file would take over half a GiB.
    assert results["webp lossless 6324x6324 (34 bytes)"]["measured_bytes"] > 400 * 1024 * 1024
