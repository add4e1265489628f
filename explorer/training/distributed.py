"""Data-parallel training with ``torchrun``: the lab's engine, one process per GPU (or CPU).

``torchrun --nproc_per_node N -m explorer train …`` starts N copies of the CLI and sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each. Every process builds the same models
and loads the same data; :func:`explorer.training.engine.train` then wraps the models in
``DistributedDataParallel`` and gives each rank its own slice of every mini-batch, so the
global batch (and so the learning rate of §4.2) stays what the config says. The paper's
CIFAR nets were trained exactly so: "a mini-batch size of 128 on two GPUs" (§4.2), with
BatchNorm statistics per GPU, which is DDP's default too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from explorer.devices import pick_device


@dataclass(frozen=True)
class Launch:
    """This process's place in a torchrun launch."""

    rank: int  # 0 … world_size - 1; rank 0 prints, writes the run record and saves checkpoints
    world_size: int
    local_rank: int  # rank on this machine: which GPU to use

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launch_from_environment() -> Launch | None:
    """The torchrun launch this process belongs to, or None for a plain ``python -m`` run."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        return Launch(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                      int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))
    except ValueError as error:
        raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers ({error}); "
                         "start the command with torchrun.") from error


def start(launch: Launch, requested_device: str | None = None) -> torch.device:
    """Join the process group and return this rank's device.

    GPUs use nccl with one GPU per local rank; the CPU uses gloo (no GPU needed, which is
    how the tests run two ranks on a laptop).
    """
    device = pick_device(requested_device)
    if device.type == "cuda":
        if launch.local_rank >= torch.cuda.device_count():
            raise ValueError(f"Local rank {launch.local_rank} has no GPU: this machine has "
                             f"{torch.cuda.device_count()}; lower --nproc_per_node.")
        device = torch.device("cuda", launch.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"torchrun training runs on CUDA (nccl) or the CPU (gloo), not {device.type}.")
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=launch.rank, world_size=launch.world_size)
    return device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_and_world_size() -> tuple[int, int]:
    """(rank, number of ranks) of the current process group; (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over all ranks (a copy; the input is unchanged). No-op on one rank."""
    values = values.detach().clone()
    if rank_and_world_size()[1] > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
