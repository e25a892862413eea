"""`lpam train`: progressive-phase training of LPAM-net (or the U-Net baseline) with validation, logs, atomic checkpoints and
exact resume (docs/method.md section 4).

Loss per contrast: MSE(|x_hat|, x) + ssim_weight * (1 - SSIM(|x_hat|, x)); the training SSIM is
torchmetrics' (7x7 uniform window, differentiable); reported SSIM is scikit-image's (lpam.metrics).
Adam with two learning rates: ``lr`` for the CNN(s), ``lr_steps`` for alpha, tau, abar and eps0.
Every random choice of a sample comes from a generator seeded by (seed, stage, epoch, index), so a
resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from torchmetrics.functional.image import structural_similarity_index_measure
from tqdm import tqdm

from lpam.checkpoint import load_training_checkpoint, save_checkpoint
from lpam.data.embedded import simulate_kspace, simulate_multicoil_kspace
from lpam.data.sources import EvaluationData, load_evaluation_data
from lpam.device import peak_memory_mib
from lpam.io import atomic_path
from lpam.metrics import evaluate_contrasts
from lpam.models.lpam_net import LPAMNet
from lpam.models.registry import build_model
from lpam.physics.coils import mask_per_coil, sensitivity_combine, simulate_coil_maps
from lpam.physics.masks import make_mask
from lpam.training.augment import augment_images, augment_measured, augment_measured_coils, noise_level, random_phase
from lpam.training.config import MaskConfig, TrainConfig
from lpam.training.distributed import barrier, join_process_group, leave_process_group, mean_over_processes
from lpam.training.warm_start import warm_start


@lru_cache(maxsize=512)
def _cached_mask(kind: str, shape: tuple[int, int], rate: float | None, acceleration: float | None,
                 center_fraction: float | None, seed: int) -> torch.Tensor:
    mask = make_mask(kind, shape, rate=rate, acceleration=acceleration, center_fraction=center_fraction, seed=seed)
    return torch.from_numpy(np.ascontiguousarray(mask))


def mask_for(config: MaskConfig, shape: tuple[int, int], index: int) -> torch.Tensor:
    """Mask number ``index`` of the pool: the setting :meth:`MaskConfig.setting` gives it, seed
    ``config.seed + index`` (cached: masks are reused)."""
    setting = config.setting(index)
    return _cached_mask(setting.kind, tuple(shape), setting.rate, setting.acceleration, setting.center_fraction,
                        config.seed + index)


def validation_masks(config: MaskConfig, shape: tuple[int, int], count: int) -> torch.Tensor:
    """The validation mask: mask 0 of the pool (H, W); with a mask ``mix``, mask i mod (1 + len(mix)) for
    validation slice i, (count, 1, H, W), so that every setting of the mix is validated."""
    if not config.mix:
        return mask_for(config, shape, 0)
    settings = len(config.settings())
    return torch.stack([mask_for(config, shape, i % settings) for i in range(count)])[:, None]


@lru_cache(maxsize=8)
def coil_maps_for(num_coils: int, shape: tuple[int, int]) -> torch.Tensor:
    """The simulated coil maps (Nc, H, W) of multi-coil training (:func:`simulate_coil_maps`, cached per shape)."""
    return simulate_coil_maps(num_coils, shape)


def training_loss(recon: torch.Tensor, target: torch.Tensor, ssim_weight: float) -> torch.Tensor:
    """sum_j MSE(|x_hat_j|, x_j) + ssim_weight (1 - SSIM(|x_hat_j|, x_j))."""
    magnitude = recon.abs()
    loss = recon.new_zeros((), dtype=magnitude.dtype)
    for j in range(target.shape[1]):
        pred, true = magnitude[:, j : j + 1], target[:, j : j + 1]
        ssim = structural_similarity_index_measure(pred, true, gaussian_kernel=False, kernel_size=7, data_range=1.0)
        loss = loss + torch.mean((pred - true) ** 2) + ssim_weight * (1 - ssim)
    return loss


def stored_coils(data: EvaluationData, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(coil images, coil maps) (S, C, Nc, H, W) of a dataset prepared with ``--keep-coils`` when
    ``data.coil_maps`` is ``measured``, else None; errors name the dataset."""
    if config.data.coil_maps != "measured":
        return None
    if data.coil_images is None:
        raise ValueError(f"{data.source}: data.coil_maps 'measured' needs a dataset prepared with --measured-kspace "
                         "--keep-coils (measured multi-coil k-space)")
    if config.data.coils not in (None, data.coil_images.shape[2]):
        raise ValueError(f"{data.source}: holds {data.coil_images.shape[2]} coils, data.coils is {config.data.coils}")
    return data.coil_images, data.maps


