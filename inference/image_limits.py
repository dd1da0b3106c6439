"""What an image will cost to decode, read from its header before any decoder runs.

Pixel count alone does not bound decoding. Pillow keeps one row pointer per line (a 1 x 40M PNG
costs more in pointers than in pixels), libjpeg keeps every DCT coefficient of a progressive or
multi-scan JPEG at full size and re-reads them on every scan (1,500 cheap refinement scans take
tens of seconds), libwebp allocates its canvas when the file is opened, and Pillow parses JPEG
markers and PNG chunks in Python one by one. This module walks the container structure (JPEG
markers, PNG chunks, WebP RIFF chunks) without decoding, estimates the decoded bytes and refuses
what exceeds a limit with a 4xx naming the setting. Formats it does not recognise are left to
the decoder, which refuses them.
"""

from __future__ import annotations

import dataclasses
import io
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from inference.errors import ClientError
from inference.settings import InferenceSettings, env_name

# Pillow's in-memory bytes per pixel (RGB is stored as RGBX) and one row pointer per line.
PILLOW_RGB_PIXEL_BYTES = 4
ROW_POINTER_BYTES = 8
# Letterboxing resizes in two passes; the intermediate image is the longer source side by the
# detector input side (up to 1024) in RGBX.
RESIZE_PASS_BYTES_PER_SOURCE_LINE = 1024 * PILLOW_RGB_PIXEL_BYTES

_JPEG_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC3, 0xC5, 0xC7, 0xC9, 0xCB, 0xCD, 0xCF}) | _JPEG_PROGRESSIVE_SOF
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# The end of a scan's entropy-coded data: 0xFF followed by anything but stuffing (00), a restart
# marker (D0-D7) or fill (FF).
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# PNG colour type -> channels.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_WEBP_ANIMATION_FLAG = 0x02
_WEBP_ALPHA_FLAG = 0x10
# Bytes handed to a decoder per call while a deadline applies: libjpeg decodes progressive scans
# as their data arrives, so the deadline is checked every few scans, not once per file.
ABANDONABLE_DECODE_BLOCK = 512


@dataclass(frozen=True)
class ImageLimits:
    max_width: int
    max_height: int
    max_pixels: int
    max_bytes_per_pixel: int
    max_decoded_bytes: int
    max_jpeg_scans: int
    max_chunks: int
    max_decode_seconds: float

    @classmethod
    def from_settings(cls, settings: InferenceSettings) -> ImageLimits:
        return cls(
            max_width=settings.max_image_width,
            max_height=settings.max_image_height,
            max_pixels=settings.max_image_pixels,
            max_bytes_per_pixel=settings.max_image_bytes_per_pixel,
            max_decoded_bytes=settings.max_decoded_image_bytes,
            max_jpeg_scans=settings.max_jpeg_scans,
            max_chunks=settings.max_image_chunks,
            max_decode_seconds=settings.max_decode_seconds,
        )


@dataclass(frozen=True)
class ImageHeader:
    """What the container says about an image, and what decoding it will allocate."""

    format: str
    width: int
    height: int
    # Bytes per pixel as stored in the file, after decompression (16-bit RGBA: 8).
    bytes_per_pixel: float
    decoded_bytes: int
    chunks: int
    scans: int = 0


def _pillow_image_bytes(width: int, height: int, pixel_bytes: int) -> int:
    return height * (width * pixel_bytes + ROW_POINTER_BYTES)


def _converted_bytes(width: int, height: int, pixel_bytes: int, already_rgb: bool) -> int:
    """The decoded image plus, unless it already is RGB, its RGB copy."""
    total = _pillow_image_bytes(width, height, pixel_bytes)
    if not already_rgb:
        total += _pillow_image_bytes(width, height, PILLOW_RGB_PIXEL_BYTES)
    return total


def _invalid(detail: str) -> ClientError:
    return ClientError(422, "invalid_image", detail)


