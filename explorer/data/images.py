"""The one gate for images: untrusted bytes in, a fully loaded RGB image out.

Every image that enters the process passes here: Inspect's uploads, Transfer's photo, the CLI's
files, the members of an uploaded zip (:mod:`explorer.data.archives`) and every file of a folder data
set (:mod:`explorer.data.decoder`). Such bytes come from strangers, so they are hostile until
proven otherwise:

- the format is detected from the content, and only the plugins of a few photo formats are ever
  tried (``Image.open(..., formats=...)``): an EPS named ``.jpg`` never reaches Ghostscript;
- sizes are checked from the header before any pixel is decoded (``Image.open`` is lazy): a
  "decompression bomb" declares a huge picture in a tiny file. The pixel cap and a cap on the
  decoded bytes both apply, counted as the image is held once converted to RGB (four bytes a
  pixel: a 4.9 KB one-bit PNG of 7000×5700 counts as the 160 MB it becomes);
- one frame is read (a GIF of 10,000 frames costs one); a truncated file is an error.

The checks are :func:`open_image` (header) and :func:`decode_frame` (pixels). What survives is
8-bit RGB, upright (EXIF orientation), transparency flattened onto white, 16-bit and float
greyscale scaled by their range. ``longest`` shrinks a photo right after decoding (a large JPEG
is even decoded at 1/2 to 1/8 scale), so a session holds a 1024-pixel copy, not the original
(:mod:`explorer.server.photos` keeps a session's uploads within a budget). Every failure is one
:class:`ImageError` whose message tells a student what to do.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

from explorer import settings
from explorer.settings import SAMPLES_DIR

if TYPE_CHECKING:
    import torch

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
# Phone cameras write MPO: an ordinary JPEG followed by extra pictures (depth map, second lens).
FORMAT_ALIASES = {"MPO": "JPEG"}
# Longer side / shorter side. A classifier resizes to a square; a 10000 x 1 strip would become
# 224 copies of one row, and any prediction on it would be meaningless.
MAX_ASPECT_RATIO = 20
# Pillow keeps "1", "L" and "P" in one byte a pixel, "I;16" in two, every other mode (RGB
# included) in four: what an image costs once converted to RGB is four bytes a pixel.
RGB_BYTES_PER_PIXEL = 4
# Only a JPEG over a megapixel may be decoded at a reduced scale (decode_frame): CIFAR-sized
# files decode exactly as always, so the pixels the shipped runs trained on do not change.
DRAFT_FROM_PIXELS = 1_000_000

# What Pillow's plugins raise on bytes that are damaged in the middle rather than unrecognisable.
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
# For the message only: the first bytes of formats that are refused, so a student hears "this is
# a TIFF file" rather than "not an image". Nothing here is decoded.
_REFUSED_SIGNATURES = (
    (b"%!PS", "EPS (PostScript)"), (b"\xc5\xd0\xd3\xc6", "EPS (PostScript)"), (b"%PDF", "PDF"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"8BPS", "PSD (Photoshop)"), (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"gimp xcf", "XCF (GIMP)"),
    (b"icns", "ICNS"), (b"\x76\x2f\x31\x01", "OpenEXR"), (b"#?RADIANCE", "HDR"), (b"qoif", "QOI"),
    (b"DDS ", "DDS"), (b"FORM", "IFF"), (b"SIMPLE  =", "FITS"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")


class ImageError(ValueError):
    """An image file that is empty, too large, of a refused format, damaged or unusable."""


class OverBudget(ImageError):
    """An image that would decode to more bytes than are left (a session's budget)."""


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


@dataclass(frozen=True)
class ImageLimits:
    """The gate's caps in bytes and pixels, read once from :mod:`explorer.settings` (so the
    decoder reads the environment once per folder, not once per file)."""

    file_bytes: int
    pixels: int
    decoded_bytes: int  # as RGB (four bytes a pixel); a session's budget left, or the whole budget

    @classmethod
    def current(cls, decoded_bytes: int | None = None) -> ImageLimits:
        pixels = settings.IMAGE_PIXELS.value() * 1_000_000
        if Image.MAX_IMAGE_PIXELS:  # Pillow's own bomb limit stays in force; ours is normally far lower
            pixels = min(pixels, int(Image.MAX_IMAGE_PIXELS))
        budget = settings.SESSION_DECODED.bytes()
        return cls(settings.IMAGE_FILE.bytes(), pixels,
                   budget if decoded_bytes is None else min(decoded_bytes, budget))


def refused_format_name(prefix: bytes) -> str | None:
    """The name of a well-known refused format from a file's first bytes, else None."""
    for signature, name in _REFUSED_SIGNATURES:
        if prefix.startswith(signature):
            return name
    if prefix[4:8] == b"ftyp" and prefix[8:12] in _HEIF_BRANDS:
        return "HEIC/AVIF"
    if prefix.lstrip().startswith((b"<svg", b"<?xml")):
        return "SVG"
    return None


def _refused_format(name: str, kind: str) -> ImageError:
    return ImageError(f"{name} is in the {kind} format; only {', '.join(ALLOWED_FORMATS)} images are accepted. "
                      "Save or export it as JPEG or PNG and try again.")


def decoded_bytes(size: tuple[int, int]) -> int:
    """What an image of ``size`` costs in memory once decoded and converted to RGB."""
    return size[0] * size[1] * RGB_BYTES_PER_PIXEL


def check_header(image: Image.Image, name: str, caps: ImageLimits, *, aspect: bool = True) -> None:
    """Refuse by format and size using only what ``Image.open`` read from the header
    (``aspect``: also refuse a strip more than ``MAX_ASPECT_RATIO`` times longer than wide)."""
    fmt = FORMAT_ALIASES.get(image.format, image.format)
    if fmt not in ALLOWED_FORMATS:  # cannot happen with open_image's plugin list; kept for other callers
        raise _refused_format(name, image.format or "unknown")
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"{name} declares {width}x{height} pixels: it has no picture in it.")
    if width * height > caps.pixels:
        raise ImageError(f"{name} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
                         f"the limit is {caps.pixels / 1e6:.0f} megapixels. Resize it and try again.")
    if decoded_bytes(image.size) > caps.decoded_bytes:
        raise OverBudget(f"{name} is {width}x{height} pixels, {_megabytes(decoded_bytes(image.size))} once "
                         f"decoded, more than the {_megabytes(caps.decoded_bytes)} left for decoded photos "
                         f"({settings.SESSION_DECODED.env}). Remove some uploads or use a smaller image.")
    if aspect and max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(f"{name} is {width}x{height} pixels: too narrow to classify (one side is more "
                         f"than {MAX_ASPECT_RATIO} times the other). Crop it closer to a square.")


