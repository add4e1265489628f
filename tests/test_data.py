"""Tests for explorer.data: the three sources, the disk cache, the errors, and augmentation.

Everything here runs on tiny generated data; the real CIFAR-10 folder is only scanned (stat
calls), never decoded, so the file stays fast on two CPU cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    Augmentation,
    DataError,
    DataSource,
    InMemoryData,
    SourceKind,
    augment,
    check_source,
    load_data,
    normalize,
    scan_folder,
    source_kind,
)

REAL_CIFAR_FOLDER = Path(__file__).resolve().parents[2] / "shared/data/cifar10/train"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
COLOURS = {"blue": (20, 40, 230), "green": (30, 200, 40), "red": (220, 30, 20)}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache for every test, so no test sees another's decoded folders or downloads."""
    path = tmp_path / "cache"
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(path))
    return path


def solid(colour, size=32, noise=0, seed=0):
    pixels = np.full((size, size, 3), colour, dtype=np.int16)
    if noise:
        pixels += np.random.default_rng(seed).integers(-noise, noise + 1, pixels.shape, dtype=np.int16)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def make_tree(root: Path, order=1) -> Path:
    """3 colour classes × 8 images: PNG and JPEG, upper-case extensions, some 40×40, plus junk to ignore."""
    entries = []
    for name, colour in COLOURS.items():
        for i in range(8):
            extension = [".png", ".jpg", ".JPEG", ".PNG"][i % 4]
            size = 40 if i % 3 == 0 else 32  # 40×40 images must be resized to 32×32
            entries.append((root / name / f"img{i}{extension}", solid(colour, size, noise=10, seed=i)))
    for path, image in entries[::order]:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG", quality=95)
    # Things that are not images of a class, and must not count:
    (root / "red" / "notes.txt").write_text("not an image")
    solid((0, 0, 0)).save(root / "red" / ".hidden.png")
    (root / ".thumbnails").mkdir()
    solid((0, 0, 0)).save(root / ".thumbnails" / "a.png")
    (root / "empty_class").mkdir()
    solid((0, 0, 0)).save(root / "loose.png")  # beside the class folders, not in one
    return root


# ------------------------------------------------------------------------------------ import


def test_data_module_does_not_import_streamlit():
    code = "import sys, explorer.data; sys.exit('streamlit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, "explorer.data imported streamlit"


# ------------------------------------------------------------------------------------ synthetic


def test_synthetic_shapes_split_and_classes():
    d = load_data("synthetic:2000")
    assert d.name == "synthetic:2000"
    assert d.classes == tuple(f"pattern{i}" for i in range(10)) and d.num_classes == 10
    assert d.train_images.shape == (1800, 3, 32, 32) and d.val_images.shape == (200, 3, 32, 32)
    assert d.train_images.dtype == d.val_images.dtype == torch.uint8
    assert d.train_labels.dtype == d.val_labels.dtype == torch.int64
    assert d.image_size == 32
    counts = torch.bincount(torch.cat((d.train_labels, d.val_labels)), minlength=10)
    assert counts.tolist() == [200] * 10  # exactly balanced before the split
    assert torch.bincount(d.train_labels, minlength=10).min() >= 160  # and roughly after it
    # Real images, not flat colours or saturated noise.
    assert 0.05 < d.train_images.float().std().item() / 255 < 0.3


def test_synthetic_default_size_is_quick():
    import time

    start = time.perf_counter()
    d = load_data("synthetic")
    elapsed = time.perf_counter() - start
    assert (len(d.train_labels), len(d.val_labels)) == (10_800, 1_200)
    assert d.name == "synthetic"
    assert elapsed < 5.0  # about 0.5 s on two idle cores; generous for a busy CI machine


def test_synthetic_is_deterministic_per_seed():
    a = load_data("synthetic:500", seed=3)
    b = load_data("synthetic:500", seed=3)
    c = load_data("synthetic:500", seed=4)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.val_labels, b.val_labels)
    assert not torch.equal(a.train_images, c.train_images)


