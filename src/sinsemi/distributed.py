"""Where this process stands in a DDP world, and the few collectives the pipeline needs.

Lightning's DDP strategy starts the processes and the process group (``torch.distributed``); this
module only asks about them. Before the group exists (the checks and writes before a fit) the rank
comes from the launcher's environment: the keys Lightning's ``rank_zero_only`` reads (``RANK``,
``LOCAL_RANK``, ``SLURM_PROCID``, ...), plus ``NODE_RANK`` (Lightning's launcher on a second node).
Outside a DDP world every function gives the single-process answer (rank 0 of 1).
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: the environment keys a launcher sets to a process's rank; any of them > 0: not the writer
RANK_ENV = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def _group():
    """``torch.distributed`` when a process group is up (after a DDP fit in this process), else None."""
    dist = sys.modules.get("torch.distributed")  # not imported yet: no group (and no torch import for it)
    return dist if dist is not None and dist.is_available() and dist.is_initialized() else None


def is_global_zero() -> bool:
    """Whether this process is rank 0: the one that writes files, evaluates and logs."""
    d = _group()
    if d is not None:
        return d.get_rank() == 0
    return all(int(os.environ.get(k) or 0) == 0 for k in RANK_ENV)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the live process group; (0, 1) without one."""
    d = _group()
    return (d.get_rank(), d.get_world_size()) if d is not None else (0, 1)


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` without a group."""
    d = _group()
    if d is None:
        return [obj]
    out: list[Any] = [None] * d.get_world_size()
    d.all_gather_object(out, obj)
    return out
