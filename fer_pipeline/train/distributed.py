"""Data-parallel training under `torchrun` (DistributedDataParallel).

`torchrun --nproc_per_node N $(which fer) train-meta` starts N processes with
RANK / WORLD_SIZE / LOCAL_RANK set; run without torchrun, everything here is a
no-op (world of one). NCCL on GPUs, gloo on CPU. The batch size in params is per
process, as in torchvision's reference scripts: the global batch is N times it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def init(device_type: str) -> World:
    """Join the process group torchrun describes in the environment (if any)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    if device_type == "cuda":
        torch.cuda.set_device(world.local_rank)
    return world


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    if not world.distributed:
        return model
    ids = [device.index if device.index is not None else world.local_rank] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def mean_over_ranks(value: float, world: World, device: torch.device) -> float:
    """The mean of a scalar over all processes (every rank gets the same number)."""
    if not world.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item() / world.size)


def weights_digest(*models: torch.nn.Module) -> str:
    """SHA-256 of the models' parameters: equal digests mean equal learned weights.

    Buffers (BatchNorm running statistics) are left out: under DDP each rank updates
    them from its own slice, and DDP re-broadcasts rank 0's at every forward."""
    h = hashlib.sha256()
    for model in models:
        for name, tensor in unwrap(model).named_parameters():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
