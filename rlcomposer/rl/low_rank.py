"""Low-rank updates of a network's weight matrices (LoRA, Hu et al. 2021).

Every weight matrix ``W`` of the network (embeddings, the GRU's input and recurrent weights, the
output head) is frozen and read as ``W + U·D``, with ``U`` (rows × rank) starting at zero and ``D``
(rank × columns) small and random: at the start the network computes exactly what it did, and
training moves only ``U`` and ``D``, a few thousand numbers where the whole network has hundreds
of thousands. Biases stay frozen. :func:`merged_state_dict` folds the updates back into plain
weights, so a network tuned this way saves and loads like any other.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize


class LowRankUpdate(nn.Module):
    """``W ↦ W + U·D``: a trainable update of rank ``rank`` to a frozen ``rows × columns`` weight."""

    def __init__(self, rows: int, columns: int, rank: int):
        super().__init__()
        self.up = nn.Parameter(torch.zeros(rows, rank))
        self.down = nn.Parameter(torch.randn(rank, columns) / math.sqrt(columns))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.up @ self.down


def add_low_rank_updates(network: nn.Module, rank: int) -> int:
    """Freeze every parameter of ``network`` and give each of its weight matrices a
    :class:`LowRankUpdate` of ``rank``; returns how many numbers are now trained."""
    if rank < 1:
        raise ValueError(f"a low-rank update needs a rank of 1 or more, got {rank}")
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    targets = [(module, name, parameter) for module in network.modules()
               for name, parameter in list(module.named_parameters(recurse=False)) if parameter.dim() == 2]
    for module, name, parameter in targets:
        parametrize.register_parametrization(module, name, LowRankUpdate(*parameter.shape, rank))
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def merged_state_dict(network: nn.Module) -> dict[str, torch.Tensor]:
    """``network``'s state with every low-rank update folded into its weight (plain names, as
    the network had before :func:`add_low_rank_updates`)."""
    state = network.state_dict()
    for prefix, module in network.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        head = f"{prefix}." if prefix else ""
        for name in module.parametrizations.keys():
            for key in [k for k in state if k.startswith(f"{head}parametrizations.{name}.")]:
                del state[key]
            with torch.no_grad():
                state[f"{head}{name}"] = getattr(module, name).detach().clone()
    return state


__all__ = ["LowRankUpdate", "add_low_rank_updates", "merged_state_dict"]
