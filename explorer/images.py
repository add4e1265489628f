"""Safe image loading: bytes in, a fully loaded RGB image out.

The inspect page and the CLI classify images that students bring from anywhere: phone photos,
screenshots, files found on the web. Such bytes come from strangers, so they are treated as
hostile until proven otherwise:

- the format is taken from the file's own header (``Image.open(...).format``), never from its
  name, and only a few common photo formats are decoded (less decoder code exposed);
- sizes are checked from the header before any pixel is decoded (``Image.open`` is lazy):
  a "decompression bomb" is a tiny file whose header declares billions of pixels, and decoding
  it would fill the server's memory. Pillow's own bomb check stays on; ours is stricter;
- a truncated or damaged file is an error, not a half-grey picture
  (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays ``False``).

What survives is turned into what a network expects: 8-bit RGB, upright (phones store photos
sideways and record the rotation in the EXIF orientation tag), transparency flattened onto
white, 16-bit and float greyscale scaled by their range rather than clipped.
Every failure is one :class:`ImageError` whose message tells a student what to do.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import zlib
from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2.functional import pil_to_tensor

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
# Phone cameras write MPO: a JPEG followed by extra pictures (depth map, second lens). Its first
# picture is an ordinary JPEG, so refusing it would refuse many phone photos.
FORMAT_ALIASES = {"MPO": "JPEG"}
# Streamlit's upload cap (.streamlit/config.toml, maxUploadSize = 10) counts 1024 * 1024 bytes
# per megabyte; the CLI gets the same cap so both paths behave alike.
MAX_FILE_BYTES = 10 * 1024 * 1024
# 40 megapixels (e.g. 7300 x 5480) decode to 120 MB of RGB: a large phone photo still fits, and it
# is well below Pillow's own bomb limit (Image.MAX_IMAGE_PIXELS, about 89 megapixels).
MAX_PIXELS = 40_000_000
# Longer side / shorter side. A classifier resizes to a square; a 10000 x 1 strip would become
# 224 copies of one row, and any prediction on it would be meaningless.
MAX_ASPECT_RATIO = 20

# What Pillow's plugins raise on bytes that are damaged in the middle rather than unrecognisable.
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


class ImageError(ValueError):
    """An image file that is empty, too large, of a refused format, damaged or unusable."""


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _check_header(image: Image.Image, name: str) -> None:
    """Refuse by format and size using only what ``Image.open`` read from the header."""
    fmt = FORMAT_ALIASES.get(image.format, image.format)
    if fmt not in ALLOWED_FORMATS:
        raise ImageError(f"{name} is a {image.format or 'unknown'} file; only "
                         f"{', '.join(ALLOWED_FORMATS)} images are accepted. "
                         "Save or export it as JPEG or PNG and try again.")
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"{name} declares {width}x{height} pixels: it has no picture in it.")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
                         f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels. Resize it and try again.")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(f"{name} is {width}x{height} pixels: too narrow to classify (one side is more "
                         f"than {MAX_ASPECT_RATIO} times the other). Crop it closer to a square.")


def _scaled_to_l(image: Image.Image, low: float, high: float) -> Image.Image:
    """Map ``low..high`` linearly onto 0..255 (rounded, clipped) through 32-bit float."""
    scale = 255.0 / (high - low) if high > low else 0.0
    return image.convert("F").point(lambda v: v * scale - low * scale + 0.5).convert("L")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without losing what the picture shows.

    A plain ``convert("RGB")`` is wrong in three cases: it clips 16-bit greyscale at 255 (almost
    every pixel white), it drops alpha (transparent pixels become whatever colour they hide,
    usually black), and float images have no fixed range at all.
    """
    mode = image.mode
    if mode.startswith("I;16"):  # 16-bit greyscale (PNG): the range is 0..65535 by definition
        return _scaled_to_l(image, 0, 65535).convert("RGB")
    if mode in ("I", "F"):
        low, high = image.getextrema()
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ImageError("The image holds values that are not finite numbers; it cannot be shown.")
        if mode == "I" and 0 <= low and high <= 65535:
            low, high = 0, 65535  # 16-bit data held in a 32-bit mode: keep its true brightness
        # Otherwise (floats, or integers outside 16 bits) the only meaningful range is min..max.
        return _scaled_to_l(image, low, high).convert("RGB")
    if "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info:
        # RGBA, LA, PA, premultiplied modes, and P/L/RGB with a transparent colour: flatten onto
        # white, which is how a browser shows such an image on this app's page.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # "1", "L", "P", "YCbCr", "RGB", "CMYK" (Pillow undoes Adobe's inverted CMYK while reading).
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ImageError(f"Images in colour mode {mode} cannot be converted to RGB. "
                         "Save it as an ordinary RGB JPEG or PNG and try again.") from error


