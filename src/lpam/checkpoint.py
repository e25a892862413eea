"""Checkpoints: written atomically, carrying the model configuration so that they rebuild their model, and
a SHA-256 checksum of every tensor they hold, verified on load (a changed byte is an error, not garbage
weights). Files written before the checksum existed (the shipped weights) load as legacy files."""
from __future__ import annotations

import hashlib
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from lpam.device import resolve_device
from lpam.io import atomic_path
from lpam.models.registry import build_model, model_config_from_dict, model_type_of
from lpam.models.shipped import SHIPPED, WEIGHTS_DIR

FORMAT = "lpam-checkpoint-v1"
SHIPPED_WEIGHTS = WEIGHTS_DIR / SHIPPED[0].weights  # the default, convergent LPAM-net (docs/method.md section 4b)
CHECKSUM_KEY = "tensor_sha256"
TRAINING_KEYS = ("position", "optimizer", "best_score", "train_config")  # what `lpam train --resume` needs
INFERENCE_OPTIONS = ("convergent_phases",)  # LPAM-net options that leave its weights as they are


def _tensors(value: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside nested dicts / lists / tuples, with its path, in a fixed (sorted) order."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            if not (path == "" and key == CHECKSUM_KEY):
                yield from _tensors(value[key], f"{path}/{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{path}/{index}")


def tensor_checksum(payload: dict[str, Any]) -> str:
    """SHA-256 over the path, dtype, shape and bytes of every tensor in ``payload``."""
    digest = hashlib.sha256()
    for path, tensor in _tensors(payload):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{path}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, extra: dict[str, Any] | None = None) -> None:
    """torch.save of the model state with its type and configuration (and ``extra``), atomically."""
    payload = {"format": FORMAT, "model_type": model_type_of(model.config), "model_config": model.config.to_dict(),
               "model": model.state_dict(), **(extra or {})}
    payload.update(model.checkpoint_extras())
    payload[CHECKSUM_KEY] = tensor_checksum(payload)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint, with a clear error for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path} is not a readable checkpoint (corrupt or truncated?): {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an lpam checkpoint (format {FORMAT!r} expected)")
    stored = payload.get(CHECKSUM_KEY)
    if stored is not None and stored != tensor_checksum(payload):
        raise ValueError(f"{path} is corrupt: its tensors do not match the checksum stored when it was saved "
                         "(changed or damaged bytes); restore the file or retrain")
    return payload


def checkpoint_contrasts(payload: dict[str, Any]) -> list[str]:
    """The contrasts a checkpoint's training config names (empty if it records none)."""
    return list(((payload.get("train_config") or {}).get("data") or {}).get("contrasts") or [])


def load_training_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """:func:`load_checkpoint` of a checkpoint that `lpam train --resume` continues from (a run's last.pt),
    with an error naming the file when it holds no training position (a best.pt or exported model)."""
    payload = load_checkpoint(path, map_location)
    absent = [key for key in TRAINING_KEYS if key not in payload]
    if absent:
        raise ValueError(f"--resume: {path} holds no training position ({', '.join(absent)} missing): it is a "
                         "model checkpoint (such as best.pt), not the last.pt a run writes while training")
    return payload


def load_model(path: str | Path | None = None, map_location: str | torch.device = "cpu") -> nn.Module:
    """The model stored in ``path`` (default: the shipped LPAM-net), in eval mode."""
    return load_model_with_checkpoint(path, map_location)[0]


def load_model_with_checkpoint(path: str | Path | None = None,
                               map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_model` and the checkpoint it was built from (its train_config, ...), the file read once."""
    path = SHIPPED_WEIGHTS if path is None else Path(path)
    map_location = resolve_device(map_location)
    payload = load_checkpoint(path, map_location)
    config = model_config_from_dict(payload["model_config"], payload.get("model_type", "lpam-net"))
    model = build_model(config)
    model.load_checkpoint_extras(payload)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not match the stored model configuration: {error}") from error
    return model.to(map_location).eval(), payload


def set_inference_options(path: str | Path, changes: dict[str, Any]) -> dict[str, Any]:
    """Change, in the LPAM-net checkpoint ``path`` (atomically; weights untouched), options that apply at
    inference: the algorithm's constants (lpam.algorithm.lpam.Constants, e.g. ``learned_backtracks``) and
    :data:`INFERENCE_OPTIONS`. Returns the new model configuration (checked by rebuilding it)."""
    from lpam.algorithm.lpam import Constants

    payload = load_checkpoint(path)
    if payload.get("model_type", "lpam-net") != "lpam-net":
        raise ValueError(f"{path} holds a {payload['model_type']} model; inference options apply to LPAM-net")
    constant_names = {field.name for field in fields(Constants)}
    unknown = sorted(set(changes) - constant_names - set(INFERENCE_OPTIONS))
    if unknown:
        raise ValueError(f"unknown inference option(s) {unknown}; choose from {', '.join(INFERENCE_OPTIONS)} "
                         f"and the constants {', '.join(sorted(constant_names))}")
    constants = {name: value for name, value in changes.items() if name in constant_names}
    config = dict(payload["model_config"])
    config.update({name: value for name, value in changes.items() if name in INFERENCE_OPTIONS})
    if constants:
        config["constants"] = {**(config.get("constants") or {}), **constants}
        payload["constants"] = {**payload.get("constants", {}), **constants}
        Constants(**payload["constants"])
    model_config_from_dict(config, "lpam-net")
    payload["model_config"] = config
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return config
