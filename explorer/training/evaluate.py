"""What the lab's lock-step training (:mod:`explorer.training.engine`) and fine-tuning
(:mod:`explorer.transfer.finetune`) share: one evaluation pass, one time-left estimate and one rule
for turning a name into a file name.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn

from explorer.data import normalize


def count_wrong(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000, *,
                prepare: Callable[[torch.Tensor], torch.Tensor] = normalize, channels_last: bool = False,
                inference: bool = True) -> int:
    """How many of ``images`` (N, ...) ``model`` gets wrong, in eval mode (BatchNorm's running
    statistics, no dropout), ``batch_size`` at a time. ``prepare`` turns a slice into the
    model's input (default: uint8 images normalised with CIFAR-10's statistics); ``labels``
    may live on another device than the model."""
    was_training = model.training
    model.eval()
    wrong = 0
    with torch.inference_mode() if inference else torch.no_grad():
        for start in range(0, len(labels), batch_size):
            batch = prepare(images[start:start + batch_size])
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            predicted = model(batch).argmax(1)
            wrong = wrong + (predicted != labels[start:start + batch_size].to(predicted.device)).sum()
    model.train(was_training)
    return int(wrong)  # one sync for the whole pass


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000, *,
             prepare: Callable[[torch.Tensor], torch.Tensor] = normalize, channels_last: bool = False,
             inference: bool = True) -> float:
    """Error rate (fraction wrong) of :func:`count_wrong`'s pass; 0 for no images."""
    return count_wrong(model, images, labels, batch_size, prepare=prepare, channels_last=channels_last,
                       inference=inference) / max(1, len(labels))


def eta_s(elapsed_s: float, done: int, total: int) -> float | None:
    """Seconds left at the pace so far (None before anything is done)."""
    return elapsed_s / done * (total - done) if done else None


def safe_name(name: str, separator: str = "-") -> str:
    """``name`` as one plain file-name segment (a manifest key, a run file): letters, digits,
    dot, dash and underscore, every other run of characters replaced by ``separator``, at
    most 80 characters; "" when nothing is left. "demo-folder:/a/b" -> "demo-folder-a-b"."""
    return re.sub(r"[^A-Za-z0-9_.-]+", separator, name.strip()).strip("-._")[:80]