def read_image(data: bytes, name: str = "image") -> Image.Image:
    """Decode untrusted bytes into a fully loaded, upright, 8-bit RGB image.

    ``name`` only appears in error messages (an upload's file name; never used to guess the format).
    The checks, in order, each raising :class:`ImageError`:

    1. empty data, or more than ``MAX_FILE_BYTES``;
    2. not an image Pillow recognises;
    3. a format outside ``ALLOWED_FORMATS`` (read from the header; MPO counts as JPEG);
    4. more than ``MAX_PIXELS`` pixels, or more than Pillow's own bomb limit, judged from the
       header before decoding;
    5. a long side more than ``MAX_ASPECT_RATIO`` times the short side (e.g. 10000x1): such a
       strip is refused rather than squashed, with a message asking to crop it. Any other shape
       is accepted, down to 1x1;
    6. pixel data that is truncated or damaged.

    Animated GIF and WebP files give their first frame. The EXIF orientation tag is applied, so
    a phone photo stored sideways comes out upright (orientation 6: stored 40x20, returned 20x40).
    Modes are converted as described in ``_to_rgb``.
    """
    if not data:
        raise ImageError(f"{name} is empty (0 bytes). Choose the file again; "
                         "it may not have finished saving.")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name} is {_megabytes(len(data))}, larger than the {_megabytes(MAX_FILE_BYTES)} "
                         "limit. Resize or compress it and try again.")
    try:
        # catch_warnings restores the warning filters on exit: only this open turns Pillow's
        # "possible decompression bomb" warning into an exception.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"{name} declares far too many pixels (more than Pillow's safety limit of "
                         f"{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; the limit here is "
                         f"{MAX_PIXELS / 1e6:.0f} megapixels). It is refused before decoding: it may be a "
                         "'decompression bomb'. Use a smaller image.") from error
    except UnidentifiedImageError as error:
        raise ImageError(f"{name} is not an image, or a format we cannot read. "
                         f"Use a {', '.join(ALLOWED_FORMATS)} file.") from error
    except _DAMAGED as error:
        raise ImageError(f"{name} has a damaged header ({error}). Export the image again.") from error
    with opened:
        _check_header(opened, name)
        try:
            if getattr(opened, "is_animated", False):
                opened.seek(0)
            opened.load()
            upright = ImageOps.exif_transpose(opened)  # a new, loaded image: independent of `data`
        except _DAMAGED as error:
            raise ImageError(f"{name} is truncated or damaged ({error}). "
                             "Download or export it again.") from error
    return _to_rgb(upright)


def read_image_file(path: str | Path) -> Image.Image:
    """Read an image file from disk with all the checks of :func:`read_image` (used by the CLI)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:  # before reading: a huge file never enters memory
            raise ImageError(f"{path.name} is {_megabytes(path.stat().st_size)}, larger than the "
                             f"{_megabytes(MAX_FILE_BYTES)} limit. Resize or compress it and try again.")
        data = path.read_bytes()
    except OSError as error:  # missing, a directory, no permission
        raise ImageError(f"Cannot read {path}: {error.strerror or error}. Check the path.") from error
    return read_image(data, name=path.name)


SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def sample_images() -> dict[str, Path]:
    """The photos shipped with the app (one held-out CIFAR-10 validation image per class,
    never trained on), so the inspect page always has something to show."""
    return {path.stem: path for path in sorted(SAMPLES_DIR.glob("*.jpg"))}


def to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """The image as a ``(3, H, W)`` ``torch.uint8`` tensor, the layout torchvision transforms expect.

    Images from :func:`read_image` are already RGB; any other mode is converted the same way first.
    """
    if image.mode != "RGB":
        image = _to_rgb(image)
    return pil_to_tensor(image)