def open_image(source: bytes | str | os.PathLike | IO[bytes], name: str, caps: ImageLimits | None = None,
               *, aspect: bool = True) -> Image.Image:
    """The header half of the gate: ``source`` opened lazily (no pixel decoded yet) with only
    the allowed formats' plugins, its format and size checked. Use it in a ``with`` block.

    ``aspect=False`` skips the narrow-strip rule (a data set's images are squashed to a square
    by design, so a panorama in a folder is not an error there).

    Thread-safe: unlike ``warnings.catch_warnings``, nothing here touches global state, so the
    decoder's threads and concurrent sessions can all pass at once. Pillow may still *warn*
    for 89 to 178 megapixels; our own cap refuses such a header right after.
    """
    caps = caps or ImageLimits.current()
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    try:
        opened = Image.open(source, formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        pillows = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise ImageError(f"{name} is too large to decode safely: it declares far too many pixels, more than "
                         f"Pillow's safety limit of {pillows:.0f} megapixels (the limit here is "
                         f"{caps.pixels / 1e6:.0f} megapixels). It is refused before decoding: it may be a "
                         "'decompression bomb'. Use a smaller image.") from error
    except UnidentifiedImageError as error:
        kind = refused_format_name(_prefix(source))
        if kind is not None:
            raise _refused_format(name, kind) from error
        raise ImageError(f"{name} is not an image, or a format we cannot read. "
                         f"Use a {', '.join(ALLOWED_FORMATS)} file.") from error
    except _DAMAGED as error:
        raise ImageError(f"{name} has a damaged header ({error}). Export the image again.") from error
    try:
        check_header(opened, name, caps, aspect=aspect)
    except BaseException:
        opened.close()
        raise
    return opened


def _prefix(source) -> bytes:
    """The first bytes of ``source``, for naming a refused format (a path, a stream or bytes)."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as handle:
                return handle.read(32)
        source.seek(0)
        return source.read(32)
    except (OSError, ValueError, AttributeError):
        return b""


def _shrunk(image: Image.Image, longest: int) -> Image.Image:
    """``image`` with its longer side at most ``longest`` (a new image when it was larger,
    ``image`` itself when it was not).

    Modes Pillow cannot average (1-bit, palette, 16-bit) are widened first, and a transparent
    colour key becomes real alpha, so shrinking blends colours instead of picking pixels."""
    if max(image.size) <= longest:
        return image
    if image.mode in ("P", "PA") or "transparency" in image.info:
        alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if alpha else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")  # _to_rgb keeps 0..65535 as the range of "I" data inside it
    scale = longest / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: a fast box reduction first, then bicubic (what Image.thumbnail does, but
    # into a new image, with no copy of the full-size one).
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)


def decode_frame(opened: Image.Image, name: str, *, longest: int | None = None,
                 at_least: int | None = None) -> Image.Image:
    """The pixel half of the gate: the first frame of an image from :func:`open_image`,
    decoded, upright, shrunk to ``longest`` if given and larger, as a new 8-bit RGB image.

    Only the current frame (the first) is loaded: a GIF's or WebP's other frames are never
    decoded. A JPEG over ``DRAFT_FROM_PIXELS`` is decoded by libjpeg at 1/2, 1/4 or 1/8 of its
    size (``draft``), which saves both time and memory, when the caller needs no more than
    ``longest`` pixels a side, or only ``at_least`` on each side (a data set resized to a square
    afterwards).
    """
    target = longest or at_least
    try:
        width, height = opened.size
        if (target and FORMAT_ALIASES.get(opened.format, opened.format) == "JPEG"
                and width * height > DRAFT_FROM_PIXELS and min(width, height) >= 2 * target):
            opened.draft(None, (target, target))  # the smallest scale that keeps both sides >= target
        opened.load()
        # In place: for the usual photo with no rotation, no copy of the full picture is made.
        ImageOps.exif_transpose(opened, in_place=True)
        smaller = opened if longest is None else _shrunk(opened, longest)
        return _to_rgb(smaller)  # always a new image: independent of `opened`, which is closed next
    except _DAMAGED as error:
        raise ImageError(f"{name} is truncated or damaged ({error}). "
                         "Download or export it again.") from error


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


def _check_file_size(size: int, name: str, caps: ImageLimits) -> None:
    if size == 0:
        raise ImageError(f"{name} is empty (0 bytes). Choose the file again; "
                         "it may not have finished saving.")
    if size > caps.file_bytes:
        raise ImageError(f"{name} is {_megabytes(size)}, larger than the {_megabytes(caps.file_bytes)} "
                         f"limit ({settings.IMAGE_FILE.env}). Resize or compress it and try again.")


def read_image(data: bytes, name: str = "image", *, longest: int | None = None,
               caps: ImageLimits | None = None) -> Image.Image:
    """Decode untrusted bytes into a fully loaded, upright, 8-bit RGB image.

    ``name`` only appears in error messages (an upload's file name; never used to guess the format).
    The checks, in order, each raising :class:`ImageError`:

    1. empty data, or more than :data:`explorer.settings.IMAGE_FILE`;
    2. not an image of an allowed format, detected from the content: only the plugins of
       ``ALLOWED_FORMATS`` are tried (MPO counts as JPEG), and a well-known refused format
       (TIFF, EPS, PDF, HEIC, ...) is named in the message;
    3. more than :data:`explorer.settings.IMAGE_PIXELS` pixels (or Pillow's own bomb limit), or
       more decoded bytes as RGB than ``caps.decoded_bytes``, judged from the header;
    4. a long side more than ``MAX_ASPECT_RATIO`` times the short side (e.g. 10000x1): such a
       strip is refused rather than squashed, with a message asking to crop it. Any other shape
       is accepted, down to 1x1;
    5. pixel data that is truncated or damaged.

    Animated GIF and WebP files give their first frame, and only it is decoded. The EXIF
    orientation tag is applied, so a phone photo stored sideways comes out upright (orientation
    6: stored 40x20, returned 20x40). ``longest`` shrinks a larger image right after decoding
    (aspect kept). Modes are converted as described in ``_to_rgb``.
    """
    caps = caps or ImageLimits.current()
    _check_file_size(len(data), name, caps)
    with open_image(data, name, caps) as opened:
        return decode_frame(opened, name, longest=longest)


def read_image_file(path: str | Path, *, longest: int | None = None) -> Image.Image:
    """Read an image file from disk with all the checks of :func:`read_image` (used by the CLI)."""
    path = Path(path)
    caps = ImageLimits.current()
    try:
        _check_file_size(path.stat().st_size, path.name, caps)  # before reading: a huge file never enters memory
        data = path.read_bytes()
    except OSError as error:  # missing, a directory, no permission
        raise ImageError(f"Cannot read {path}: {error.strerror or error}. Check the path.") from error
    return read_image(data, name=path.name, longest=longest, caps=caps)




def sample_images() -> dict[str, Path]:
    """The photos shipped with the app, so the inspect page always has something to show: per
    class, the first image of the evaluation pack (held out) that ResNet-56 gets right."""
    return {path.stem: path for path in sorted(SAMPLES_DIR.glob("*.jpg"))}


def to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """The image as a ``(3, H, W)`` ``torch.uint8`` tensor, the layout torchvision transforms expect.

    Images from :func:`read_image` are already RGB; any other mode is converted the same way first.
    """
    from torchvision.transforms.v2.functional import pil_to_tensor  # torch only where a tensor is made

    if image.mode != "RGB":
        image = _to_rgb(image)
    return pil_to_tensor(image)
