"""The one image gate and the upload budgets (issue 37): every bomb is made here, in a few KB.

Each case asserts the clear message, that memory stays bounded, and that the session goes on
working afterwards. Pillow allocates pixels with malloc, which tracemalloc does not see, so
the memory of decoding is measured as RSS in a subprocess; zipfile's is Python's own.
"""

import inspect
import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from apptest_helpers import open_page
from PIL import EpsImagePlugin, GifImagePlugin, Image, ImageFile

from explorer.data import DataError, images, load_data
from explorer.data.archives import ArchiveError, ZipLimits, _copy_at_most, unpack_class_zip
from explorer.data.images import ImageError, read_image, read_image_file
from explorer.server.photos import SessionPhotos, Upload
from explorer.server.sessions import SessionResources

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


# --- bombs, made in the test ----------------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def one_bit_png(width: int = 7000, height: int = 5700) -> bytes:
    """A black one-bit PNG: 4.9 KB for 7000×5700 (40 MP), 160 MB once decoded as RGB."""
    rows = (b"\0" * (1 + (width + 7) // 8)) * height  # filter byte 0, then the packed bits
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(rows, 9)) + _chunk(b"IEND", b""))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width × height`` and holds almost no data (a header bomb)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nnewpath 0 0 moveto 64 64 lineto stroke\nshowpage\n%%EOF\n"


def small_png(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def zip_of_copies(names: list[str], data: bytes) -> bytes:
    """A zip whose entries all hold ``data``, deflated once and written as many times
    (zipfile would deflate 300 MiB of zeros for 300 entries: seconds, not milliseconds)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed, crc = compressor.compress(data) + compressor.flush(), zlib.crc32(data)
    out, central = io.BytesIO(), []
    for name in names:
        encoded, offset = name.encode(), out.tell()
        out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(packed), len(data),
                              len(encoded), 0) + encoded + packed)
        central.append(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(packed), len(data),
                                   len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
    directory, start = b"".join(central), out.tell()
    out.write(directory + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(names), len(names), len(directory),
                                      start, 0))
    return out.getvalue()


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def no_ghostscript(monkeypatch):
    """Records any call into Pillow's EPS plugin (its Ghostscript call above all); must stay empty."""
    calls = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: calls.append("EpsImageFile._open"))
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append("Ghostscript"))
    return calls


# --- the gate: uploads and CLI files --------------------------------------------------------

def test_the_bombs_are_as_small_as_the_issue_says():
    assert len(one_bit_png()) < 5_000  # "a 4.9 KB 1-bit PNG of 7000×5700"
    assert len(zip_of_copies([f"c{i % 2}/{i}.jpg" for i in range(300)], b"\0" * MIB)) < 340_000  # "a 339 KB zip"


def test_eps_named_jpg_never_reaches_ghostscript(no_ghostscript, tmp_path):
    with pytest.raises(ImageError, match=r"photo\.jpg is in the EPS \(PostScript\) format; only JPEG, PNG"):
        read_image(EPS, "photo.jpg")
    (tmp_path / "photo.jpg").write_bytes(EPS)
    with pytest.raises(ImageError, match="EPS"):
        read_image_file(tmp_path / "photo.jpg")  # the CLI's path
    assert no_ghostscript == []
    factory, accept = Image.OPEN["EPS"]
    assert accept(EPS[:16])  # without the gate Pillow would pick its EPS plugin (and call gs on load)


def test_a_gif_of_many_frames_decodes_its_first_frame_only(monkeypatch):
    frames = [Image.new("L", (16, 16), 255 * (i % 2)) for i in range(400)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=10)
    assert Image.open(io.BytesIO(buffer.getvalue())).n_frames == 400
    seeks = []
    original = GifImagePlugin.GifImageFile._seek
    monkeypatch.setattr(GifImagePlugin.GifImageFile, "_seek",
                        lambda self, frame, *a, **k: (seeks.append(frame), original(self, frame, *a, **k))[1])
    image = read_image(buffer.getvalue(), "flicker.gif")
    assert image.size == (16, 16) and image.getpixel((3, 3)) == (0, 0, 0)  # frame 0 is black
    assert set(seeks) == {0}  # no other frame was even looked at


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # 89 to 178 MP: Pillow warns first
@pytest.mark.parametrize("width, height", [(13_000, 13_000), (7_000, 7_000)])  # 169 MP; 49 MP
def test_a_header_bomb_is_refused_before_any_pixel_is_decoded(width, height, monkeypatch):
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    with pytest.raises(ImageError, match=rf"{width}x{height} pixels .* the limit is 40 megapixels"):
        read_image(png_declaring(width, height), "huge.png")


