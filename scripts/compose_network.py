"""An LPAM-net checkpoint composed from trained parts without further training: the model of a training
config, started as `lpam train` starts it (lpam.training.trainer.start_weights: ``train.init_from`` for the
phases and g, ``train.initializer_from`` for the U-Net of ``initial_image: unet``, docs/method.md section 4d), saved with
the config so that the registry and `lpam evaluate` read it as any trained checkpoint.

    python scripts/compose_network.py --config configs/cartesian_unet_init_cpu.yaml --out CKPT
"""
from __future__ import annotations

import argparse

from lpam.checkpoint import save_checkpoint
from lpam.training.config import TrainConfig
from lpam.training.trainer import seeded_model, start_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    config = TrainConfig.load(args.config)
    if config.train.init_from is None:
        parser.error(f"{args.config} names no train.init_from to compose from")
    model = seeded_model(config)
    start_weights(model, config)
    save_checkpoint(args.out, model, extra={"phases": model.config.phases, "train_config": config.to_dict()})
    print(f"wrote {args.out}: {config.train.init_from} + {config.train.initializer_from}")


if __name__ == "__main__":
    main()
