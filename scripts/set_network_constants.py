"""Change constants stored with an LPAM-net checkpoint (lpam.algorithm.lpam.Constants), weights untouched: how the
shipped radial default got ``learned_backtracks: 2`` after training (README, benchmark section).

    python scripts/set_network_constants.py CKPT learned_backtracks=2 [name=value ...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from lpam.algorithm.lpam import Constants
from lpam.io import atomic_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("settings", nargs="+", help="name=value, e.g. learned_backtracks=2")
    args = parser.parse_args()
    payload = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    changes = {}
    for setting in args.settings:
        name, _, value = setting.partition("=")
        changes[name] = yaml.safe_load(value)
    constants = {**payload["constants"], **changes}
    Constants(**constants)  # checks the names and values
    payload["constants"] = constants
    payload["model_config"]["constants"] = {**(payload["model_config"].get("constants") or {}), **changes}
    with atomic_path(args.checkpoint) as temporary:
        torch.save(payload, temporary)
    print(f"{args.checkpoint}: constants {constants}")


if __name__ == "__main__":
    main()