def test_decoded_bytes_are_counted_as_rgb_for_a_one_bit_image():
    # 7000×5700 is under the pixel cap, but as RGB it is 160 MB: over a 100 MB budget.
    with pytest.raises(ImageError, match=r"7000x5700 pixels, 152\.2 MB once decoded, more than the 100\.0 MB left"):
        read_image(one_bit_png(), "bits.png", caps=images.ImageLimits(10 * MIB, 40_000_000, 100 * MIB))
    assert images.decoded_bytes((7000, 5700)) == 7000 * 5700 * 4


_TEN_BOMBS = """
import json, struct, zlib
from explorer.server.photos import SessionPhotos, Upload
{source}
def status_mb(field):  # VmHWM, not ru_maxrss: that one keeps the parent's peak across exec
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024
bomb = one_bit_png()
photos = SessionPhotos()
uploads = [Upload(f"id{{i}}", f"bomb{{i}}.png", lambda: bomb) for i in range(10)]
before = status_mb("VmRSS")
read = photos.read(uploads)
after, peak = status_mb("VmRSS"), status_mb("VmHWM")
sizes = sorted({{im.size for im in read.images.values()}})
print(json.dumps(dict(count=len(read.images), problems=read.problems, sizes=sizes, held=photos.held_bytes,
                      kept_mb=after - before, peak_mb=peak - before)))
"""


def test_ten_one_bit_bombs_are_held_small_in_a_bounded_memory():
    """The issue's case: ten 4.9 KB PNGs of 7000×5700 took a server from 862 MB to 2.7 GB."""
    # Only PIL and explorer.data.images in the subprocess (no torch, no pytest): a clean, small baseline.
    code = _TEN_BOMBS.format(source=inspect.getsource(_chunk) + inspect.getsource(one_bit_png))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["count"] == 10 and report["problems"] == [] and report["sizes"] == [[1024, 834]], report
    assert report["held"] == 10 * 1024 * 834 * 4  # 34 MB held in all, not 10 × 160 MB
    assert report["kept_mb"] < 120, report  # held, plus freed pages malloc keeps for the next photo
    assert report["peak_mb"] < 200, report  # one photo decoded at a time, never ten at once


# --- a session's photos: decoded once, at most UPLOAD_PHOTOS, within SESSION_DECODED ---------

class CountingUpload:
    def __init__(self, data):
        self.data, self.reads = data, 0

    def __call__(self):
        self.reads += 1
        return self.data


def test_photos_are_decoded_once_not_on_every_rerun():
    photos, source = SessionPhotos(), CountingUpload(small_png())
    for _ in range(3):  # three reruns of the page
        read = photos.read([Upload("file-1", "cat.png", source)])
        assert list(read.images) == ["cat.png"] and read.images["cat.png"].size == (40, 30)
    assert source.reads == 1
    broken = CountingUpload(b"\x89PNG not really")
    for _ in range(2):
        assert photos.read([Upload("file-2", "broken.png", broken)]).problems == [
            "broken.png was skipped: broken.png is not an image, or a format we cannot read. "
            "Use a JPEG, PNG, WEBP, BMP, GIF file."]
    assert broken.reads == 1  # a broken upload is not parsed again either
    assert photos.read([]).images == {} and photos.held_bytes == 0  # removing the uploads frees them


def test_past_the_photo_limit_the_first_photos_are_used_and_the_rest_named(monkeypatch):
    monkeypatch.setenv("EXPLORER_UPLOAD_PHOTOS", "3")
    sources = [CountingUpload(small_png((i, 0, 0))) for i in range(5)]
    read = SessionPhotos().read([Upload(f"id{i}", f"p{i}.png", s) for i, s in enumerate(sources)])
    assert list(read.images) == ["p0.png", "p1.png", "p2.png"]
    assert read.problems == ["5 photos were uploaded; one upload may hold 3 (EXPLORER_UPLOAD_PHOTOS). "
                             "The first 3 are shown; these were left out: p3.png, p4.png."]
    assert [s.reads for s in sources] == [1, 1, 1, 0, 0]  # the extra ones are never decoded


