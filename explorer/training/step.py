"""One training step of §4.2, to be read beside the paper.

"We use SGD with a mini-batch size of 128 [...] weight decay of 0.0001 and a momentum of 0.9"
(§4.2, and §3.4 for ImageNet): the optimiser holds the rate, the momentum and the decay;
:func:`train_step` is one iteration of it on one mini-batch: forward, loss, backward, step.

Everything that makes the lab fast or parallel is a layer the engine puts around this
function (:mod:`explorer.training.engine`, :mod:`explorer.training.lockstep`), never a branch
inside it: several models in lock-step on the same batch, model threads, one host sync per
step for all of them, the warm-up rate and the schedule, mixed precision (``model`` computes
under autocast), torch.compile and DistributedDataParallel (``model`` is wrapped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A gradient scaler that passes everything through: the step of an fp32 or bf16 run. fp16 runs
# get an enabled one from the engine (their small gradients would underflow unscaled).
NO_SCALING = torch.amp.GradScaler("cuda", enabled=False)


@dataclass(frozen=True)
class StepMetrics:
    """What one step measured, still on the device: reading a number on the host waits for
    the device, so the engine reads every model's numbers at once, after the step."""

    loss: Tensor  # the mini-batch's mean cross-entropy (0-dim)
    wrong: Tensor  # how many of its images the model got wrong, before this step's update (0-dim)
    grad_norms: Tensor | None  # ‖∂loss/∂W‖ of each of ``layers``, input to output; None when not asked


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, labels: Tensor, *,
               label_smoothing: float = 0.0, layers: Sequence[nn.Parameter] = (),
               scaler: torch.amp.GradScaler = NO_SCALING) -> StepMetrics:
    """One SGD iteration on one mini-batch (§4.2): forward, loss, backward, optimiser step.

    ``layers`` are the weights whose gradient norms to measure (the lab's heatmaps; none by
    default). ``scaler`` is fp16's gradient scaler; the default changes nothing."""
    logits = model(images)  # forward: class scores, one row per image
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)  # the softmax loss
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # backward: ∂loss/∂W for every weight W
    scaler.unscale_(optimizer)  # (fp16: the gradients back in true units)
    grad_norms = torch.stack([torch.linalg.vector_norm(w.grad) for w in layers]) if layers else None
    scaler.step(optimizer)  # v ← momentum · v + ∂loss/∂W + decay · W;  W ← W − lr · v
    scaler.update()
    wrong = (logits.argmax(1) != labels).sum()
    return StepMetrics(loss.detach(), wrong, grad_norms)
