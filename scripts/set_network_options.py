"""Change options an LPAM-net checkpoint applies at inference, weights untouched (lpam.checkpoint.set_inference_options):
the algorithm's constants (lpam.algorithm.lpam.Constants) and ``convergent_phases``. How the shipped radial default
got ``learned_backtracks: 2`` after training (README, benchmark section).

    python scripts/set_network_options.py CKPT learned_backtracks=2 [name=value ...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from lpam.checkpoint import set_inference_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("settings", nargs="+", help="name=value, e.g. learned_backtracks=2 or convergent_phases=40")
    args = parser.parse_args()
    changes = {}
    for setting in args.settings:
        name, _, value = setting.partition("=")
        changes[name] = yaml.safe_load(value)
    config = set_inference_options(args.checkpoint, changes)
    print(f"{args.checkpoint}: constants {config.get('constants')}, convergent_phases {config.get('convergent_phases')}")


if __name__ == "__main__":
    main()
