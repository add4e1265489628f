"""Datasets as in-memory tensors, and augmentation done on the device, in batches.

The paper's CIFAR-10 experiments (He et al. 2015, §4.2) train small nets on 32×32 images for
tens of thousands of steps. At that size, decoding images and running per-image transforms
on the CPU is slower than the network itself, so this package follows airbench's approach,
in two halves joined by one object:

1. **Decode once** (the loading half). :func:`load_data` (:mod:`.loading`) turns a source
   into uint8 tensors ``(N, 3, H, W)`` (50,000 CIFAR images are 150 MB) plus int64 labels,
   and splits them into a training and a validation set. The sources are
   ``"pack:cifar10-demo"`` and ``"pack:cifar10-eval"`` (:mod:`.packs`: real CIFAR-10 images
   shipped with the app, each with its own held-out part, the default on a machine without
   CIFAR-10), ``"synthetic"`` (:mod:`.synthetic`: generated in a fraction of a second, for tests and for
   trying the app without any data), ``"cifar10"`` (:mod:`.cifar10`: torchvision's copy of the
   real data set) and ``"folder:PATH"`` (:mod:`.folder`: any ImageFolder tree, listed by the
   scanner :mod:`.scanner`, decoded by the thread pool in :mod:`.decoder` and kept in the
   disk cache :mod:`.cache`, so the second load takes well under a second). A source's text is
   parsed in one place, :class:`DataSource` (:mod:`.sources`): its kind (:class:`SourceKind`)
   and its folder, count or pack as typed fields; ``str()`` gives the text back.
2. **Keep them on the device.** The result is an :class:`InMemoryData` (:mod:`.dataset`);
   :meth:`InMemoryData.to` moves all four tensors at once, and the training loop then draws
   batches by indexing, with no ``DataLoader`` and no worker processes.
3. **Augment whole batches** (the device half). :func:`augment` (:mod:`.augmentation`) does
   the paper's padding, random crop and flip for a whole batch with a few tensor operations,
   then normalises to float32.

User mistakes (a missing folder, a corrupt image, an unknown source) raise :class:`DataError`,
whose message says what is wrong and what to do about it.

Everything public is re-exported here: import from ``explorer.data``, not from the modules.
"""

from explorer.data.augmentation import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    Augmentation,
    augment,
    denormalize,
    normalize,
    random_erase,
    upsample,
)
from explorer.data.dataset import DataError, InMemoryData, ProgressCallback, SourceKind
from explorer.data.decoder import folder_pixels
from explorer.data.loading import check_source, check_training_source, default_cache_dir, describe_source, load_data
from explorer.data.packs import PACK_SPECS, available_packs, pack_source
from explorer.data.scanner import IMAGE_EXTENSIONS, ImageFile, scan_folder
from explorer.data.sources import DataSource, source_kind
from explorer.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_DEFAULT_SIZE, make_synthetic

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "IMAGE_EXTENSIONS",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_DEFAULT_SIZE",
    "Augmentation",
    "DataError",
    "DataSource",
    "ImageFile",
    "InMemoryData",
    "PACK_SPECS",
    "ProgressCallback",
    "SourceKind",
    "augment",
    "available_packs",
    "check_source",
    "check_training_source",
    "default_cache_dir",
    "denormalize",
    "describe_source",
    "folder_pixels",
    "load_data",
    "make_synthetic",
    "normalize",
    "pack_source",
    "random_erase",
    "scan_folder",
    "source_kind",
    "upsample",
]