def make_batch(
    images: torch.Tensor, indices: list[int], config: TrainConfig, seed_key: tuple[int, ...],
    measured_coils: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(k-space, per-sample masks (B, H, W), augmented targets (B, C, H, W), coil maps). Magnitude images:
    k-space simulated from the augmented target with a random phase and noise. Complex images (measured
    k-space, lpam.data.prepared): y = P F x of the flipped / rescaled image (:func:`augment_measured`),
    target |x|, no phase or noise added (docs/method.md section 7).

    Single-coil (``data.coils`` null): k-space (B, C, H, W), maps None. With ``data.coils`` = N: k-space
    (B, C, N, H, W), y_c = P F (S_c x) + P n_c with the simulated maps S (:func:`coil_maps_for`), returned
    as (B, N, H, W); the noise n_c is drawn independently per coil with the sample's noise level. For
    measured complex images x the coils are simulated from x alike, with no noise added. With
    ``measured_coils`` (:func:`stored_coils`): y_c = P F x_c of the measured coil images x_c, flipped and
    scaled with their maps S (:func:`augment_measured_coils`), maps (B, C, Nc, H, W), target
    |sum_c conj(S_c) x_c|; nothing simulated."""
    coils = config.data.coils
    kspaces, masks, targets, maps = [], [], [], []
    for index in indices:
        rng = np.random.default_rng([config.train.seed, *seed_key, index])
        if measured_coils is not None:
            coil_images, sample_maps = augment_measured_coils(measured_coils[0][index], measured_coils[1][index],
                                                              config.data.augment, rng)
            target = sensitivity_combine(coil_images, sample_maps).abs()
        elif images.is_complex():
            complex_image = augment_measured(images[index], config.data.augment, rng)
            target = complex_image.abs()
        else:
            target = augment_images(images[index], config.data.augment, rng)
        mask = mask_for(config.data.mask, tuple(target.shape[-2:]), int(rng.integers(config.data.mask.pool)))
        noise = 0.0
        if not images.is_complex():
            noise = noise_level(config.data.augment, rng)
            complex_image = random_phase(target, config.data.augment, rng)
        seed = int(rng.integers(2**31))
        if measured_coils is not None:
            kspaces.append(simulate_kspace(coil_images, mask))
            maps.append(sample_maps)
        elif coils is None:
            kspaces.append(simulate_kspace(complex_image, mask, noise_std=noise, seed=seed))
        else:
            sample_maps = coil_maps_for(coils, tuple(target.shape[-2:]))
            kspaces.append(simulate_multicoil_kspace(complex_image[None], mask, sample_maps, noise, seed)[0])
            maps.append(sample_maps)
        masks.append(mask)
        targets.append(target)
    return torch.stack(kspaces), torch.stack(masks), torch.stack(targets), torch.stack(maps) if maps else None


ValidationData = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]


def validation_data(config: TrainConfig) -> ValidationData:
    """The validation split with the first mask of the pool (seed ``mask.seed``), noise-free, no augmentation:
    (k-space, mask, targets |x|, coil maps); x complex for measured k-space. Single-coil: k-space P F x,
    maps None; with ``data.coils``: k-space (S, C, N, H, W) P F (S_c x) and the simulated maps (S, N, H, W);
    with measured coils: P F x_c and the stored maps (S, C, Nc, H, W)."""
    split = load_evaluation_data(config.data.source, config.data.val_split, contrasts=config.data.contrasts)
    chosen = slice(config.train.val_slices)
    images = split.images[chosen]
    shape = tuple(images.shape[-2:])
    mask = validation_masks(config.data.mask, shape, images.shape[0])
    measured_coils = stored_coils(split, config)
    if measured_coils is not None:
        coil_images, maps = (tensor[chosen] for tensor in measured_coils)
        return simulate_kspace(coil_images, mask_per_coil(mask)), mask, images.abs(), maps
    if config.data.coils is None:
        return simulate_kspace(images, mask), mask, images.abs(), None
    maps = coil_maps_for(config.data.coils, shape)
    return simulate_multicoil_kspace(images, mask, maps), mask, images.abs(), maps.expand(images.shape[0], -1, -1, -1)


@torch.no_grad()
def validate(model: nn.Module, data: ValidationData, phases: int, mode: str, contrasts: list[str],
             device: torch.device) -> dict[str, dict]:
    """scikit-image metrics per contrast on the validation slab, one slice at a time."""
    kspace, mask, images, maps = data
    model.eval()
    recons = [model(kspace[i : i + 1].to(device), (mask[i] if mask.ndim == 4 else mask).to(device), phases=phases,
                    mode=mode, maps=None if maps is None else maps[i : i + 1].to(device)).cpu()
              for i in range(kspace.shape[0])]
    model.train()
    return evaluate_contrasts(torch.cat(recons).numpy(), images.numpy(), contrasts)


@dataclass
class Position:
    """Where training stands: stage, epoch within the stage, next sample position, global counters."""

    stage: int = 0
    epoch: int = 0
    sample: int = 0
    global_step: int = 0
    global_epoch: int = 0


def seeded_model(config: TrainConfig) -> nn.Module:
    """The model of ``config`` with its random initial weights drawn from ``train.seed`` (the global torch
    generator is left as it was), so two runs of one config start from identical weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return build_model(config.model)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam: ``lr`` for the networks, ``lr_steps`` for LPAM-net's step sizes and eps0 (if the model has any)."""
    steps = model.step_size_parameters() if isinstance(model, LPAMNet) else []
    step_ids = {id(p) for p in steps}
    groups = [{"params": [p for p in model.parameters() if id(p) not in step_ids], "lr": config.train.lr}]
    if steps:
        groups.append({"params": steps, "lr": config.train.lr_steps})
    return torch.optim.Adam(groups)


def _truncate_csv(path: Path, keep: Callable[[dict[str, str]], bool]) -> None:
    """Rewrite the log ``path`` (atomically) with only the rows for which ``keep`` is true."""
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, [row for row in reader if keep(row)]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields or [])
        writer.writeheader()
        writer.writerows(rows)


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _config_text(config: TrainConfig) -> str:
    return yaml.safe_dump(json.loads(json.dumps(config.to_dict())), sort_keys=False)


