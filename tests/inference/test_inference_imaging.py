"""Decoding limits, letterbox geometry, box mapping and batched crops against hand-computed values."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from inference_support import encode, photo_like
from PIL import Image

from inference.errors import ClientError
from inference.imaging import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Letterbox,
    boxes_to_source,
    crop_batch,
    decode_image,
    imagenet_batch,
    letterbox_geometry,
    letterbox_tensor,
)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries almost no data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1280, 720), Letterbox(1280, 720, 640, 360, 0, 140)),
        ((480, 640), Letterbox(480, 640, 480, 640, 80, 0)),
        ((640, 640), Letterbox(640, 640, 640, 640, 0, 0)),
        ((100, 50), Letterbox(100, 50, 640, 320, 0, 160)),
        ((1000, 3), Letterbox(1000, 3, 640, 2, 0, 319)),
    ],
)
def test_letterbox_geometry_keeps_aspect_and_centres(size: tuple[int, int], expected: Letterbox) -> None:
    assert letterbox_geometry(*size, 640) == expected


def test_boxes_map_back_to_source_pixels_and_clip() -> None:
    box = letterbox_geometry(1280, 720, 640)  # scale 0.5, 140 px bars above and below
    detector_boxes = np.array([[100, 240, 300, 340], [-10, 130, 700, 520], [50, 150, 60, 160]], dtype=np.float32)
    expected = np.array([[200, 200, 600, 400], [0, 0, 1280, 720], [100, 20, 120, 40]], dtype=np.float32)
    np.testing.assert_allclose(boxes_to_source(detector_boxes, box), expected)


def test_letterbox_tensor_pads_with_grey_and_scales_to_unit_range() -> None:
    image = Image.new("RGB", (1280, 720), (255, 0, 51))
    box = letterbox_geometry(1280, 720, 640)
    tensor = letterbox_tensor(image, box, 640)
    assert tensor.shape == (1, 3, 640, 640) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0, :, :140, :], 114 / 255, rtol=1e-6)
    np.testing.assert_allclose(tensor[0, :, 500:, :], 114 / 255, rtol=1e-6)
    np.testing.assert_allclose(tensor[0, :, 140:500, :].reshape(3, -1).mean(axis=1), [1.0, 0.0, 0.2], atol=1e-6)


def test_jpeg_is_decoded_small_but_reports_its_real_size() -> None:
    data = encode(photo_like(1280, 720))
    image, size = decode_image(data, 40_000_000, target_size=lambda w, h: (640, 360))
    assert size == (1280, 720)
    assert image.size == (640, 360) and image.mode == "RGB"


def test_non_rgb_images_are_converted() -> None:
    image, size = decode_image(encode(Image.new("L", (30, 20), 7), "PNG"), 10_000)
    assert (image.mode, size, image.getpixel((0, 0))) == ("RGB", (30, 20), (7, 7, 7))


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (b"", 400, "empty_body"),
        (b"GIF89a not an image at all", 422, "invalid_image"),
        (b"\x00" * 1000, 422, "invalid_image"),
        (png_header_only(8000, 6000), 413, "image_too_large"),
        (png_header_only(200_000, 200_000), 413, "image_too_large"),
    ],
)
def test_bad_images_are_client_errors(data: bytes, status: int, error: str) -> None:
    with pytest.raises(ClientError) as raised:
        decode_image(data, 40_000_000)
    assert (raised.value.status, raised.value.error) == (status, error)


def test_truncated_jpeg_is_refused() -> None:
    data = encode(photo_like(640, 480))
    with pytest.raises(ClientError) as raised:
        decode_image(data[: len(data) // 2], 40_000_000)
    assert (raised.value.status, raised.value.error) == (422, "invalid_image")


def test_pixel_limit_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_decode(self: Image.Image) -> None:
        raise AssertionError("pixels decoded before the size check")

    monkeypatch.setattr(Image.Image, "load", must_not_decode)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", must_not_decode)
    with pytest.raises(ClientError, match="48000000 pixels"):
        decode_image(png_header_only(8000, 6000), 1_000_000)


def test_crops_sample_each_box_bilinearly() -> None:
    # Pixel value = x coordinate in every channel; rows are identical.
    pixels = np.tile(np.arange(100, dtype=np.uint8)[None, :, None], (50, 1, 3))
    boxes = np.array([[10, 0, 20, 10], [0, 0, 100, 50], [40.25, 5, 40.75, 6]], dtype=np.float32)
    crops = crop_batch(pixels, boxes, 10)
    assert crops.shape == (3, 10, 10, 3) and crops.dtype == np.float32
    np.testing.assert_allclose(crops[0, 0, :, 0], np.arange(10, 20))  # pixel centres 10.5 .. 19.5
    np.testing.assert_allclose(crops[1, 3, :, 1], np.arange(10) * 10 + 4.5)  # 10 px bins, centre 5 -> 4.5
    np.testing.assert_allclose(
        crops[2, :, :, 2], np.linspace(40.275, 40.725, 10)[None, :].repeat(10, 0) - 0.5, atol=1e-4
    )


def test_imagenet_normalisation_and_layout() -> None:
    crops = np.stack([np.full((4, 4, 3), 255.0, np.float32), np.zeros((4, 4, 3), np.float32)])
    batch = imagenet_batch(crops)
    assert batch.shape == (2, 3, 4, 4) and batch.flags.c_contiguous
    np.testing.assert_allclose(batch[0, :, 0, 0], (1 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-6)
    np.testing.assert_allclose(batch[1, :, 2, 3], -IMAGENET_MEAN / IMAGENET_STD, rtol=1e-6)


def test_decoding_accepts_only_camera_formats() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "BMP")
    with pytest.raises(ClientError) as raised:
        decode_image(buffer.getvalue(), 10_000)
    assert raised.value.status == 422


def test_uint8_letterbox_matches_the_float_one_scaled() -> None:
    pixels = np.asarray(photo_like(1280, 720))
    box = letterbox_geometry(1280, 720, 640)
    as_uint8 = letterbox_tensor(pixels, box, 640, np.uint8)
    assert as_uint8.dtype == np.uint8 and as_uint8.shape == (1, 3, 640, 640)
    assert (as_uint8[0, :, :140, :] == 114).all() and (as_uint8[0, :, 500:, :] == 114).all()
    np.testing.assert_allclose(as_uint8 * np.float32(1 / 255), letterbox_tensor(pixels, box, 640), rtol=1e-6)


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1920, 1080), (640, 480), (333, 777)])
def test_fast_jpeg_decode_scales_like_pillow_draft(width: int, height: int) -> None:
    from inference.imaging import decode_pixels

    data = encode(photo_like(width, height))
    box = letterbox_geometry(width, height, 640)
    target = lambda w, h: (box.resized_width, box.resized_height)  # noqa: E731
    pixels, size = decode_pixels(data, 40_000_000, target_size=target)
    reference, _ = decode_image(data, 40_000_000, target_size=target)
    assert isinstance(pixels, np.ndarray), "a baseline JPEG takes the fast decoder"
    assert size == (width, height) and pixels.dtype == np.uint8
    # libjpeg-turbo scales by any n/8 (Pillow's draft by 1/2, 1/4, 1/8): never below the target, never above Pillow.
    assert (
        box.resized_height <= pixels.shape[0] <= reference.size[1]
        and box.resized_width <= pixels.shape[1] <= reference.size[0]
    )
    if pixels.shape[:2] == (reference.size[1], reference.size[0]):
        # Both are libjpeg-turbo; upsampling details may differ by a level or two.
        assert np.abs(pixels.astype(int) - np.asarray(reference)).max() <= 3
    resized = letterbox_tensor(pixels, box, 640, np.uint8).astype(int)
    assert np.abs(resized - letterbox_tensor(reference, box, 640, np.uint8)).mean() < 2


def test_fast_decode_falls_back_to_pillow_for_what_it_refuses() -> None:
    from inference.imaging import decode_pixels

    cmyk = io.BytesIO()
    Image.new("CMYK", (64, 48), (0, 255, 0, 0)).save(cmyk, "JPEG")
    pixels, size = decode_pixels(cmyk.getvalue(), 10_000)
    assert size == (64, 48) and np.asarray(pixels).shape == (48, 64, 3)
    with pytest.raises(ClientError) as raised:
        decode_pixels(encode(photo_like(640, 480))[:3000], 40_000_000)
    assert (raised.value.status, raised.value.error) == (422, "invalid_image")


def test_only_baseline_jpegs_take_the_fast_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference import imaging

    calls: list[int] = []
    real = imaging.simplejpeg.decode_jpeg

    def recording(data: bytes, **options: Any) -> Any:
        calls.append(len(data))
        return real(data, **options)

    monkeypatch.setattr(imaging.simplejpeg, "decode_jpeg", recording)
    frame = photo_like(320, 240)
    progressive = io.BytesIO()
    frame.save(progressive, "JPEG", progressive=True)
    pixels, _ = imaging.decode_pixels(progressive.getvalue(), 1_000_000)
    assert np.asarray(pixels).shape == (240, 320, 3) and calls == []
    imaging.decode_pixels(encode(frame), 1_000_000)
    assert len(calls) == 1