def test_synthetic_needs_more_than_pixel_averages():
    """A nearest-class-mean classifier on raw pixels must be near chance (10%): the classes are
    textures at random positions and phases, not colour blobs a linear model could pick out."""
    d = load_data("synthetic:3000")
    x, y = d.train_images.flatten(1).float(), d.train_labels
    centroids = torch.stack([x[y == c].mean(0) for c in range(10)])
    predicted = torch.cdist(d.val_images.flatten(1).float(), centroids).argmin(1)
    accuracy = (predicted == d.val_labels).float().mean().item()
    assert accuracy < 0.25


def test_synthetic_honours_image_size():
    d = load_data("synthetic:100", image_size=16)
    assert d.train_images.shape[1:] == (3, 16, 16) and d.image_size == 16


# ------------------------------------------------------------------------------------ folder


def test_folder_classes_counts_split_and_colours(tmp_path):
    root = make_tree(tmp_path / "tree")
    d = load_data(f"folder:{root}")
    assert d.name == f"folder:{root.resolve()}"
    assert d.classes == ("blue", "green", "red")  # sorted; empty, hidden and loose entries ignored
    assert len(d.train_labels) + len(d.val_labels) == 24
    assert len(d.val_labels) == 2  # max(1, 24 // 10)
    assert d.train_images.shape[1:] == (3, 32, 32)  # the 40×40 images were resized
    images = torch.cat((d.train_images, d.val_images)).float()
    labels = torch.cat((d.train_labels, d.val_labels))
    assert torch.bincount(labels).tolist() == [8, 8, 8]
    for index, name in enumerate(d.classes):
        mean_colour = images[labels == index].mean(dim=(0, 2, 3))
        assert torch.allclose(mean_colour, torch.tensor(COLOURS[name], dtype=torch.float32), atol=12)


def test_folder_reads_every_listed_format_and_exif_rotation(tmp_path):
    from PIL import features

    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    solid(COLOURS["red"]).convert("P").save(root / "a" / "palette.gif")
    solid(COLOURS["red"]).save(root / "a" / "plain.bmp")
    if features.check("webp"):
        solid(COLOURS["red"]).save(root / "a" / "lossless.webp", lossless=True)
    # Stored with red on the left; EXIF orientation 6 says "turn 90° clockwise to display",
    # which puts the red half on top.
    halves = np.zeros((32, 32, 3), dtype=np.uint8)
    halves[:, :16] = COLOURS["red"]
    halves[:, 16:] = COLOURS["blue"]
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(halves).save(root / "b" / "phone.jpg", exif=exif, quality=95)
    d = load_data(f"folder:{root}", val_size=0)
    assert len(d.train_labels) == (4 if features.check("webp") else 3)
    (rotated,) = d.train_images[d.train_labels == 1].float()
    assert rotated[0, :12].mean() > 180 and rotated[2, :12].mean() < 80  # top rows are red
    assert rotated[2, 20:].mean() > 180  # bottom rows are blue
    others = d.train_images[d.train_labels == 0].float().mean(dim=(2, 3))
    assert torch.allclose(others, torch.tensor(COLOURS["red"], dtype=torch.float32), atol=3)


def test_folder_survives_a_symlink_loop(tmp_path):
    root = make_tree(tmp_path / "tree")
    try:
        (root / "red" / "loop").symlink_to(root, target_is_directory=True)
    except OSError:
        pytest.skip("this file system cannot make symlinks")
    d = load_data(f"folder:{root}")
    assert len(d.train_labels) + len(d.val_labels) == 24


def test_folder_split_does_not_depend_on_creation_order(tmp_path):
    forward = load_data(f"folder:{make_tree(tmp_path / 'a', order=1)}", val_size=5, seed=7)
    backward = load_data(f"folder:{make_tree(tmp_path / 'b', order=-1)}", val_size=5, seed=7)
    assert torch.equal(forward.val_labels, backward.val_labels)
    assert torch.equal(forward.train_images, backward.train_images)
    other_seed = load_data(f"folder:{tmp_path / 'a'}", val_size=5, seed=8)
    assert not torch.equal(forward.train_images, other_seed.train_images)


