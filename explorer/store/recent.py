"""What a shared classifier remembers: recent results by key (explorer/classify.py)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable

import torch


class RecentResults:
    """The last ``size`` results of a computation, by key, least recently used out first; safe
    to share between threads (size 0 remembers nothing). A classifier keeps one: in a class,
    the students inspect the same sample photos, and every rerun of a page asks again for
    what it showed a moment ago; the results are read-only for everyone who gets them."""

    def __init__(self, size: int):
        self.size = size
        self._results: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        """The result for ``key``, or None."""
        with self._lock:
            if key not in self._results:
                return None
            self._results.move_to_end(key)
            return self._results[key]

    def put(self, key: Hashable, result) -> None:
        with self._lock:
            self._results[key] = result
            self._results.move_to_end(key)
            while len(self._results) > self.size:
                self._results.popitem(last=False)

    def __len__(self) -> int:
        return len(self._results)


def input_key(model_input: torch.Tensor) -> tuple:
    """A key for what a model sees: equal pixels, equal key (the photo's name and format do not matter)."""
    pixels = model_input.contiguous().cpu()
    return tuple(pixels.shape), hashlib.blake2b(pixels.numpy().tobytes(), digest_size=16).digest()
