"""Warm start: initialise a model from a checkpoint trained on other contrasts (``train.init_from``).

Tensors of the same shape are copied. A tensor that differs in exactly one axis whose sizes are the two
numbers of contrasts is mapped along that axis by contrast name: a contrast the checkpoint knows takes its
slice, a new one the mean of the checkpoint's slices. This covers LPAM-net's step sizes (phases, C) and
the first layer of the joint g (features, C, 3, 3), so a 2-contrast network starts a 3-contrast one with
T1 and T2 treated exactly as before (SPEC.md section 3: N blocks go the same way).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from lpam.checkpoint import load_checkpoint


def _contrast_axis(source: torch.Tensor, target: torch.Tensor, counts: tuple[int, int]) -> int | None:
    """The one axis along which ``source`` and ``target`` differ with sizes ``counts`` (else None)."""
    if source.ndim != target.ndim:
        return None
    differing = [axis for axis, (a, b) in enumerate(zip(source.shape, target.shape)) if a != b]
    if len(differing) == 1 and (source.shape[differing[0]], target.shape[differing[0]]) == counts:
        return differing[0]
    return None


def warm_start(model: nn.Module, path: str | Path, contrasts: Sequence[str]) -> list[str]:
    """Copy the weights of checkpoint ``path`` into ``model`` (trained on ``contrasts``), mapping the
    contrast axis by name; returns the names of tensors left at their initial values."""
    payload = load_checkpoint(path)
    source_contrasts = list(((payload.get("train_config") or {}).get("data") or {}).get("contrasts") or [])
    source_state = payload["model"]
    state = model.state_dict()
    if len(source_contrasts) != len(set(source_contrasts)) or not source_contrasts:
        raise ValueError(f"{path}: the checkpoint does not record the contrasts it was trained on")
    kept = []
    for name, target in state.items():
        source = source_state.get(name)
        if source is None:
            kept.append(name)
            continue
        if source.shape == target.shape:
            state[name] = source.clone()
            continue
        axis = _contrast_axis(source, target, (len(source_contrasts), len(contrasts)))
        if axis is None:
            raise ValueError(f"{path}: {name} has shape {tuple(source.shape)}, the model needs "
                             f"{tuple(target.shape)}; only the number of contrasts may differ")
        mean = source.mean(dim=axis)
        slices = [source.select(axis, source_contrasts.index(c)) if c in source_contrasts else mean for c in contrasts]
        state[name] = torch.stack(slices, dim=axis)
    model.load_state_dict(state)
    return kept