def test_folder_reports_progress(tmp_path):
    root = make_tree(tmp_path / "tree")
    calls = []
    load_data(f"folder:{root}", progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (24, 24)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch, cache_dir):
    root = make_tree(tmp_path / "tree")
    first = load_data(f"folder:{root}")
    assert len(list((cache_dir / "folders").glob("*.safetensors"))) == 1
    assert not list((cache_dir / "folders").glob("*.tmp"))  # written atomically, nothing left over

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(Image, "open", no_decoding)
    second = load_data(f"folder:{root}")
    assert second.classes == first.classes
    for field in ("train_images", "train_labels", "val_images", "val_labels"):
        assert torch.equal(getattr(first, field), getattr(second, field))


def test_changing_a_file_invalidates_the_cache(tmp_path, monkeypatch):
    root = make_tree(tmp_path / "tree")
    before = load_data(f"folder:{root}", val_size=0)
    red_index = before.classes.index("red")

    # Repaint one red image blue; same size on disk is possible, so also move its mtime.
    target = root / "red" / "img1.jpg"
    solid(COLOURS["blue"]).save(target, format="JPEG", quality=95)
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    after = load_data(f"folder:{root}", val_size=0)
    assert len(opened) == 24  # decoded again, not read from the cache
    blue_pixels = after.train_images[after.train_labels == red_index].float().mean(dim=(2, 3))
    assert (blue_pixels[:, 2] > 200).sum() == 1  # exactly one "red" image is now blue


def test_corrupt_cache_is_rebuilt(tmp_path, cache_dir):
    root = make_tree(tmp_path / "tree")
    first = load_data(f"folder:{root}")
    (cache_file,) = (cache_dir / "folders").glob("*.safetensors")
    cache_file.write_bytes(b"\x00garbage" * 100)
    second = load_data(f"folder:{root}")
    assert torch.equal(first.train_images, second.train_images)
    assert cache_file.stat().st_size > 24 * 3 * 32 * 32  # rewritten with the real tensors


# ------------------------------------------------------------------------------------ errors


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"does not exist"):
        load_data(f"folder:{tmp_path / 'nowhere'}")


def test_file_instead_of_folder(tmp_path):
    path = tmp_path / "x.png"
    solid((0, 0, 0)).save(path)
    with pytest.raises(DataError, match=r"not a folder"):
        load_data(f"folder:{path}")


def test_folder_without_a_path():
    with pytest.raises(DataError, match=r"needs a path"):
        load_data("folder:")


def test_empty_folder(tmp_path):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    with pytest.raises(DataError, match=r"No images found"):
        load_data(f"folder:{tmp_path / 'empty'}")


def test_images_not_in_class_folders(tmp_path):
    solid((0, 0, 0)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"one sub-folder per class"):
        load_data(f"folder:{tmp_path}")


def test_single_class(tmp_path):
    (tmp_path / "cats").mkdir()
    solid((0, 0, 0)).save(tmp_path / "cats" / "a.png")
    with pytest.raises(DataError, match=r"at least two classes, found only 'cats'"):
        load_data(f"folder:{tmp_path}")


def test_random_bytes_named_jpg(tmp_path, cache_dir):
    root = make_tree(tmp_path / "tree")
    bad = root / "green" / "broken.jpg"
    bad.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(DataError) as info:
        load_data(f"folder:{root}")
    message = str(info.value)
    assert str(bad) in message and "Remove or replace the file" in message
    assert not (cache_dir / "folders").exists() or not list((cache_dir / "folders").iterdir())


def test_truncated_jpeg(tmp_path):
    root = make_tree(tmp_path / "tree")
    bad = root / "blue" / "cut.jpg"
    noisy = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    noisy.save(bad, format="JPEG")
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.jpg.*truncated"):
        load_data(f"folder:{root}")