def test_the_session_budget_refuses_a_photo_that_would_go_over_it():
    photos = SessionPhotos(budget=MIB, longest=1024)
    big = small_png(size=(1024, 600))  # 2.3 MB once decoded as RGB: more than the whole budget
    read = photos.read([Upload("a", "small.png", small_png), Upload("b", "big.png", lambda: big)])
    assert list(read.images) == ["small.png"]
    assert read.problems == ["big.png was skipped: big.png is 1024x600 pixels, 2.3 MB once decoded, more than the "
                             "1.0 MB left for decoded photos (EXPLORER_SESSION_DECODED_MB). Remove some uploads or "
                             "use a smaller image."]
    assert photos.held_bytes == images.decoded_bytes((40, 30)) <= photos.budget


def test_a_photo_refused_for_the_budget_fits_once_others_are_removed():
    photos, photo = SessionPhotos(budget=3 * MIB, longest=1024), small_png(size=(1024, 600))  # 2.3 MB each
    read = photos.read([Upload("a", "a.png", lambda: photo), Upload("b", "b.png", lambda: photo)])
    assert list(read.images) == ["a.png"] and "b.png is 1024x600 pixels" in read.problems[0]
    assert list(photos.read([Upload("b", "b.png", lambda: photo)]).images) == ["b.png"]  # a removed: b fits now
    assert photos.held_bytes == images.decoded_bytes((1024, 600))


def test_a_large_photo_is_shrunk_right_after_decoding_and_keeps_its_look():
    source = Image.new("RGB", (3000, 2000), (250, 0, 0))
    source.paste((0, 0, 250), (1500, 0, 3000, 2000))  # left half red, right half blue
    buffer = io.BytesIO()
    source.save(buffer, "JPEG", quality=95)
    image = read_image(buffer.getvalue(), "wide.jpg", longest=1024)
    assert image.size == (1024, 683)
    red, blue = image.getpixel((200, 300)), image.getpixel((800, 300))
    assert red[0] > 230 > 20 > red[2] and blue[2] > 230 > 20 > blue[0]
    one_bit = Image.new("1", (2000, 1000))
    one_bit.paste(1, (0, 0, 1000, 1000))  # left half white
    buffer = io.BytesIO()
    one_bit.save(buffer, "PNG")
    shrunk = read_image(buffer.getvalue(), "bits.png", longest=500)
    assert shrunk.size == (500, 250) and shrunk.getpixel((100, 100)) == (255, 255, 255)
    assert shrunk.getpixel((400, 100)) == (0, 0, 0)
    clear = Image.new("RGBA", (2000, 1000), (0, 0, 0, 0))  # transparent black left, opaque blue right
    clear.paste((0, 0, 255, 255), (1000, 0, 2000, 1000))
    buffer = io.BytesIO()
    clear.save(buffer, "PNG")
    flattened = read_image(buffer.getvalue(), "clear.png", longest=500)
    assert flattened.getpixel((100, 100)) == (255, 255, 255) and flattened.getpixel((400, 100)) == (0, 0, 255)


# --- zips: whole-archive budgets, and every member through the gate --------------------------

