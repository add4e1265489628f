"""The decoder pool: image files -> one uint8 ``(N, 3, S, S)`` tensor, in parallel threads.

Used by :mod:`~explorer.data.folder` when the disk cache (:mod:`~explorer.data.cache`) has no
copy of a folder. :func:`folder_pixels` is the single resize step every folder image goes
through, shared with :mod:`explorer.store.classifiers` so that a photo classified by a model fine-tuned
on a folder is prepared exactly as its training images were.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from explorer.data.dataset import DataError, ProgressCallback, report_progress
from explorer.data.images import ImageError, ImageLimits, decode_frame, open_image

_PROGRESS_EVERY = 1000  # images between progress callbacks while decoding
_DECODE_CHUNK = 256  # files per thread-pool task: large enough to amortise the task overhead


def folder_pixels(image, image_size: int) -> np.ndarray:
    """An upright RGB PIL image -> uint8 ``(image_size, image_size, 3)``, resized as every
    folder data set is (bilinear, aspect ratio not kept): a photo classified by a model
    fine-tuned on a folder goes through exactly this step too."""
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(image)


def decode_image(path: str, image_size: int, caps: ImageLimits | None = None) -> np.ndarray:
    """One file -> uint8 ``(image_size, image_size, 3)``, through the image gate
    (:mod:`explorer.data.images`: format from the content, pixel and decoded-byte caps, one frame);
    every failure is a :class:`DataError` naming the file.

    A JPEG over a megapixel, and at least twice ``image_size`` on each side, is decoded by
    libjpeg at 1/2, 1/4 or 1/8 of its size (still at least ``image_size``) before the same
    bilinear resize, so a folder of 12-megapixel phone photos neither fills the memory of four
    decoder threads nor takes a second a file; CIFAR-sized files are decoded exactly as before."""
    try:
        with open_image(path, path, caps, aspect=False) as opened:  # a data set squashes to a square by design
            image = decode_frame(opened, path, at_least=image_size)
        return folder_pixels(image, image_size)
    except ImageError as error:
        raise DataError(f"Could not read a file of the data set: {error} Remove or replace the file.") from error
    except Exception as error:  # noqa: BLE001 - Pillow's plugins raise OSError, SyntaxError, ValueError...
        raise DataError(
            f"Could not read {path} ({type(error).__name__}: {error}). Remove or replace the file."
        ) from error


def decode_all(
    root: Path, relatives: list[str], image_size: int, progress: ProgressCallback | None
) -> torch.Tensor:
    """Decode every file in parallel threads into one uint8 ``(N, 3, S, S)`` tensor."""
    total = len(relatives)
    caps = ImageLimits.current()  # the environment read once per folder, not once per file
    pixels = np.empty((total, image_size, image_size, 3), dtype=np.uint8)

    def decode_chunk(start: int) -> int:
        stop = min(start + _DECODE_CHUNK, total)
        for i in range(start, stop):
            # Each task writes its own rows of `pixels`, so the threads never share memory.
            pixels[i] = decode_image(os.path.join(root, relatives[i]), image_size, caps)
        return stop - start

    # Threads, not processes: Pillow releases the GIL while it decodes, and the results land
    # straight in one shared array with nothing to pickle. For CIFAR-sized JPEGs most of the
    # ~200 µs per file is Pillow's Python-level header parsing, which holds the GIL, so more
    # than a few threads only queue for it (measured: 4 threads on 2 cores were 1.5× slower).
    executor = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="decode")
    try:
        pending = {executor.submit(decode_chunk, start) for start in range(0, total, _DECODE_CHUNK)}
        done_count, reported = 0, 0
        report_progress(progress, 0, total)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                done_count += future.result()  # re-raises the first unreadable image
            if done_count - reported >= _PROGRESS_EVERY or (not pending and done_count > reported):
                report_progress(progress, done_count, total)
                reported = done_count
    finally:
        # On an error, do not wait for the remaining chunks to be decoded only to be discarded.
        executor.shutdown(wait=True, cancel_futures=True)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
