"""`lpam benchmark --retrain`: every learned method trained per mask, with the config its shipped checkpoint
stores (the committed configs/*.yaml) and the mask replaced."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lpam.checkpoint import load_checkpoint
from lpam.data.prepared import is_prepared
from lpam.device import resolve_device
from lpam.methods import BENCHMARK_MASKS, BENCHMARK_TRAJECTORIES, LEARNED, shipped_weights
from lpam.training.config import MaskConfig, TrainConfig
from lpam.training.trainer import train


def retrain(out_dir: str | Path, masks: Sequence[str], methods: Sequence[str], steps_per_epoch: int | None = None,
            device: str = "cpu", progress: bool = True, data: str = "embedded") -> dict[tuple[str, str], Path]:
    """Train every learned method per mask with the config stored in its shipped checkpoint (the committed
    configs/*.yaml), the mask replaced, and the data replaced by ``data`` when it is a prepared dataset
    (its train / val splits); runs go to ``out_dir/runs/<method>-<mask>`` and resume if present.
    lpam-net-convergent uses lpam-net's weights. Returns (method, mask) -> best checkpoint."""
    resolve_device(device)

    trained: dict[tuple[str, str], Path] = {}
    runs: dict[tuple[str, str], Path] = {}
    for method in methods:
        if method not in LEARNED:
            continue
        for mask_label in masks:
            weights = shipped_weights(method, mask_label)
            run_dir = Path(out_dir) / "runs" / f"{weights.stem}-{mask_label}"
            if (weights, mask_label) not in runs:
                config = TrainConfig.from_dict(load_checkpoint(weights)["train_config"])
                if mask_label in BENCHMARK_TRAJECTORIES:
                    config.data.trajectory = BENCHMARK_TRAJECTORIES[mask_label]
                else:
                    spec = BENCHMARK_MASKS[mask_label]
                    config.data.mask = MaskConfig(spec.kind, spec.rate, spec.acceleration, spec.center_fraction,
                                                  pool=config.data.mask.pool)
                config.train.device = device
                if is_prepared(data):
                    config.data.source = str(data)
                if steps_per_epoch is not None:
                    config.train.steps_per_epoch = steps_per_epoch
                resume = (run_dir / "last.pt").is_file()
                runs[(weights, mask_label)] = train(config, run_dir, resume=resume, quiet=not progress)
            trained[(method, mask_label)] = runs[(weights, mask_label)]
    return trained
