"""Data-loading speed of training (a benchmark, not a test): seconds to load a split into memory and
training samples per second (augmentation, mask, simulated k-space: lpam.training.samples.make_batch).

    python scripts/loading_speed.py [--config configs/shipped_cpu.yaml] [--samples 60]
"""
from __future__ import annotations

import argparse
import time

from lpam.data.sources import load_evaluation_data
from lpam.training.config import TrainConfig
from lpam.training.samples import config_transform, make_batch, pool_draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/shipped_cpu.yaml")
    parser.add_argument("--samples", type=int, default=60)
    args = parser.parse_args()
    config = TrainConfig.load(args.config)
    started = time.perf_counter()
    data = load_evaluation_data(config.data.source, config.data.train_split, contrasts=config.data.contrasts)
    print(f"loaded {data.images.shape[0]} training slices in {time.perf_counter() - started:.2f} s")
    transform = config_transform(data, config, pool_draw(config.data.mask))
    for index in range(3):  # warm the mask cache
        make_batch(transform, [index], config.train.seed, (0, 0))
    started = time.perf_counter()
    for index in range(args.samples):
        make_batch(transform, [index % data.images.shape[0]], config.train.seed, (0, 1))
    print(f"{args.samples / (time.perf_counter() - started):.0f} training samples per second")


if __name__ == "__main__":
    main()