def _resumed_position(started: dict, config: TrainConfig, position: Position) -> Position:
    """A resumed run keeps its config, except that train.schedule may grow (to extend a run across
    sessions): unfinished stages, or the last stage of a finished run, may gain epochs and new stages may
    follow. Returns where to continue."""
    # read through TrainConfig, so a config written before a key existed gains that key's default
    old = json.loads(json.dumps(TrainConfig.from_dict(started).to_dict()))
    new = json.loads(json.dumps(config.to_dict()))
    old_schedule, new_schedule = old["train"].pop("schedule"), new["train"].pop("schedule")
    last = len(old_schedule) - 1
    if (position.stage > last and len(new_schedule) > last
            and new_schedule[last]["epochs"] > old_schedule[last]["epochs"]):
        position = Position(last, old_schedule[last]["epochs"], 0, position.global_step, position.global_epoch)
    extends = len(new_schedule) >= len(old_schedule) and all(
        n["phases"] == o["phases"] and n.get("mode") == o.get("mode")
        and (n["epochs"] == o["epochs"] if i < position.stage else n["epochs"] >= o["epochs"])
        for i, (o, n) in enumerate(zip(old_schedule, new_schedule))
    )
    if old != new or not extends:
        raise ValueError("--resume: the config differs from the one this run started with; only train.schedule "
                         "may grow (more epochs for unfinished stages or the last stage, more stages)")
    return position


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False, quiet: bool = False) -> Path:
    """Train per ``config`` into ``run_dir`` (last.pt, best.pt, train.csv, val.csv, events); returns best.pt."""
    from torch.utils.tensorboard import SummaryWriter

    run_dir = Path(run_dir)
    group, device = join_process_group(config.train.device)
    if config.train.batch_size % group.world_size:
        raise ValueError(f"train.batch_size {config.train.batch_size} (the global batch) must be a multiple of the "
                         f"number of processes {group.world_size}")
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    model = seeded_model(config).to(device)
    optimizer = build_optimizer(model, config)
    position, best_score = Position(), -math.inf
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint {last_path} to resume from")
        checkpoint = load_training_checkpoint(last_path, map_location=device)
        position = _resumed_position(checkpoint["train_config"], config, Position(**checkpoint["position"]))
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        best_score = checkpoint["best_score"]
    elif run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise FileExistsError(f"{run_dir} is not an empty folder (it holds a run or other files); use --resume to "
                              "continue a run, or choose another --out (or delete the folder)")
    elif config.train.init_from is not None:
        warm_start(model, config.train.init_from, config.data.contrasts)
    if not resume and config.train.init_alpha is not None:
        with torch.no_grad():
            model.alpha.fill_(config.train.init_alpha)
    barrier(group)  # every process has checked the run directory before rank 0 writes to it
    if group.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:  # drop log rows written after last.pt: they are redone, and must appear once
            _truncate_csv(run_dir / "train.csv", lambda row: int(row["step"]) <= position.global_step)
            _truncate_csv(run_dir / "val.csv", lambda row: int(row["epoch"]) < position.global_epoch)
        with atomic_path(run_dir / "config.yaml") as tmp:
            tmp.write_text(_config_text(config))
    network = model
    if group.distributed:  # abar is unused in plain mode, hence find_unused_parameters
        network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=True)

    train_data = load_evaluation_data(config.data.source, config.data.train_split, contrasts=config.data.contrasts)
    images, measured_coils = train_data.images, stored_coils(train_data, config)
    val_data = validation_data(config) if group.is_main else None
    writer = SummaryWriter(log_dir=str(run_dir / "events"), purge_step=position.global_step) if group.is_main else None
    schedule = config.train.schedule
    sampler = DistributedSampler(range(images.shape[0]), num_replicas=group.world_size, rank=group.rank,
                                 shuffle=True, seed=config.train.seed)
    local_batch = config.train.batch_size // group.world_size
    per_epoch = len(range(0, len(sampler), local_batch))
    if config.train.steps_per_epoch is not None:
        per_epoch = min(per_epoch, config.train.steps_per_epoch)
    total_steps = per_epoch * sum(stage.epochs for stage in schedule)
    bar = tqdm(total=total_steps, initial=position.global_step, desc="train", disable=quiet or not group.is_main,
               dynamic_ncols=True)

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, model, extra={"optimizer": optimizer.state_dict(), "position": vars(position),
                                            "best_score": best_score, "train_config": config.to_dict()})

    while position.stage < len(schedule):
        stage = schedule[position.stage]
        # this process's shard of the epoch's permutation; global batch b is the union of every shard's batch b
        sampler.set_epoch(position.global_epoch)
        order = list(sampler)
        batches = [order[i : i + local_batch] for i in range(0, len(order), local_batch)][:per_epoch]
        for b in range(position.sample, len(batches)):
            started = time.perf_counter()
            kspace, masks, targets, maps = make_batch(images, batches[b], config, (position.stage, position.epoch),
                                                      measured_coils)
            # only LPAM-net takes measure_descent (config.validate allows descent_weight for it alone)
            options = {"measure_descent": True} if config.train.descent_weight > 0 else {}
            recon = network(kspace.to(device), masks.to(device), phases=stage.phases,
                            mode=config.train.stage_mode(stage), maps=None if maps is None else maps.to(device),
                            **options)
            loss = training_loss(recon, targets.to(device), config.train.ssim_weight)
            if config.train.descent_weight > 0:
                loss = loss + config.train.descent_weight * model.descent_violation
            loss_value = mean_over_processes(loss, group)
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"training loss is not finite at step {position.global_step}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            position.sample, position.global_step = b + 1, position.global_step + 1
            seconds = time.perf_counter() - started
            if not group.is_main:
                continue
            _append_csv(run_dir / "train.csv", {"step": position.global_step, "epoch": position.global_epoch,
                                               "phases": stage.phases, "loss": loss_value, "seconds": round(seconds, 3),
                                               "peak_mib": round(peak_memory_mib(device, reset=True))})
            writer.add_scalar("train/loss", loss_value, position.global_step)
            bar.set_postfix(phases=stage.phases, loss=f"{loss_value:.4f}")
            bar.update(1)
            if position.global_step % config.train.checkpoint_every == 0:
                checkpoint(last_path)
        finished_epoch = position.global_epoch
        position.sample, position.epoch, position.global_epoch = 0, position.epoch + 1, position.global_epoch + 1
        if position.epoch >= stage.epochs:
            position.stage, position.epoch = position.stage + 1, 0
        if not group.is_main:
            continue
        metrics = validate(model, val_data, stage.phases, config.train.stage_mode(stage), config.data.contrasts,
                           device)
        psnr = {c: metrics[c]["psnr"]["mean"] for c in config.data.contrasts}
        ssim = {c: metrics[c]["ssim"]["mean"] for c in config.data.contrasts}
        row = {"epoch": finished_epoch, "step": position.global_step, "phases": stage.phases}
        row.update({f"psnr_{c}": round(v, 4) for c, v in psnr.items()})
        row.update({f"ssim_{c}": round(v, 5) for c, v in ssim.items()})
        _append_csv(run_dir / "val.csv", row)
        for c in config.data.contrasts:
            writer.add_scalar(f"val/psnr_{c}", psnr[c], position.global_step)
            writer.add_scalar(f"val/ssim_{c}", ssim[c], position.global_step)
        writer.flush()
        bar.set_postfix(phases=stage.phases, loss=f"{loss_value:.4f}", val_psnr="/".join(f"{v:.2f}" for v in psnr.values()))
        # the best model is chosen on the validation slab among epochs of the final number of phases
        score = float(np.mean(list(psnr.values())))
        final_stage = stage.phases == schedule[-1].phases
        if final_stage and score > best_score:
            best_score = score
            save_checkpoint(best_path, model, extra={"phases": stage.phases, "val_psnr": psnr, "val_ssim": ssim,
                                                     "train_config": config.to_dict()})
        checkpoint(last_path)
    bar.close()
    if writer is not None:
        writer.close()
    leave_process_group(group)
    return best_path
