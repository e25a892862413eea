"""An LPAM-net checkpoint composed from trained parts without further training: the model of a training
config, warm-started as `lpam train` would start it (``train.init_from`` for the phases and g,
``train.initializer_from`` for the U-Net of ``initial_image: unet``, docs/method.md section 4d), saved with
the config so that the registry and `lpam evaluate` read it as any trained checkpoint.

    python scripts/compose_network.py --config configs/cartesian_unet_init_cpu.yaml --out CKPT
"""
from __future__ import annotations

import argparse

from lpam.checkpoint import save_checkpoint
from lpam.training.config import TrainConfig
from lpam.training.trainer import seeded_model
from lpam.training.warm_start import warm_start, warm_start_initializer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    config = TrainConfig.load(args.config)
    if config.train.init_from is None:
        parser.error(f"{args.config} names no train.init_from to compose from")
    model = seeded_model(config)
    warm_start(model, config.train.init_from, config.data.contrasts)
    if config.train.initializer_from is not None:
        warm_start_initializer(model, config.train.initializer_from, config.data.contrasts)
    save_checkpoint(args.out, model, extra={"phases": model.config.phases, "train_config": config.to_dict()})
    print(f"wrote {args.out}: {config.train.init_from} + {config.train.initializer_from}")


if __name__ == "__main__":
    main()
