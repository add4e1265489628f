"""The real CIFAR-10 images shipped in pretrained/data (issue 38): provenance, balance, the split."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from explorer.data import DataError
from explorer.data.packs import DEMO_CLASSES, PACK_SPECS, SPLIT_VAL, build_pack, load_pack, read_manifest

SHIPPED = Path(__file__).resolve().parents[1] / "pretrained" / "data"
REAL_CIFAR_FOLDER = Path(__file__).resolve().parents[2] / "shared/data/cifar10/train"


def _tensors(name: str) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(SHIPPED / f"{name}.safetensors"), "pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata()


def test_manifest_matches_the_shipped_files():
    entries = read_manifest(SHIPPED)
    assert set(entries) == set(PACK_SPECS)
    for entry in entries.values():
        data = (SHIPPED / entry.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        assert "/" not in entry.origin and "shared" not in json.dumps(entry.__dict__)  # no path of this machine
    total = sum((SHIPPED / e.file).stat().st_size for e in entries.values())
    assert total < 10 * 1024 * 1024, "a few MB, not a data set"


def test_each_image_is_the_file_it_claims_to_be():
    for name in PACK_SPECS:
        tensors, metadata = _tensors(name)
        offsets, jpeg = tensors["offsets"].tolist(), tensors["jpeg"].numpy()
        digests = [hashlib.sha256(jpeg[a:b].tobytes()).digest() for a, b in zip(offsets, offsets[1:])]
        assert torch.equal(torch.tensor([list(d) for d in digests], dtype=torch.uint8), tensors["sha256"])
        paths = json.loads(metadata["paths"])
        assert len(paths) == len(digests) == len(set(paths))
        classes = json.loads(metadata["classes"])
        assert all(path.split("/")[0] == classes[label] for path, label in zip(paths, tensors["labels"].tolist()))


def test_eval_pack_lies_in_the_held_out_part_and_the_demo_pack_outside_it():
    held_out = set(torch.randperm(50_000, generator=torch.Generator().manual_seed(0))[:SPLIT_VAL].tolist())
    evaluation, _ = _tensors("cifar10-eval")
    demo, _ = _tensors("cifar10-demo")
    assert set(evaluation["source_index"].tolist()) <= held_out
    assert not set(demo["source_index"].tolist()) & held_out
    assert torch.bincount(evaluation["labels"]).tolist() == [200] * 10


def test_load_pack_parts_and_balance():
    demo = load_pack("cifar10-demo", folder=SHIPPED)
    assert demo.classes == DEMO_CLASSES
    assert demo.train_images.shape == (6000, 3, 32, 32) and demo.val_images.shape == (300, 3, 32, 32)
    assert torch.bincount(demo.train_labels).tolist() == [2000] * 3
    assert torch.bincount(demo.val_labels).tolist() == [100] * 3
    small = load_pack("cifar10-eval", image_size=16, folder=SHIPPED)
    assert small.train_images.shape[0] == 0 and small.val_images.shape == (2000, 3, 16, 16)


def test_demo_classes_are_the_class_demos():
    from explorer.paper.degradation import CLASS_DEMO_CLASSES

    assert DEMO_CLASSES == CLASS_DEMO_CLASSES


def test_a_damaged_pack_is_refused_before_decoding(tmp_path):
    shutil.copytree(SHIPPED, tmp_path / "data")
    path = tmp_path / "data" / "cifar10-eval.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="does not match its sha256"):
        load_pack("cifar10-eval", folder=tmp_path / "data")
    with pytest.raises(DataError, match="No shipped data set 'nope'"):
        load_pack("nope", folder=tmp_path / "data")


@pytest.mark.skipif(not REAL_CIFAR_FOLDER.is_dir(), reason="real CIFAR-10 is not beside the repo (../shared/data)")
def test_packs_rebuild_from_the_folder_image_for_image(tmp_path):
    """The pack is reproducible from the folder: the same images, labels, split and provenance
    (compared as content: the file's bytes also depend on how safetensors orders its header)."""
    from safetensors import safe_open

    build_pack(REAL_CIFAR_FOLDER, PACK_SPECS["cifar10-eval"], tmp_path)
    shipped, shipped_metadata = _tensors("cifar10-eval")
    with safe_open(str(tmp_path / "cifar10-eval.safetensors"), "pt") as handle:
        rebuilt = {key: handle.get_tensor(key) for key in handle.keys()}
        assert handle.metadata() == shipped_metadata
    assert rebuilt.keys() == shipped.keys()
    assert all(torch.equal(rebuilt[key], shipped[key]) for key in shipped)
