"""What the lab's lock-step training (:mod:`explorer.training.engine`), fine-tuning
(:mod:`explorer.transfer.finetune`) and the "Why shortcuts work" views (:mod:`explorer.paper.inside`)
share: one evaluation pass (:func:`evaluate`, loss and error together), one time-left estimate
and one rule for turning a name into a file name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from explorer.data import normalize


@dataclass(frozen=True)
class Evaluation:
    """One pass of a model over labelled images it does not learn from: the top-1 error that
    §4.2's curves and Table 6 report, and the mean cross-entropy loss that the loss surfaces plot."""

    loss: float  # mean cross-entropy over the images (0 for no images)
    wrong: int  # images whose most probable class is not their label
    images: int

    @property
    def error(self) -> float:
        """Top-1 error as a fraction (0 for no images)."""
        return self.wrong / max(1, self.images)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000, *,
             prepare: Callable[[torch.Tensor], torch.Tensor] = normalize, channels_last: bool = False,
             inference: bool = True) -> Evaluation:
    """``model``'s loss and error on ``images`` (N, ...), in eval mode (BatchNorm's running
    statistics, no dropout), ``batch_size`` at a time. ``prepare`` turns a slice into the
    model's input on its device (default: uint8 images normalised with CIFAR-10's statistics);
    ``labels`` may live on another device than the model. The device is waited for once, at
    the end of the pass."""
    was_training = model.training
    model.eval()
    wrong, losses = 0, []
    with torch.inference_mode() if inference else torch.no_grad():
        for start in range(0, len(labels), batch_size):
            batch = prepare(images[start:start + batch_size])
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            logits = model(batch).float()
            target = labels[start:start + batch_size].to(logits.device)
            losses.append(F.cross_entropy(logits, target, reduction="sum"))
            wrong = wrong + (logits.argmax(1) != target).sum()
    model.train(was_training)
    # Summed batch by batch in float64, as a Python float adds them: one sync for the whole pass.
    total_loss = sum(torch.stack(losses).tolist()) if losses else 0.0
    return Evaluation(loss=total_loss / max(1, len(labels)), wrong=int(wrong), images=len(labels))


def eta_s(elapsed_s: float, done: int, total: int) -> float | None:
    """Seconds left at the pace so far (None before anything is done)."""
    return elapsed_s / done * (total - done) if done else None


def safe_name(name: str, separator: str = "-") -> str:
    """``name`` as one plain file-name segment (a manifest key, a run file): letters, digits,
    dot, dash and underscore, every other run of characters replaced by ``separator``, at
    most 80 characters; "" when nothing is left. "demo-folder:/a/b" -> "demo-folder-a-b"."""
    return re.sub(r"[^A-Za-z0-9_.-]+", separator, name.strip()).strip("-._")[:80]
