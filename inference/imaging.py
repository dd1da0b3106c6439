"""Image decoding and the geometry between camera frames, the detector input and identity crops.

Everything after decoding is vectorised numpy: no Python loops over pixels or boxes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from inference.errors import ClientError
from inference.image_limits import ABANDONABLE_DECODE_BLOCK, AbandonableSource

try:  # libjpeg-turbo straight from the bytes, with DCT scaling in eighths
    import simplejpeg
except ImportError:  # pragma: no cover - the inference extra installs it
    simplejpeg = None

# Formats cameras and Frigate produce; anything else is refused before a decoder runs.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
LETTERBOX_FILL = 114
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class Letterbox:
    """How an image of `source` size sits inside the square detector input."""

    source_width: int
    source_height: int
    resized_width: int
    resized_height: int
    pad_x: int
    pad_y: int

    @property
    def scale_x(self) -> float:
        return self.resized_width / self.source_width

    @property
    def scale_y(self) -> float:
        return self.resized_height / self.source_height


def letterbox_geometry(width: int, height: int, size: int) -> Letterbox:
    """Keeps the aspect ratio, fits the longer side to `size` and centres the padding."""
    scale = min(size / width, size / height)
    resized_width = min(size, max(1, round(width * scale)))
    resized_height = min(size, max(1, round(height * scale)))
    return Letterbox(
        width, height, resized_width, resized_height, (size - resized_width) // 2, (size - resized_height) // 2
    )


def _open_checked(data: bytes, max_pixels: int, max_seconds: float | None = None) -> ImageFile.ImageFile:
    """Opens the image header only, refusing empty, unknown or oversized input. With
    `max_seconds` the later decode reads through an AbandonableSource (see _load_rgb)."""
    if not data:
        raise ClientError(400, "empty_body", "the request body is empty; send the image bytes")
    try:
        source = io.BytesIO(data) if max_seconds is None else AbandonableSource(data, max_seconds)
        image = Image.open(source, formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as error:
        raise ClientError(413, "image_too_large", str(error)) from None
    except UnidentifiedImageError:
        # Pillow's message would show the in-memory source object's repr to the client.
        raise ClientError(
            422, "invalid_image", f"not a {', '.join(ACCEPTED_FORMATS)} image (no decoder recognises the bytes)"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ClientError(422, "invalid_image", f"not a {', '.join(ACCEPTED_FORMATS)} image ({error})") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise ClientError(422, "invalid_image", f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ClientError(
            413, "image_too_large", f"{width}x{height} is {width * height} pixels; the limit is {max_pixels}"
        )
    return image


def _load_rgb(
    image: ImageFile.ImageFile,
    target_size: Callable[[int, int], tuple[int, int]] | None,
    max_seconds: float | None = None,
) -> Image.Image:
    if target_size is not None:
        image.draft("RGB", target_size(*image.size))
    if max_seconds is not None:
        image.decodermaxblock = ABANDONABLE_DECODE_BLOCK
    try:
        image.load()
        return image if image.mode == "RGB" else image.convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise ClientError(422, "invalid_image", f"image data is truncated or corrupt ({error})") from None


def decode_image(
    data: bytes,
    max_pixels: int,
    target_size: Callable[[int, int], tuple[int, int]] | None = None,
    max_seconds: float | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """Decodes to RGB, refusing oversized dimensions from the header before any pixel is decoded.

    Returns the image and its size as sent. `target_size(width, height)` lets the JPEG decoder
    scale down by 1/2, 1/4 or 1/8 in the DCT domain while keeping at least that size: much
    cheaper than decoding at full size and resizing afterwards. With `max_seconds` the decode is
    abandoned (ClientError 422) once it has used that much CPU time.
    """
    image = _open_checked(data, max_pixels, max_seconds)
    size = image.size
    return _load_rgb(image, target_size, max_seconds), size


def decode_pixels(
    data: bytes,
    max_pixels: int,
    target_size: Callable[[int, int], tuple[int, int]] | None = None,
    max_seconds: float | None = None,
) -> tuple[Image.Image | np.ndarray, tuple[int, int]]:
    """Like `decode_image`; the service's decoder. Baseline JPEGs come back as an [H, W, 3] uint8
    array, everything else as Pillow's RGB image (np.asarray gives the same array).

    Baseline (sequential) YCbCr and greyscale JPEGs, what cameras send, go through simplejpeg: DCT
    scaling in eighths (Pillow's draft only halves), no Image object, slightly less CPU. Their
    decoding time is bounded by the pixel and body limits. Progressive JPEGs, whose scan count an
    attacker controls, stay with Pillow and its safeguards. Anything simplejpeg refuses,
    including JPEGs with recoverable corruption, is decoded by Pillow, which stays the authority
    on what is a valid image.
    """
    image = _open_checked(data, max_pixels, max_seconds)
    size = image.size
    if (
        simplejpeg is not None
        and image.format == "JPEG"
        and image.mode in ("RGB", "L")
        and not image.info.get("progressive")
    ):
        min_width, min_height = target_size(*size) if target_size is not None else size
        try:
            return simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=min_width, min_height=min_height), size
        except ValueError:
            pass
    # Pillow's image as is: the letterbox resizes it without a full-size array copy.
    return _load_rgb(image, target_size, max_seconds), size


def letterbox_tensor(
    image: Image.Image | np.ndarray, box: Letterbox, size: int, dtype: type[np.generic] = np.float32
) -> np.ndarray:
    """[1, 3, size, size] RGB padded with grey 114 as YOLOv8 was trained: float32 in 0..1, or
    uint8 in 0..255 for a model that scales its input itself (inference/modelprep.py).

    Writes the pixels straight into the padded tensor (no intermediate canvas) and fills only the
    padding bands.
    """
    if isinstance(image, Image.Image):
        # Resize the decoded image itself: an array copy of a large PNG first would double the
        # decode's peak memory, which inference/image_limits.py estimates without it.
        if image.size != (box.resized_width, box.resized_height):
            image = image.resize((box.resized_width, box.resized_height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image)
    else:
        pixels = image
        if pixels.shape[:2] != (box.resized_height, box.resized_width):
            resized = Image.fromarray(pixels).resize((box.resized_width, box.resized_height), Image.Resampling.BILINEAR)
            pixels = np.asarray(resized)
    to_unit = np.float32(1 / 255)
    tensor = np.empty((1, 3, size, size), dtype=dtype)
    fill = LETTERBOX_FILL if dtype == np.uint8 else np.float32(LETTERBOX_FILL) * to_unit
    top, left = box.pad_y, box.pad_x
    bottom, right = top + box.resized_height, left + box.resized_width
    tensor[0, :, :top, :] = fill
    tensor[0, :, bottom:, :] = fill
    tensor[0, :, top:bottom, :left] = fill
    tensor[0, :, top:bottom, right:] = fill
    region = tensor[0, :, top:bottom, left:right]
    if dtype == np.uint8:
        region[...] = pixels.transpose(2, 0, 1)
    else:
        np.multiply(pixels.transpose(2, 0, 1), to_unit, out=region, casting="unsafe")
    return tensor


def boxes_to_source(boxes: np.ndarray, box: Letterbox) -> np.ndarray:
    """Maps [N, 4] x1,y1,x2,y2 boxes from detector input pixels to source pixels, clipped to the image."""
    offset = np.array([box.pad_x, box.pad_y, box.pad_x, box.pad_y], dtype=np.float32)
    scale = np.array([box.scale_x, box.scale_y, box.scale_x, box.scale_y], dtype=np.float32)
    limits = np.array([box.source_width, box.source_height, box.source_width, box.source_height], dtype=np.float32)
    return np.clip((boxes - offset) / scale, 0.0, limits)


def crop_batch(pixels: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear crop-and-resize of every box at once: [H, W, 3] uint8 + [N, 4] -> [N, size, size, 3] float32.

    Each output pixel samples the box at its centre (align_corners=False), like torchvision's
    roi_align with one sample per bin. Crops are squashed to a square, as classifiers expect.
    """
    height, width = pixels.shape[:2]
    steps = (np.arange(size, dtype=np.float32) + 0.5) / size
    xs = np.clip(boxes[:, 0:1] + steps * (boxes[:, 2:3] - boxes[:, 0:1]) - 0.5, 0, width - 1)
    ys = np.clip(boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2]) - 0.5, 0, height - 1)
    x0, y0 = np.floor(xs).astype(np.intp), np.floor(ys).astype(np.intp)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    wx = (xs - x0)[:, None, :, None]
    wy = (ys - y0)[:, :, None, None]
    rows0, rows1 = y0[:, :, None], y1[:, :, None]
    cols0, cols1 = x0[:, None, :], x1[:, None, :]
    top = pixels[rows0, cols0] * (1 - wx) + pixels[rows0, cols1] * wx
    bottom = pixels[rows1, cols0] * (1 - wx) + pixels[rows1, cols1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def imagenet_batch(crops: np.ndarray) -> np.ndarray:
    """[N, S, S, 3] 0..255 -> [N, 3, S, S] normalised with ImageNet mean and std."""
    normalised = (crops * np.float32(1 / 255) - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2), dtype=np.float32)