def test_decompression_bomb_guard_stays_on(tmp_path, monkeypatch):
    # Pretend a 40×40 image is a bomb: Pillow raises above 2 × MAX_IMAGE_PIXELS.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    root = make_tree(tmp_path / "tree")
    with pytest.raises(DataError, match=r"too large to decode safely"):
        load_data(f"folder:{root}")


@pytest.mark.parametrize("source", ["mnist", "synthetic:abc", "synthetic:5", "cifar10:x", "", "folder"])
def test_unknown_source(source):
    with pytest.raises(DataError) as info:
        load_data(source)
    assert "synthetic" in str(info.value)  # says what would have worked


@pytest.mark.parametrize("text, kind, field, value", [
    ("cifar10", SourceKind.CIFAR10, None, None),
    ("synthetic", SourceKind.SYNTHETIC, "count", 12_000),
    ("synthetic:2000", SourceKind.SYNTHETIC, "count", 2000),
    (" Synthetic : 300", SourceKind.SYNTHETIC, "count", 300),  # any spelling the loader accepts
    ("folder:/data/pets", SourceKind.FOLDER, "path", "/data/pets"),
    ("folder: relative/pets ", SourceKind.FOLDER, "path", "relative/pets"),
    ("folder:", SourceKind.FOLDER, "path", ""),  # parsed; the loader then says it needs a path
    ("pack:cifar10-eval", SourceKind.PACK, "pack", "cifar10-eval"),
])
def test_a_source_is_parsed_once_into_typed_fields_and_gives_its_text_back(text, kind, field, value):
    source = DataSource.parse(text)
    assert source.kind is kind and str(source) == text and source_kind(text) is kind
    if field is not None:
        assert getattr(source, field) == value
    assert DataSource.parse(str(source)) == source


def test_a_source_built_from_its_fields_is_spelt_as_the_loader_names_it(tmp_path):
    assert str(DataSource.of_synthetic()) == "synthetic" and str(DataSource.of_synthetic(500)) == "synthetic:500"
    assert str(DataSource.of_folder(tmp_path)) == f"folder:{tmp_path}" and str(DataSource.of_pack("cifar10-demo")) \
        == "pack:cifar10-demo"
    make_tree(tmp_path / "tree")
    assert load_data(str(DataSource.of_folder(tmp_path / "tree"))).name == f"folder:{(tmp_path / 'tree').resolve()}"


@pytest.mark.parametrize("source", ["mnist", "synthetic:abc", "synthetic:5", "cifar10:x", "", "folder", "pack:mnist",
                                    None, 3])
def test_bad_text_is_refused_by_the_parser_with_the_loaders_message(source):
    with pytest.raises(DataError) as parsed:
        DataSource.parse(source)
    with pytest.raises(DataError) as checked:
        check_source(source)
    assert str(parsed.value) == str(checked.value)
    assert DataSource.read(source) is None
    if source in ("mnist", "", "folder", None, 3):
        assert source_kind(source) is None  # names no kind at all ("pack:mnist" is a pack, not a shipped one)


@pytest.mark.parametrize("val_size", [2000, 2500])
def test_val_size_too_big(val_size):
    with pytest.raises(DataError, match=r"val_size=.*has 2000 images.*from 0 to 1999"):
        load_data("synthetic:2000", val_size=val_size)


@pytest.mark.parametrize("val_size", [-1, 0.1, True])
def test_val_size_not_a_count(val_size, tmp_path, monkeypatch):
    # Rejected before any decoding: a folder that would fail to decode is never opened.
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("decoded before checking val_size"))
    with pytest.raises(DataError, match=r"val_size must be a whole number"):
        load_data(f"folder:{make_tree(tmp_path / 'tree')}", val_size=val_size)


def test_val_size_zero_trains_on_everything():
    d = load_data("synthetic:100", val_size=0)
    assert len(d.train_labels) == 100 and d.val_images.shape == (0, 3, 32, 32)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


# ------------------------------------------------------------------------------------ cifar10


