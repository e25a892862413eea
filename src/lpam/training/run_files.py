"""A training run's bookkeeping on disk: where it stands (:class:`Position`), what a resumed run may change
in its config, and its logs (train.csv, val.csv: one row per step / epoch, rewritten atomically on resume so
that every row appears once)."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from lpam.io import atomic_path
from lpam.training.config import TrainConfig


@dataclass
class Position:
    """Where training stands: stage, epoch within the stage, next sample position, global counters."""

    stage: int = 0
    epoch: int = 0
    sample: int = 0
    global_step: int = 0
    global_epoch: int = 0


def truncate_csv(path: Path, keep: Callable[[dict[str, str]], bool]) -> None:
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


def append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def config_text(config: TrainConfig) -> str:
    return yaml.safe_dump(json.loads(json.dumps(config.to_dict())), sort_keys=False)


def resumed_position(started: dict, config: TrainConfig, position: Position) -> Position:
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