def test_a_zip_of_300_entries_of_one_mib_of_zeros_is_refused_from_its_directory(tmp_path):
    bomb = zip_of_copies([f"c{i % 2}/{i}.jpg" for i in range(300)], b"\0" * MIB)
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match=r"The zip's [\d,]+ bytes expand to 300\.0 MB, \d+ times its size; "
                                               r"at most 20× is allowed \(EXPLORER_ZIP_RATIO\).*zip bomb"):
            unpack_class_zip(bomb, tmp_path / "uploads")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB  # nothing was inflated
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("env, value, message", [
    ("EXPLORER_ZIP_ENTRIES", "3", r"4 entries, more than the 3 allowed \(EXPLORER_ZIP_ENTRIES\)"),
    ("EXPLORER_ZIP_MB", "1", r"expands to 1\.5 MB, more than the 1\.0 MB a session may unpack"),
    ("EXPLORER_SESSION_DISK_MB", "1", r"expands to 1\.5 MB, more than the 1\.0 MB a session may unpack"),
])
def test_zip_budgets_come_from_the_environment(env, value, message, monkeypatch, tmp_path):
    noise = os.urandom(MIB // 2 - 100)  # does not compress: the ratio is about 1
    data = zip_of({"a/1.png": small_png() + noise, "a/2.png": small_png() + noise,
                   "b/1.png": small_png() + noise, "b/2.png": small_png()})
    monkeypatch.setenv(env, value)
    with pytest.raises(ArchiveError, match=message):
        unpack_class_zip(data, tmp_path / "uploads")
    monkeypatch.delenv(env)
    assert unpack_class_zip(data, tmp_path / "uploads").images == 4  # the same zip fits the defaults


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_zip_of_pngs_declaring_169_megapixels_is_refused_by_name(tmp_path, monkeypatch):
    bomb = zip_of({f"{c}/{i}.png": png_declaring(13_000, 13_000) for c in ("cat", "dog") for i in (1, 2)})
    assert len(bomb) < 1_200  # "a 1,078-byte zip of four 169 MP PNGs"
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    with pytest.raises(ArchiveError, match=r"The entry 'cat/1\.png' is 13000x13000 pixels \(169 megapixels\); "
                                           r"the limit is 40 megapixels.*Nothing was extracted"):
        unpack_class_zip(bomb, tmp_path / "uploads")
    assert files_under(tmp_path) == []


def test_an_eps_in_a_zip_is_refused_by_its_content(no_ghostscript, tmp_path):
    data = zip_of({"cat/1.png": small_png(), "dog/1.jpg": EPS})
    with pytest.raises(ArchiveError, match=r"The entry 'dog/1\.jpg' is in the EPS \(PostScript\) format"):
        unpack_class_zip(data, tmp_path / "uploads")
    assert no_ghostscript == [] and files_under(tmp_path) == []


def test_an_entry_larger_than_one_image_may_be_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_IMAGE_FILE_MB", "1")
    data = zip_of({"cat/1.png": small_png() + os.urandom(MIB), "dog/1.png": small_png()})
    with pytest.raises(ArchiveError, match=r"'cat/1\.png' is 1\.0 MB, larger than the 1\.0 MB allowed for one image"):
        unpack_class_zip(data, tmp_path / "uploads")


def test_an_entry_is_never_read_past_the_size_its_directory_declares():
    assert _copy_at_most(io.BytesIO(b"12345"), 5) == b"12345"
    with pytest.raises(ArchiveError, match="more bytes than the zip's directory declares"):
        _copy_at_most(io.BytesIO(b"123456"), 5)
    assert ZipLimits.current() == ZipLimits(60_000, 512 * MIB, 20)


def test_a_new_zip_replaces_the_sessions_previous_one_and_its_cached_copy(tmp_path):
    session = SessionResources(upload_parent=tmp_path, cache_dir=tmp_path / "cache")
    first = unpack_class_zip(zip_of({"cat/1.png": small_png(), "dog/1.png": small_png((0, 0, 200))}),
                             session.emptied_upload_dir())
    loaded = load_data(f"folder:{first.root}", val_size=1, cache_dir=tmp_path / "cache")
    assert loaded.classes == ("cat", "dog")
    assert len(list((tmp_path / "cache" / "folders").glob("*.safetensors"))) == 1  # its decoded copy
    second = unpack_class_zip(zip_of({"ant/1.png": small_png(), "bee/1.png": small_png()}),
                              session.emptied_upload_dir())
    assert not first.root.exists() and second.root.exists()
    assert list(session.upload_dir().iterdir()) == [second.root]  # one zip on disk per session
    assert list((tmp_path / "cache" / "folders").glob("*.safetensors")) == []
    refused = zip_of({"x/1.png": EPS, "y/1.png": small_png()})
    with pytest.raises(ArchiveError):
        unpack_class_zip(refused, session.emptied_upload_dir())
    assert list(session.upload_dir().iterdir()) == []  # a refused zip also replaced the last one


# --- folder training data: the decoder goes through the same gate ----------------------------

def _tree(root: Path, odd: dict[str, bytes]) -> Path:
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            (root / name / f"{i}.png").write_bytes(small_png((60 * i, 100, 0)))
    for relative, data in odd.items():
        (root / relative).write_bytes(data)
    return root


def test_an_eps_named_jpg_in_a_folder_gives_a_data_error_and_no_ghostscript(no_ghostscript, tmp_path):
    root = _tree(tmp_path / "pets", {"dog/photo.jpg": EPS})
    with pytest.raises(DataError, match=rf"{root / 'dog' / 'photo.jpg'} is in the EPS \(PostScript\) format.*"
                                        "Remove or replace the file"):
        load_data(f"folder:{root}", val_size=1, cache_dir=tmp_path / "cache")
    assert no_ghostscript == []
    (root / "dog" / "photo.jpg").unlink()
    assert load_data(f"folder:{root}", val_size=1, cache_dir=tmp_path / "cache").classes == ("cat", "dog")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_169_megapixel_png_in_a_folder_gives_a_data_error_before_decoding(tmp_path, monkeypatch):
    root = _tree(tmp_path / "pets", {"cat/bomb.png": png_declaring(13_000, 13_000)})
    loads = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: (loads.append(self.size), original(self))[1])
    with pytest.raises(DataError, match=r"cat/bomb\.png is 13000x13000 pixels \(169 megapixels\); the limit is 40"):
        load_data(f"folder:{root}", val_size=1, cache_dir=tmp_path / "cache")
    assert (13_000, 13_000) not in loads


