"""The one cache of computed results in the app: the last few, by key, shared between threads.

A shared classifier keeps its recent probabilities and Grad-CAM explanations in one
(:class:`explorer.store.classifiers.Classifier`), keyed by what the model saw
(:func:`input_key`); the "Why shortcuts work" page keeps the views it computed, and the images
they were probed with, in others (:mod:`explorer.ui.inside`). Whatever a cache holds is
read-only for everyone who gets it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import torch


class RecentResults:
    """The last ``size`` results of a computation, by key, least recently used out first; safe
    to share between threads (size 0 remembers nothing). In a class the students inspect the
    same sample photos and ask for the same views, and every rerun of a page asks again for
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

    def peek(self, key: Hashable):
        """The result for ``key``, or None, without counting as a use (it does not delay its eviction)."""
        with self._lock:
            return self._results.get(key)

    def get_or_compute(self, key: Hashable, compute: Callable[[], object]):
        """The result for ``key``; when there is none, ``compute()``'s, kept. The computation
        runs outside the lock, so other threads keep reading meanwhile (two threads asking for
        the same missing key at once may both compute it: the results are equal)."""
        result = self.get(key)
        if result is None:
            result = compute()
            self.put(key, result)
        return result

    def put(self, key: Hashable, result) -> None:
        with self._lock:
            self._results[key] = result
            self._results.move_to_end(key)
            while len(self._results) > self.size:
                self._results.popitem(last=False)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._results

    def __len__(self) -> int:
        return len(self._results)


def input_key(model_input: torch.Tensor) -> tuple:
    """A key for what a model sees: equal pixels, equal key (the photo's name and format do not matter)."""
    pixels = model_input.contiguous().cpu()
    return tuple(pixels.shape), hashlib.blake2b(pixels.numpy().tobytes(), digest_size=16).digest()
