"""`lpam train`: progressive-phase training of LPAM-net (or the U-Net baseline) with validation, logs, atomic
checkpoints and exact resume (docs/method.md section 4).

Loss per contrast: MSE(|x_hat|, x) + ssim_weight * (1 - SSIM(|x_hat|, x)); the training SSIM is
torchmetrics' (7x7 uniform window, differentiable); reported SSIM is scikit-image's (lpam.metrics).
Adam with two learning rates: ``lr`` for the CNN(s), ``lr_steps`` for the models' step-size parameters
(LPAM-net's alpha, tau or lam, abar and eps0), constant or decaying together (``train.lr_decay``). With
``train.ema_decay`` d, validation and best.pt use the moving average of the weights, w_avg <- d w_avg + (1 - d) w
(torch.optim.swa_utils.AveragedModel), kept in last.pt for an exact resume. Every random choice of a sample
comes from a generator seeded by (seed, stage, epoch, index), so a resumed run continues exactly where it
stopped.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DistributedSampler
from torchmetrics.functional.image import structural_similarity_index_measure
from tqdm import tqdm

from lpam.checkpoint import load_checkpoint, load_training_checkpoint, save_checkpoint
from lpam.data.sources import load_evaluation_data
from lpam.device import peak_memory_mib
from lpam.io import atomic_path
from lpam.metrics import evaluate_contrasts
from lpam.models.registry import build_model
from lpam.training.config import Stage, TrainConfig, lr_factor
from lpam.training.distributed import barrier, join_process_group, leave_process_group, mean_over_processes
from lpam.training.run_files import Position, append_csv, config_text, resumed_position, truncate_csv
from lpam.training.samples import Batch, config_transform, make_batch, sampling_draw, validation_data
from lpam.training.warm_start import warm_start, warm_start_initializer


def training_loss(recon: torch.Tensor, target: torch.Tensor, ssim_weight: float) -> torch.Tensor:
    """sum_j MSE(|x_hat_j|, x_j) + ssim_weight (1 - SSIM(|x_hat_j|, x_j))."""
    magnitude = recon.abs()
    loss = recon.new_zeros((), dtype=magnitude.dtype)
    for j in range(target.shape[1]):
        pred, true = magnitude[:, j : j + 1], target[:, j : j + 1]
        ssim = structural_similarity_index_measure(pred, true, gaussian_kernel=False, kernel_size=7, data_range=1.0)
        loss = loss + torch.mean((pred - true) ** 2) + ssim_weight * (1 - ssim)
    return loss


@torch.no_grad()
def validate(model: nn.Module, data: Batch, phases: int, mode: str, contrasts: list[str],
             device: torch.device) -> dict[str, dict]:
    """scikit-image metrics per contrast on the validation slab, one slice at a time."""
    kspace, physics, images = data
    model.eval()
    recons = [model(kspace[i : i + 1].to(device), physics.sample(i).to(device), phases=phases, mode=mode).cpu()
              for i in range(kspace.shape[0])]
    model.train()
    return evaluate_contrasts(torch.cat(recons).numpy(), images.numpy(), contrasts)


def seeded_model(config: TrainConfig) -> nn.Module:
    """The model of ``config`` with its random initial weights drawn from ``train.seed`` (the global torch
    generator is left as it was), so two runs of one config start from identical weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return build_model(config.model)


def start_weights(model: nn.Module, config: TrainConfig) -> None:
    """The weights a fresh run starts from: ``train.init_from``, then ``train.initializer_from`` (the U-Net of
    ``initial_image: unet``), then ``train.init_alpha``, each where the config sets it."""
    if config.train.init_from is not None:
        warm_start(model, config.train.init_from, config.data.contrasts)
    if config.train.initializer_from is not None:
        warm_start_initializer(model, config.train.initializer_from, config.data.contrasts)
    if config.train.init_alpha is not None:
        model.reset_alpha(config.train.init_alpha)