def test_a_large_jpeg_in_a_folder_is_decoded_at_a_reduced_scale(tmp_path):
    big = io.BytesIO()
    Image.new("RGB", (2048, 1536), (10, 200, 30)).save(big, "JPEG")
    root = _tree(tmp_path / "pets", {"cat/big.jpg": big.getvalue()})
    from explorer.data.decoder import decode_image

    pixels = decode_image(str(root / "cat" / "big.jpg"), 32)
    assert pixels.shape == (32, 32, 3) and abs(int(pixels[16, 16, 1]) - 200) < 8
    opened = Image.open(root / "cat" / "big.jpg")
    opened.draft(None, (32, 32))
    assert opened.size == (256, 192)  # what the decoder asks libjpeg for: 1/8 of the pixels


# --- the page: a refused upload, then the session goes on -----------------------------------

def test_inspect_page_refuses_an_eps_keeps_a_bomb_small_and_still_classifies(no_ghostscript, monkeypatch):
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(ROOT / "pretrained"))
    decoded = []
    original = images.read_image
    monkeypatch.setattr(images, "read_image", lambda data, name="image", **k: (decoded.append(name),
                                                                               original(data, name, **k))[1])
    at = open_page("../pages/inspect_image.py")
    at.file_uploader(key="uploads").set_value([("photo.jpg", EPS, "image/jpeg"),
                                               ("bits.png", one_bit_png(), "image/png")]).run()
    assert not at.exception
    shown = [error.value.replace("\\", "") for error in at.error]  # escaped for Markdown
    assert len(shown) == 1 and "photo.jpg is in the EPS (PostScript) format" in shown[0]
    assert no_ghostscript == []
    assert at.selectbox(key="inspect.focus").value == "bits.png"  # the 40 MP bomb, held at 1024×834
    assert at.session_state["decoded_photos"].held_bytes == 1024 * 834 * 4
    at.multiselect[0].set_value(["cat"]).run()  # the session goes on: a sample is classified beside it
    assert not at.exception and at.selectbox(key="inspect.focus").options == ["bits.png", "sample: cat"]
    uploads = [name for name in decoded if name in ("bits.png", "photo.jpg")]
    assert sorted(uploads) == ["bits.png", "photo.jpg"]  # each upload decoded once over three reruns


@pytest.mark.parametrize("tail, message", [
    ("x" * 300, "a file or folder name is at most 255 bytes"),  # was: OSError, File name too long
    ("pets\x00/../../etc", "holds a NUL character"),  # was: "climbs with '..'"
], ids=["part-over-255", "nul"])
def test_the_labs_folder_box_shows_a_message_not_an_oserror(tail, message, tmp_path):
    at = open_page("../pages/degradation.py")
    at.selectbox(key="lab.dataset").set_value("A folder on this machine").run()
    at.text_input(key="lab.folder").set_value(f"{tmp_path}/{tail}").run()  # inside a data root (conftest)
    assert not at.exception
    shown = [error.value.replace("\\", "") for error in at.error]
    assert any(message in text for text in shown) and not any("climbs" in text for text in shown), shown
