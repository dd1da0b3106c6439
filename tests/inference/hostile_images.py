"""Small files that are expensive to decode, generated for the limit and attack tests."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from inference.image_limits import _JPEG_NEXT_MARKER


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tall_png(width: int, height: int) -> bytes:
    """A valid 8-bit grey PNG of width x height whose rows all compress to almost nothing."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + width)
    rows_per_block = max(1, (1 << 20) // len(row))
    parts, left = [], height
    while left:
        count = min(left, rows_per_block)
        parts.append(compressor.compress(row * count))
        left -= count
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def png_with_chunks(chunks: int) -> bytes:
    """A small valid PNG with `chunks` extra ancillary chunks before its image data."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    data = buffer.getvalue()
    filler = b"".join(png_chunk(b"zzZz", b"") for _ in range(chunks))
    return data[:33] + filler + data[33:]


def lossless_webp(width: int, height: int) -> bytes:
    """A real lossless WebP of one flat colour: a few dozen bytes whatever its size."""
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="WEBP", lossless=True, method=0)
    return buffer.getvalue()


def progressive_scan_bomb(width: int, height: int, scans: int) -> bytes:
    """A flat grey progressive JPEG whose last refinement scan is repeated up to `scans` scans.

    Every scan re-reads the whole coefficient buffer, yet a scan of a flat image is a few bytes:
    a small file that takes seconds per few dozen scans to decode.
    """
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, format="JPEG", progressive=True, quality=90)
    base = buffer.getvalue()
    position, scan_spans = 2, []
    while position < len(base) and base[position + 1] != 0xD9:
        marker = base[position + 1]
        (length,) = struct.unpack_from(">H", base, position + 2)
        start, position = position, position + 2 + length
        if marker == 0xDA:
            found = _JPEG_NEXT_MARKER.search(base, position)
            assert found is not None
            position = found.start()
            scan_spans.append((start, position))
    last_start, last_end = scan_spans[-1]
    repeats = scans - len(scan_spans)
    assert repeats >= 0
    return base[:last_end] + base[last_start:last_end] * repeats + base[last_end:]


def multipart_flood(boundary: str, parts: int) -> bytes:
    """A multipart body of `parts` tiny fields (no `image` part)."""
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\ny\r\n'.encode()
    return part * parts + f"--{boundary}--\r\n".encode()
