"""Data-parallel training under ``torchrun`` (DistributedDataParallel); a no-op in a single process.

    torchrun --standalone --nproc_per_node 4 -m trustkit train --model resnet --dataset cifar10 ...

Each process trains on every world_size-th image of each epoch's permutation; gradients are averaged by DDP;
only rank 0 evaluates, logs and saves.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Distributed:
    """Rank and world size of this process (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    active: bool = False

    @classmethod
    def single(cls) -> "Distributed":
        return cls()

    @classmethod
    def from_environment(cls) -> "Distributed":
        """Join the process group that torchrun describes in RANK / WORLD_SIZE / MASTER_ADDR, if any."""
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            return cls.single()
        import torch.distributed as dist

        if not dist.is_initialized():
            _prefer_loopback_for_single_node()
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """Each process drives its own GPU (cuda:LOCAL_RANK)."""
        if self.active and requested.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return requested

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This process's share of an epoch's permutation (equal sizes, so every rank runs the same steps)."""
        if not self.active:
            return order
        per_rank = len(order) // self.world_size
        return order[self.rank * per_rank:(self.rank + 1) * per_rank]

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return value
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value)
        return value / self.world_size

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.destroy_process_group()


def _prefer_loopback_for_single_node() -> None:
    """Point gloo at the loopback interface when every rank runs on this machine.

    gloo otherwise binds to whatever the host name resolves to, which in containers and sandboxes is often
    an address the ranks cannot reach; a user's own GLOO_SOCKET_IFNAME always wins.
    """
    if "GLOO_SOCKET_IFNAME" in os.environ:
        return
    if os.environ.get("LOCAL_WORLD_SIZE") != os.environ.get("WORLD_SIZE"):
        return
    import socket

    loopback = [name for _, name in socket.if_nameindex() if name == "lo" or name.startswith("lo0")]
    if loopback:
        os.environ["GLOO_SOCKET_IFNAME"] = loopback[0]