def inspect_jpeg(data: bytes) -> ImageHeader:
    """Walks the markers up to EOI, skipping entropy-coded data, counting segments and scans."""
    position, segments, scans = 2, 0, 0
    frame: tuple[int, int, int, list[tuple[int, int]]] | None = None
    progressive = False
    end = len(data)
    while position + 1 < end:
        if data[position] != 0xFF:
            raise _invalid(f"JPEG marker expected at byte {position}")
        while position + 1 < end and data[position + 1] == 0xFF:  # fill bytes
            position += 1
        if position + 1 >= end:
            break
        marker = data[position + 1]
        position += 2
        if marker == 0xD9:  # EOI
            break
        if marker in _JPEG_STANDALONE:
            continue
        if position + 2 > end:
            break
        (length,) = struct.unpack_from(">H", data, position)
        if length < 2:
            raise _invalid(f"JPEG segment length {length} at byte {position}")
        segments += 1
        if marker in _JPEG_SOF and frame is None and position + 8 <= end:
            _, height, width, count = struct.unpack_from(">BHHB", data, position + 2)
            sampling = [
                (data[position + 9 + 3 * i] >> 4, data[position + 9 + 3 * i] & 0x0F)
                for i in range(count)
                if position + 10 + 3 * i <= end
            ]
            frame = (width, height, count, sampling)
            progressive = marker in _JPEG_PROGRESSIVE_SOF
        position += length
        if marker == 0xDA:  # SOS: entropy-coded data follows until the next real marker
            scans += 1
            found = _JPEG_NEXT_MARKER.search(data, position)
            if found is None:
                break
            position = found.start()
    if frame is None:
        raise _invalid("JPEG has no frame header (SOF) before its image data")
    width, height, components, sampling = frame
    if width < 1 or height < 1:
        raise _invalid(f"JPEG frame is {width}x{height}")
    decoded = _converted_bytes(width, height, 1 if components == 1 else PILLOW_RGB_PIXEL_BYTES, components == 3)
    if progressive or scans > 1:
        # libjpeg's whole-image coefficient buffer: 64 16-bit coefficients per 8x8 block of
        # every component, at full size whatever scale the output is decoded at.
        h_max = max((h for h, _ in sampling), default=1) or 1
        v_max = max((v for _, v in sampling), default=1) or 1
        for h, v in sampling:
            blocks_wide = -(-width * max(h, 1) // (8 * h_max))
            blocks_high = -(-height * max(v, 1) // (8 * v_max))
            decoded += blocks_wide * blocks_high * 64 * 2
    return ImageHeader("JPEG", width, height, components, decoded, segments, scans)


def inspect_png(data: bytes) -> ImageHeader:
    position, chunks = 8, 0
    header: tuple[int, int, int, int] | None = None
    end = len(data)
    while position + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, position)
        chunks += 1
        if kind == b"IHDR" and header is None and position + 8 + 13 <= end:
            width, height, depth, colour = struct.unpack_from(">IIBB", data, position + 8)
            header = (width, height, depth, colour)
        if kind == b"IEND":
            break
        position += 12 + length
    if header is None:
        raise _invalid("PNG has no IHDR header")
    width, height, depth, colour = header
    if width < 1 or height < 1 or colour not in _PNG_CHANNELS:
        raise _invalid(f"PNG header: {width}x{height}, colour type {colour}")
    bytes_per_pixel = _PNG_CHANNELS[colour] * depth / 8
    # Pillow holds 8-bit grey and palette images in 1 byte a pixel, 16-bit grey in 2, the rest in
    # 4; 16-bit grey goes through 32-bit "I" on its way to RGB.
    pillow_pixel = {0: 2 if depth == 16 else 1, 3: 1}.get(colour, PILLOW_RGB_PIXEL_BYTES)
    decoded = _converted_bytes(width, height, pillow_pixel, colour == 2)
    if colour == 0 and depth == 16:
        decoded += _pillow_image_bytes(width, height, 4)
    return ImageHeader("PNG", width, height, bytes_per_pixel, decoded, chunks)


def inspect_webp(data: bytes) -> ImageHeader:
    position, chunks = 12, 0
    size: tuple[int, int] | None = None
    animated = alpha = False
    end = len(data)
    while position + 8 <= end:
        kind, length = struct.unpack_from("<4sI", data, position)
        body = position + 8
        chunks += 1
        if kind == b"VP8X" and body + 10 <= end:
            flags = data[body]
            animated, alpha = bool(flags & _WEBP_ANIMATION_FLAG), bool(flags & _WEBP_ALPHA_FLAG)
            width = 1 + int.from_bytes(data[body + 4 : body + 7], "little")
            height = 1 + int.from_bytes(data[body + 7 : body + 10], "little")
            size = size or (width, height)
        elif kind == b"VP8L" and size is None and body + 5 <= end:
            (bits,) = struct.unpack_from("<I", data, body + 1)
            size = (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
            alpha = True
        elif kind == b"VP8 " and size is None and body + 10 <= end:
            width, height = struct.unpack_from("<HH", data, body + 6)
            size = (width & 0x3FFF, height & 0x3FFF)
        position = body + length + (length & 1)
    if size is None:
        raise _invalid("WebP has no VP8, VP8L or VP8X header")
    width, height = size
    if width < 1 or height < 1:
        raise _invalid(f"WebP frame is {width}x{height}")
    # Pillow opens every WebP with libwebp's animation decoder, still images too: its two RGBA
    # canvases plus the frame's decode buffer (measured: 16 bytes a pixel for a still RGB image,
    # lossy or lossless), then Pillow's copy and, with alpha, the RGB conversion.
    decoded = 3 * width * height * 4 + _converted_bytes(width, height, PILLOW_RGB_PIXEL_BYTES, not (alpha or animated))
    return ImageHeader("WEBP", width, height, 4 if alpha else 3, decoded, chunks)


def inspect_image(data: bytes) -> ImageHeader | None:
    """The header of a JPEG, PNG or WebP image; None for anything else (the decoder refuses it)."""
    if data.startswith(b"\xff\xd8"):
        header = inspect_jpeg(data)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        header = inspect_png(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        header = inspect_webp(data)
    else:
        return None
    resize_pass = max(header.width, header.height) * RESIZE_PASS_BYTES_PER_SOURCE_LINE
    return dataclasses.replace(header, decoded_bytes=header.decoded_bytes + resize_pass)


def _variable(field: str) -> str:
    return env_name(("inference", field))


def check_image_limits(data: bytes, limits: ImageLimits) -> ImageHeader | None:
    """Refuses an image whose header exceeds a limit: 413 for size, 422 for structure."""
    header = inspect_image(data)
    if header is None:
        return None
    name, width, height = header.format, header.width, header.height
    size_checks = (
        (width > limits.max_width, f"{name} width {width} exceeds {_variable('max_image_width')}={limits.max_width}"),
        (
            height > limits.max_height,
            f"{name} height {height} exceeds {_variable('max_image_height')}={limits.max_height}",
        ),
        (
            width * height > limits.max_pixels,
            f"{width}x{height} is {width * height} pixels; {_variable('max_image_pixels')}={limits.max_pixels}",
        ),
        (
            header.bytes_per_pixel > limits.max_bytes_per_pixel,
            f"{name} has {header.bytes_per_pixel:g} bytes per pixel; "
            f"{_variable('max_image_bytes_per_pixel')}={limits.max_bytes_per_pixel}",
        ),
        (
            header.decoded_bytes > limits.max_decoded_bytes,
            f"decoding this {width}x{height} {name} takes about {header.decoded_bytes} "
            f"bytes; {_variable('max_decoded_image_bytes')}={limits.max_decoded_bytes}",
        ),
    )
    for exceeded, detail in size_checks:
        if exceeded:
            raise ClientError(413, "image_too_large", detail)
    if header.scans > limits.max_jpeg_scans:
        raise ClientError(
            422,
            "image_too_complex",
            f"JPEG has {header.scans} scans; {_variable('max_jpeg_scans')}={limits.max_jpeg_scans}",
        )
    if header.chunks > limits.max_chunks:
        unit = {"JPEG": "marker segments", "PNG": "chunks", "WEBP": "RIFF chunks"}[name]
        raise ClientError(
            422,
            "image_too_complex",
            f"{name} has {header.chunks} {unit}; {_variable('max_image_chunks')}={limits.max_chunks}",
        )
    return header


class AbandonableSource(io.BytesIO):
    """Image bytes for Pillow that refuse to be read once decoding has used up its CPU time.

    Pillow reads the file block by block while decoding (set `image.decodermaxblock` to
    ABANDONABLE_DECODE_BLOCK), so a decode that overruns stops at the next block with a 422
    naming the limit, and the worker thread is free again. The budget is the decoding thread's
    CPU time, not wall-clock time: a legitimate image must not be refused because other
    requests or pods compete for the CPU. Create and read it in the decoding thread.
    """

    def __init__(self, data: bytes, seconds: float, clock: Callable[[], float] = time.thread_time) -> None:
        super().__init__(data)
        self.seconds = seconds
        self.clock = clock
        self.deadline = clock() + seconds

    def read(self, size: int | None = -1) -> bytes:
        if self.clock() > self.deadline:
            raise ClientError(
                422,
                "image_too_slow",
                f"decoding used more than {_variable('max_decode_seconds')}={self.seconds:g} s of CPU time",
            )
        return super().read(size)