def new_parameters(model: nn.Module, config: TrainConfig) -> list[nn.Parameter]:
    """The network weights that ``train.init_from`` does not hold, when ``train.lr_new`` gives them a rate."""
    if config.train.lr_new is None:
        return []
    held = set(load_checkpoint(config.train.init_from)["model"])
    steps = {id(p) for p in model.step_size_parameters()}
    return [p for name, p in model.named_parameters() if name not in held and id(p) not in steps]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam: ``lr`` for the networks, ``lr_steps`` for the model's step-size parameters (if it has any),
    ``lr_new`` for network weights that the warm start does not hold (if set)."""
    steps, new = model.step_size_parameters(), new_parameters(model, config)
    special = {id(p) for p in steps + new}
    groups = [{"params": [p for p in model.parameters() if id(p) not in special], "lr": config.train.lr}]
    if steps:
        groups.append({"params": steps, "lr": config.train.lr_steps})
    if new:
        groups.append({"params": new, "lr": config.train.lr_new})
    return torch.optim.Adam(groups)


class Trainer:
    """One training run of ``config`` in ``run_dir``: set up (model, optimizer, where to start, the run folder,
    the data), then :meth:`run` the schedule epoch by epoch, a :meth:`step` per batch and a validation after
    every epoch; rank 0 alone logs, validates and writes checkpoints."""

    def __init__(self, config: TrainConfig, run_dir: str | Path, resume: bool = False, quiet: bool = False) -> None:
        self.config, self.run_dir, self.quiet = config, Path(run_dir), quiet
        self.group, self.device = join_process_group(config.train.device)
        if config.train.batch_size % self.group.world_size:
            raise ValueError(f"train.batch_size {config.train.batch_size} (the global batch) must be a multiple of "
                             f"the number of processes {self.group.world_size}")
        self.last_path, self.best_path = self.run_dir / "last.pt", self.run_dir / "best.pt"
        self.model = seeded_model(config).to(self.device)
        self.optimizer = build_optimizer(self.model, config)
        self.initial_rates = [group["lr"] for group in self.optimizer.param_groups]
        self.position, self.best_score = Position(), -math.inf
        self.average = None
        self._start(resume)
        barrier(self.group)  # every process has checked the run directory before rank 0 writes to it
        if self.group.is_main:
            self._prepare_run_dir(resume)
        self.network = self.model
        if self.group.distributed:  # abar is unused in plain mode, hence find_unused_parameters
            self.network = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self._load_data()

    def _start(self, resume: bool) -> None:
        """Continue from last.pt, or start a fresh run (in an empty folder) from the seeded or warm-started model."""
        config = self.config
        if resume:
            if not self.last_path.is_file():
                raise FileNotFoundError(f"--resume: no checkpoint {self.last_path} to resume from")
            checkpoint = load_training_checkpoint(self.last_path, map_location=self.device)
            self.position = resumed_position(checkpoint["train_config"], config, Position(**checkpoint["position"]))
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.best_score = checkpoint["best_score"]
            self._start_average()
            if self.average is not None:
                self.average.load_state_dict(checkpoint["average"])
            return
        if self.run_dir.exists() and (not self.run_dir.is_dir() or any(self.run_dir.iterdir())):
            raise FileExistsError(f"{self.run_dir} is not an empty folder (it holds a run or other files); use "
                                  "--resume to continue a run, or choose another --out (or delete the folder)")
        start_weights(self.model, config)
        self._start_average()

    def _start_average(self) -> None:
        """The moving average of the weights (``train.ema_decay``), starting at the model's weights."""
        decay = self.config.train.ema_decay
        if decay is not None:
            self.average = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(decay))
            self.average.update_parameters(self.model)  # the first update copies the weights

    @property
    def validated_model(self) -> nn.Module:
        """The model that is validated and kept as best.pt: the weights' moving average, or the weights."""
        return self.model if self.average is None else self.average.module

    def _prepare_run_dir(self, resume: bool) -> None:
        """The run folder with config.yaml; on resume the log rows written after last.pt are dropped (they are
        redone and must appear once)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            truncate_csv(self.run_dir / "train.csv", lambda row: int(row["step"]) <= self.position.global_step)
            truncate_csv(self.run_dir / "val.csv", lambda row: int(row["epoch"]) < self.position.global_epoch)
        with atomic_path(self.run_dir / "config.yaml") as tmp:
            tmp.write_text(config_text(self.config))

    def _load_data(self) -> None:
        """The training transform, the validation batch (rank 0), the sampler, the logs and the progress bar."""
        from torch.utils.tensorboard import SummaryWriter

        config, group = self.config, self.group
        train_data = load_evaluation_data(config.data.source, config.data.train_split, contrasts=config.data.contrasts)
        self.transform = config_transform(train_data, config, sampling_draw(config.data))
        self.val_data = validation_data(config) if group.is_main else None
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "events"),
                                    purge_step=self.position.global_step) if group.is_main else None
        self.sampler = DistributedSampler(range(train_data.images.shape[0]), num_replicas=group.world_size,
                                          rank=group.rank, shuffle=True, seed=config.train.seed)
        self.local_batch = config.train.batch_size // group.world_size
        self.per_epoch = len(range(0, len(self.sampler), self.local_batch))
        if config.train.steps_per_epoch is not None:
            self.per_epoch = min(self.per_epoch, config.train.steps_per_epoch)
        self.total_steps = self.per_epoch * sum(stage.epochs for stage in config.train.schedule)
        self.bar = tqdm(total=self.total_steps, initial=self.position.global_step, desc="train",
                        disable=self.quiet or not group.is_main, dynamic_ncols=True)

    def save(self, path: Path) -> None:
        """A resumable checkpoint: the model, the optimizer, the position, the best score and the config."""
        extra = {"optimizer": self.optimizer.state_dict(), "position": vars(self.position),
                 "best_score": self.best_score, "train_config": self.config.to_dict()}
        if self.average is not None:
            extra["average"] = self.average.state_dict()
        save_checkpoint(path, self.model, extra=extra)

    def run(self) -> Path:
        """Train to the end of the schedule; returns best.pt."""
        schedule = self.config.train.schedule
        while self.position.stage < len(schedule):
            stage = schedule[self.position.stage]
            # this process's shard of the epoch's permutation; global batch b is the union of every shard's batch b
            self.sampler.set_epoch(self.position.global_epoch)
            order = list(self.sampler)
            batches = [order[i : i + self.local_batch] for i in range(0, len(order), self.local_batch)][: self.per_epoch]
            loss = math.nan
            for b in range(self.position.sample, len(batches)):
                loss = self.step(stage, b, batches[b])
            self._end_epoch(stage, loss)
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        leave_process_group(self.group)
        return self.best_path

    def step(self, stage: Stage, batch: int, indices: list[int]) -> float:
        """Step ``batch`` of the epoch: one optimisation step on the samples at ``indices``, their gradients
        accumulated over micro-batches of ``train.micro_batch_size`` (each loss weighted by its share of the
        batch, so the step equals the whole batch's); returns the loss (averaged over processes)."""
        config, position, started = self.config, self.position, time.perf_counter()
        size = config.train.micro_batch_size or len(indices)
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for start in range(0, len(indices), size):
            chunk = indices[start : start + size]
            loss = self._batch_loss(stage, chunk) * (len(chunk) / len(indices))
            loss.backward()
            total = total + loss.detach()
        loss_value = mean_over_processes(total, self.group)
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training loss is not finite at step {position.global_step}; lower the "
                                     "learning rate")
        factor = lr_factor(config.train.lr_decay, position.global_step, self.total_steps)
        for group, rate in zip(self.optimizer.param_groups, self.initial_rates):
            group["lr"] = rate * factor
        self.optimizer.step()
        if self.average is not None:
            self.average.update_parameters(self.model)
        position.sample, position.global_step = batch + 1, position.global_step + 1
        if self.group.is_main:
            self._log_step(stage, loss_value, time.perf_counter() - started)
        return loss_value

    def _batch_loss(self, stage: Stage, indices: list[int]) -> torch.Tensor:
        """The training loss (with the descent-violation term) of the samples at ``indices``."""
        config, position = self.config, self.position
        kspace, physics, targets = make_batch(self.transform, indices, config.train.seed,
                                              (position.stage, position.epoch))
        options = {"measure_descent": True} if config.train.descent_weight > 0 else {}
        if config.train.checkpoint_phases:
            options["checkpoint_phases"] = True
        if stage.gradient_phases is not None:
            options["gradient_phases"] = stage.gradient_phases
        recon = self.network(kspace.to(self.device), physics.to(self.device), phases=stage.phases,
                             mode=config.train.stage_mode(stage), **options)
        loss = training_loss(recon, targets.to(self.device), config.train.ssim_weight)
        if config.train.descent_weight > 0:
            loss = loss + config.train.descent_weight * self.model.descent_violation
        return loss

    def _log_step(self, stage: Stage, loss: float, seconds: float) -> None:
        position = self.position
        append_csv(self.run_dir / "train.csv", {"step": position.global_step, "epoch": position.global_epoch,
                                                "phases": stage.phases, "loss": loss, "seconds": round(seconds, 3),
                                                "peak_mib": round(peak_memory_mib(self.device, reset=True))})
        self.writer.add_scalar("train/loss", loss, position.global_step)
        self.bar.set_postfix(phases=stage.phases, loss=f"{loss:.4f}")
        self.bar.update(1)
        if position.global_step % self.config.train.checkpoint_every == 0:
            self.save(self.last_path)

    def _end_epoch(self, stage: Stage, loss: float) -> None:
        """Advance the position; rank 0 validates, logs, keeps best.pt and writes last.pt."""
        position = self.position
        finished_epoch = position.global_epoch
        position.sample, position.epoch, position.global_epoch = 0, position.epoch + 1, position.global_epoch + 1
        if position.epoch >= stage.epochs:
            position.stage, position.epoch = position.stage + 1, 0
        if not self.group.is_main:
            return
        psnr, ssim = self._validate_epoch(stage, finished_epoch)
        self.bar.set_postfix(phases=stage.phases, loss=f"{loss:.4f}",
                             val_psnr="/".join(f"{v:.2f}" for v in psnr.values()))
        # the best model is chosen on the validation slab among epochs of the final number of phases
        score = float(np.mean(list(psnr.values())))
        final_stage = stage.phases == self.config.train.schedule[-1].phases
        if final_stage and score > self.best_score:
            self.best_score = score
            save_checkpoint(self.best_path, self.validated_model,
                            extra={"phases": stage.phases, "val_psnr": psnr, "val_ssim": ssim,
                                   "train_config": self.config.to_dict()})
        self.save(self.last_path)

    def _validate_epoch(self, stage: Stage, epoch: int) -> tuple[dict[str, float], dict[str, float]]:
        """Validation PSNR and SSIM per contrast after ``epoch``, logged to val.csv and TensorBoard."""
        contrasts = self.config.data.contrasts
        metrics = validate(self.validated_model, self.val_data, stage.phases, self.config.train.stage_mode(stage),
                           contrasts, self.device)
        psnr = {c: metrics[c]["psnr"]["mean"] for c in contrasts}
        ssim = {c: metrics[c]["ssim"]["mean"] for c in contrasts}
        row = {"epoch": epoch, "step": self.position.global_step, "phases": stage.phases}
        row.update({f"psnr_{c}": round(v, 4) for c, v in psnr.items()})
        row.update({f"ssim_{c}": round(v, 5) for c, v in ssim.items()})
        append_csv(self.run_dir / "val.csv", row)
        for c in contrasts:
            self.writer.add_scalar(f"val/psnr_{c}", psnr[c], self.position.global_step)
            self.writer.add_scalar(f"val/ssim_{c}", ssim[c], self.position.global_step)
        self.writer.flush()
        return psnr, ssim


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False, quiet: bool = False) -> Path:
    """Train per ``config`` into ``run_dir`` (last.pt, best.pt, train.csv, val.csv, events); returns best.pt."""
    return Trainer(config, run_dir, resume, quiet).run()