class FakeCIFAR10:
    """Stands in for torchvision's class: same attributes, no download."""

    calls: list = []

    def __init__(self, root, train=True, download=False, count=200):
        FakeCIFAR10.calls.append((root, train, download))
        rng = np.random.default_rng(0)
        self.data = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
        self.data[:, 0, 0, 0] = np.arange(count) % 256  # marks which image is which
        self.data[:, 0, 0, 1] = np.arange(count) // 256
        self.targets = [i % 10 for i in range(count)]
        self.classes = list(CIFAR10_CLASSES)


def test_cifar10_converts_without_pil(monkeypatch, cache_dir):
    import torchvision

    FakeCIFAR10.calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    d = load_data("cifar10")
    assert FakeCIFAR10.calls == [(str(cache_dir / "cifar10"), True, True)]
    assert d.classes == CIFAR10_CLASSES and len(d.train_labels) == 180 and len(d.val_labels) == 20
    source = FakeCIFAR10(".")
    for image, label in zip(d.train_images, d.train_labels):
        index = int(image[0, 0, 0]) + 256 * int(image[1, 0, 0])
        assert torch.equal(image, torch.from_numpy(source.data[index]).permute(2, 0, 1))  # HWC -> CHW
        assert label == source.targets[index]


def test_cifar10_uses_the_papers_45k_5k_split(monkeypatch):
    import torchvision

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", lambda root, **kw: FakeCIFAR10(root, count=50_000, **kw))
    d = load_data("cifar10")
    assert (len(d.train_labels), len(d.val_labels)) == (45_000, 5_000)  # §4.2


@pytest.mark.parametrize(
    "error", [urllib.error.URLError("[Errno -3] Temporary failure in name resolution"), RuntimeError("offline")]
)
def test_cifar10_offline_names_the_folder(monkeypatch, cache_dir, error):
    import torchvision

    def offline(*args, **kwargs):
        raise error

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError) as info:
        load_data("cifar10")
    message = str(info.value)
    assert str(cache_dir / "cifar10" / "cifar-10-batches-py") in message
    assert "folder:PATH" in message and "pack:cifar10-demo" in message  # the offline way out
    assert "URLError" not in message and "Errno" not in message  # said in words (issue 38)
    if isinstance(error, urllib.error.URLError):
        assert "no internet connection" in message


def test_cifar10_honours_cache_dir_argument(monkeypatch, tmp_path):
    import torchvision

    FakeCIFAR10.calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    load_data("cifar10", cache_dir=tmp_path / "elsewhere")
    assert FakeCIFAR10.calls[0][0] == str(tmp_path / "elsewhere" / "cifar10")


def test_real_cifar10_folder_scan():
    if not REAL_CIFAR_FOLDER.is_dir():
        pytest.skip(f"{REAL_CIFAR_FOLDER} is not present (the shared CIFAR-10 JPEG folder)")
    classes, files = scan_folder(REAL_CIFAR_FOLDER)
    assert classes == CIFAR10_CLASSES
    assert len(files) == 50_000
    per_class = {name: 0 for name in classes}
    for f in files:
        per_class[f.relative.split("/")[0]] += 1
    assert set(per_class.values()) == {5000}


# ------------------------------------------------------------------------------------ InMemoryData


def test_in_memory_data_to_moves_all_tensors():
    d = load_data("synthetic:50").to("meta")  # a device every machine has
    for field in ("train_images", "train_labels", "val_images", "val_labels"):
        assert getattr(d, field).device.type == "meta"
    assert d.num_classes == 10


def test_in_memory_data_checks_dtypes():
    with pytest.raises(ValueError, match="uint8"):
        InMemoryData(
            "x", ("a", "b"), torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64),
            torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, dtype=torch.int64),
        )  # fmt: skip


# ------------------------------------------------------------------------------------ augmentation


