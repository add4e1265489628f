"""Safe image loading: every input is made here with Pillow, hostile ones included."""

import io
import random
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageFile, features

from explorer.data import images
from explorer.data.images import ImageError, read_image, read_image_file, to_uint8_tensor

ROOT = Path(__file__).resolve().parents[1]


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _noise(size=(64, 64)) -> Image.Image:
    # Random pixels do not compress: the pixel data, not the header, makes up most of the file.
    return Image.frombytes("RGB", size, random.Random(0).randbytes(size[0] * size[1] * 3))


def _png_declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR chunk claims ``width x height``: a tiny file with a huge header."""
    data = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    # 8-byte signature, then the IHDR chunk: length (4), b"IHDR" (4), width and height (4 + 4),
    # five more header bytes, and a CRC over type and data at bytes 29..33.
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _close(actual, expected, tolerance):
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


# --- files that are refused ---------------------------------------------------------------------

def test_empty_file_is_refused():
    with pytest.raises(ImageError, match="photo.jpg is empty"):
        read_image(b"", "photo.jpg")


def test_random_bytes_named_png_are_not_an_image():
    with pytest.raises(ImageError, match="photo.png is not an image, or a format we cannot read"):
        read_image(random.Random(0).randbytes(2048), "photo.png")


def test_truncated_jpeg_is_refused():
    data = _encode(_noise(), "JPEG", quality=90)
    assert Image.open(io.BytesIO(data[: len(data) // 2])).size == (64, 64)  # the header survives the cut
    with pytest.raises(ImageError, match="cut.jpg is truncated or damaged"):
        read_image(data[: len(data) // 2], "cut.jpg")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # 89 to 178 MP: Pillow warns
@pytest.mark.parametrize("width, height", [
    (8_000, 8_000),  # 64 megapixels: over our MAX_PIXELS, under Pillow's limit
    (10_000, 10_000),  # 100 megapixels: Pillow only warns; the warning must become an error
    (30_000, 30_000),  # 900 megapixels: Pillow's DecompressionBombError
])
def test_huge_header_is_refused_before_decoding(width, height, monkeypatch):
    data = _png_declaring(width, height)
    assert len(data) < 100
    assert Image.open(io.BytesIO(_png_declaring(100, 50))).size == (100, 50)  # the patch is read
    # If any pixel were decoded, the test would fail here instead of raising ImageError.
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    with pytest.raises(ImageError, match="megapixels"):
        read_image(data, "bomb.png")


def test_our_own_pixel_cap_names_the_size():
    with pytest.raises(ImageError, match=r"8000x8000 pixels \(64 megapixels\); the limit is 40 megapixels"):
        read_image(_png_declaring(8_000, 8_000), "big.png")


def test_pillows_bomb_limit_stays_in_force_even_if_our_cap_were_higher(monkeypatch):
    # A server configured for 1,000 megapixels still refuses what Pillow calls a bomb (89 MP),
    # from the header, without touching the process's warning filters (the decoder is threaded).
    monkeypatch.setenv("EXPLORER_IMAGE_MEGAPIXELS", "1000")
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    filters = list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ImageError, match=r"100 megapixels\); the limit is 89 megapixels"):
            read_image(_png_declaring(10_000, 10_000), "bomb.png")
    with pytest.raises(ImageError, match="too large to decode safely: it declares far too many pixels, "
                                         "more than Pillow's safety limit.*decompression bomb"):
        read_image(_png_declaring(30_000, 30_000), "bomb.png")
    assert list(warnings.filters) == filters


def test_tiff_is_refused_by_format_not_by_name():
    data = _encode(Image.new("RGB", (4, 4), "red"), "TIFF")
    with pytest.raises(ImageError, match="looks_like.png is in the TIFF format; only JPEG, PNG, WEBP, BMP, GIF images"):
        read_image(data, "looks_like.png")


def _padded_png(size: int) -> bytes:
    """A 16x16 PNG followed by zeros up to ``size`` bytes (Pillow ignores what follows IEND)."""
    data = _encode(_noise((16, 16)), "PNG")
    return data + b"\0" * (size - len(data))


def test_file_over_the_byte_cap_is_refused(monkeypatch):
    monkeypatch.setenv("EXPLORER_IMAGE_FILE_MB", "1")
    assert read_image(_padded_png(1024 * 1024)).size == (16, 16)  # exactly at the cap is fine
    with pytest.raises(ImageError, match=r"noise.png is 1.0 MB, larger than the 1.0 MB limit \(EXPLORER_IMAGE_FILE_MB"):
        read_image(_padded_png(1024 * 1024 + 1), "noise.png")


def test_big_file_on_disk_is_refused_before_it_is_read(monkeypatch, tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(_padded_png(1024 * 1024 + 1))
    monkeypatch.setenv("EXPLORER_IMAGE_FILE_MB", "1")
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the file was read"))
    with pytest.raises(ImageError, match="big.png is .* larger than the .* limit"):
        read_image_file(path)


def test_default_caps_match_the_upload_limit():
    caps = images.ImageLimits.current()
    assert caps.file_bytes == 10 * 1024 * 1024  # .streamlit/config.toml's maxUploadSize
    assert caps.pixels == 40_000_000 < Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("size, accepted", [
    ((10_000, 1), False), ((1, 10_000), False),
    ((21, 1), False), ((20, 1), True), ((1, 1), True),
])
def test_aspect_ratio_rule(size, accepted):
    data = _encode(Image.new("RGB", size, (1, 2, 3)), "PNG")
    if accepted:
        image = read_image(data)
        assert image.size == size and image.getpixel((0, 0)) == (1, 2, 3)
    else:
        with pytest.raises(ImageError, match=f"{size[0]}x{size[1]} pixels: too narrow to classify.*Crop it"):
            read_image(data, "strip.png")


def test_missing_path_and_directory_are_named(tmp_path):
    missing = tmp_path / "nowhere.jpg"
    with pytest.raises(ImageError, match=f"Cannot read {missing}"):
        read_image_file(missing)
    with pytest.raises(ImageError, match=f"Cannot read {tmp_path}"):
        read_image_file(tmp_path)


def test_read_image_file_reads_and_names_the_file(tmp_path):
    path = tmp_path / "cat.png"
    path.write_bytes(_encode(Image.new("RGB", (3, 2), (9, 8, 7)), "PNG"))
    image = read_image_file(path)
    assert image.size == (3, 2) and image.getpixel((2, 1)) == (9, 8, 7)
    (tmp_path / "notes.png").write_bytes(b"shopping list")
    with pytest.raises(ImageError, match="notes.png is not an image"):
        read_image_file(str(tmp_path / "notes.png"))


# --- modes and shapes that are converted --------------------------------------------------------

def test_cmyk_jpeg_comes_out_in_the_right_colours():
    data = _encode(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "JPEG", quality=95)  # pure cyan ink
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    image = read_image(data)
    assert image.mode == "RGB"
    assert _close(image.getpixel((8, 8)), (0, 255, 255), 3)


def test_16_bit_png_is_scaled_not_clipped():
    source = Image.new("I;16", (3, 1))
    for x, value in enumerate((65535, 32768, 0)):
        source.putpixel((x, 0), value)
    data = _encode(source, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    image = read_image(data)
    assert image.mode == "RGB"
    assert [image.getpixel((x, 0)) for x in range(3)] == [(255,) * 3, (128,) * 3, (0,) * 3]


def test_palette_png_transparency_becomes_white():
    source = Image.new("P", (2, 1))
    source.putpalette([255, 0, 0, 10, 20, 30])  # index 0 red but transparent, index 1 opaque
    source.putpixel((1, 0), 1)
    data = _encode(source, "PNG", transparency=0)
    opened = Image.open(io.BytesIO(data))
    assert opened.mode == "P" and "transparency" in opened.info
    image = read_image(data)
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((1, 0)) == (10, 20, 30)


def test_rgba_is_composited_over_white():
    source = Image.new("RGBA", (3, 1))
    source.putpixel((0, 0), (255, 0, 0, 128))  # half-transparent red
    source.putpixel((1, 0), (0, 0, 0, 0))  # fully transparent black: white, not black
    source.putpixel((2, 0), (0, 0, 255, 255))
    image = read_image(_encode(source, "PNG"))
    assert image.mode == "RGB"
    assert _close(image.getpixel((0, 0)), (255, 127, 127), 1)
    assert image.getpixel((1, 0)) == (255, 255, 255)
    assert image.getpixel((2, 0)) == (0, 0, 255)


def test_la_is_composited_over_white():
    source = Image.new("LA", (2, 1))
    source.putpixel((0, 0), (0, 128))
    source.putpixel((1, 0), (200, 255))
    data = _encode(source, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "LA"
    image = read_image(data)
    assert _close(image.getpixel((0, 0)), (127, 127, 127), 1)
    assert image.getpixel((1, 0)) == (200, 200, 200)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_its_first_frame(fmt):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **options)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    image = read_image(data)
    assert image.size == (8, 8) and image.getpixel((4, 4)) == (255, 0, 0)


def test_phone_mpo_is_read_as_its_first_jpeg():
    pictures = [Image.new("RGB", (8, 8), (0, 200, 0)), Image.new("RGB", (8, 8), (0, 0, 200))]
    data = _encode(pictures[0], "MPO", save_all=True, append_images=pictures[1:], quality=95)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert _close(read_image(data).getpixel((4, 4)), (0, 200, 0), 3)


def test_exif_orientation_6_is_rotated_upright():
    source = Image.new("RGB", (40, 20), (255, 0, 0))
    source.paste((0, 0, 255), (20, 0, 40, 20))  # stored: left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as phones write it
    image = read_image(_encode(source, "JPEG", quality=95, exif=exif))
    assert image.size == (20, 40)
    assert _close(image.getpixel((10, 5)), (255, 0, 0), 8)  # the stored left side is now on top
    assert _close(image.getpixel((10, 35)), (0, 0, 255), 8)


def test_one_bit_image_becomes_black_and_white():
    source = Image.new("1", (2, 1))
    source.putpixel((1, 0), 1)
    data = _encode(source, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "1"
    image = read_image(data)
    assert image.getpixel((0, 0)) == (0, 0, 0) and image.getpixel((1, 0)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF", "WEBP"])
def test_every_allowed_format_reads(fmt):
    image = read_image(_encode(Image.new("RGB", (6, 4), (0, 0, 0)), fmt))
    assert image.mode == "RGB" and image.size == (6, 4)


def test_to_uint8_tensor_layout_and_values():
    source = Image.new("RGB", (5, 3), (10, 20, 30))
    source.putpixel((4, 2), (200, 100, 50))
    tensor = to_uint8_tensor(read_image(_encode(source, "PNG")))
    assert tensor.shape == (3, 3, 5) and tensor.dtype == torch.uint8
    assert tensor[:, 0, 0].tolist() == [10, 20, 30]
    assert tensor[:, 2, 4].tolist() == [200, 100, 50]


def test_to_uint8_tensor_scales_float_and_wide_integer_modes_by_their_range():
    floats = Image.new("F", (3, 1))
    for x, value in enumerate((-1.0, 0.0, 1.0)):
        floats.putpixel((x, 0), value)
    assert to_uint8_tensor(floats)[:, 0, :].tolist() == [[0, 128, 255]] * 3
    wide = Image.new("I", (2, 1))
    wide.putpixel((0, 0), -100_000)
    wide.putpixel((1, 0), 100_000)
    assert to_uint8_tensor(wide)[0, 0, :].tolist() == [0, 255]


# --- no global side effects ---------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # 89 to 178 MP: Pillow warns
def test_pillow_global_state_is_unchanged():
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    for data in (_png_declaring(10_000, 10_000), _png_declaring(30_000, 30_000),
                 _encode(_noise(), "JPEG")[:500], b"junk"):
        with pytest.raises(ImageError):
            read_image(data)
    read_image(_encode(_noise(), "PNG"))
    assert Image.MAX_IMAGE_PIXELS is not None and ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters)) == before


def test_importing_images_does_not_import_streamlit():
    code = "import sys, explorer.data.images; print('streamlit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