def batch(size=8, seed=0):
    return torch.randint(0, 256, (size, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_normalize_known_values():
    images = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    images[0, 0] = 255
    out = normalize(images)
    assert out.dtype == torch.float32
    assert out[0, 0, 0, 0].item() == pytest.approx((1 - CIFAR10_MEAN[0]) / CIFAR10_STD[0], rel=1e-6)
    assert out[0, 2, 1, 1].item() == pytest.approx(-CIFAR10_MEAN[2] / CIFAR10_STD[2], rel=1e-6)


def test_augment_shape_dtype_device():
    out = augment(batch(), Augmentation(), torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 32, 32) and out.dtype == torch.float32 and out.device == torch.device("cpu")


def test_augment_without_crop_and_flip_is_normalize():
    images = batch()
    assert torch.equal(augment(images, Augmentation(pad=0, flip=False)), normalize(images))


def test_crop_shifts_by_at_most_pad_pixels():
    images = torch.zeros(512, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 16, 16] = 255  # one bright pixel in the middle
    out = augment(images, Augmentation(pad=4, flip=False), torch.Generator().manual_seed(0))
    flat = out[:, 0].flatten(1).argmax(dim=1)
    rows, cols = flat // 32 - 16, flat % 32 - 16
    assert rows.abs().max() == 4 and cols.abs().max() == 4  # every shift up to 4 occurs...
    assert rows.min() == -4 and cols.min() == -4
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 60  # ...in most of the 81 combinations
    assert torch.all(out[:, 0].flatten(1).max(dim=1).values > 2)  # the pixel is never cropped away


def test_crop_pads_with_black():
    white = torch.full((256, 3, 32, 32), 255, dtype=torch.uint8)
    out = augment(white, Augmentation(pad=4, flip=False), torch.Generator().manual_seed(0))
    black = normalize(torch.zeros(1, 3, 1, 1, dtype=torch.uint8))[0, :, 0, 0]
    border = out[:, :, 0, :]  # the top row is padding whenever the crop starts above the image
    assert (border == black[None, :, None]).all(dim=(1, 2)).float().mean() > 0.3


def test_flip_half_of_the_images():
    images = torch.zeros(1000, 3, 32, 32, dtype=torch.uint8)
    images[..., :16] = 255  # bright left half
    out = augment(images, Augmentation(pad=0, flip=True), torch.Generator().manual_seed(0))
    flipped = out[:, 0, 0, 0] < out[:, 0, 0, 31]
    assert 0.45 < flipped.float().mean().item() < 0.55
    expected = normalize(images)
    assert torch.equal(out[flipped], expected[flipped].flip(-1))
    assert torch.equal(out[~flipped], expected[~flipped])


def test_augment_is_reproducible_with_a_generator():
    images = batch(64)
    a = augment(images, Augmentation(), torch.Generator().manual_seed(5))
    b = augment(images, Augmentation(), torch.Generator().manual_seed(5))
    c = augment(images, Augmentation(), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("value", [0.0, "random"])
def test_erasing_always_and_never(value):
    images = batch(32)
    plain = augment(images, Augmentation(), torch.Generator().manual_seed(1))
    torch.manual_seed(0)  # random erasing draws from the global generator
    never = augment(images, Augmentation(erasing_p=0.0, erasing_value=value), torch.Generator().manual_seed(1))
    always = augment(images, Augmentation(erasing_p=1.0, erasing_value=value), torch.Generator().manual_seed(1))
    assert torch.equal(never, plain)
    changed = (always != plain).flatten(1).any(dim=1)
    assert changed.all()
    erased_fraction = (always != plain).float().mean().item()
    assert 0.02 <= erased_fraction <= 0.33  # the boxes cover 2-33% of each image
    if value == 0.0:
        assert (always[always != plain] == 0).all()


@pytest.mark.parametrize(
    "options", [{"pad": -1}, {"erasing_p": 1.5}, {"erasing_scale": (0.5, 0.1)}, {"erasing_value": "noise"}]
)
def test_augmentation_rejects_bad_settings(options):
    with pytest.raises(ValueError):
        Augmentation(**options)


def test_augment_rejects_float_images():
    with pytest.raises(ValueError, match=r"uint8 batch"):
        augment(torch.zeros(2, 3, 32, 32), Augmentation())


def test_augmentation_is_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        Augmentation().pad = 2  # type: ignore[misc]
