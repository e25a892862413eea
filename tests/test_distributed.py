"""Distributed training: 2 CPU processes with gloo under torchrun follow single-process training, and a run
resumes with a different number of processes."""
import copy
import csv
import os
import subprocess
import sys

import pytest
import torch
import yaml

from lpam.checkpoint import load_checkpoint
from lpam.training import trainer
from lpam.training.config import TrainConfig
from lpam.training.distributed import ProcessGroup, join_process_group

# global batch 2: one sample per process with 2 processes
CONFIG = {
    "model": {"phases": 2, "features": 8},
    "data": {"mask": {"kind": "radial", "rate": 0.2, "pool": 4}},
    "train": {"schedule": [{"phases": 1, "epochs": 1}, {"phases": 2, "epochs": 1}], "steps_per_epoch": 2,
              "batch_size": 2, "val_slices": 1, "checkpoint_every": 1, "lr": 1e-3, "lr_steps": 1e-3},
}


def write_config(path, **train):
    raw = copy.deepcopy(CONFIG)
    raw["train"].update(train)
    path.write_text(yaml.safe_dump(raw))
    return path


def torchrun(config_path, out, processes=2, resume=False):
    """`torchrun --standalone --nproc_per_node N -m lpam train ...` as a user types it."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "lpam", "train", "--config", str(config_path), "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command + (["--resume"] if resume else []), capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def losses(run):
    with open(run / "train.csv") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


# The all-reduce sums the two processes' gradients in another order than one process sums a batch of two, so
# the runs agree to round-off, and Adam (lr 1e-3 here) turns round-off in tiny gradient entries into weight
# differences of a few 1e-6 after 4 steps (measured up to 4.9e-6 on this CPU). 2e-5 is 2% of one Adam step:
# an unseeded model or a wrong gradient average differs by 1e-3 or more.
WEIGHT_TOLERANCE = 2e-5


def assert_same_weights(first, second):
    expected, got = load_checkpoint(first)["model"], load_checkpoint(second)["model"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=WEIGHT_TOLERANCE, msg=key)


def test_two_gloo_processes_match_single_process_training(tmp_path):
    config_path = write_config(tmp_path / "config.yaml")
    trainer.train(TrainConfig.load(config_path), tmp_path / "single", quiet=True)
    torchrun(config_path, tmp_path / "ddp")
    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "single"), rel=1e-4)
    assert_same_weights(tmp_path / "single" / "last.pt", tmp_path / "ddp" / "last.pt")
    for name in ("best.pt", "val.csv", "config.yaml"):  # written once, by rank 0
        assert (tmp_path / "ddp" / name).is_file()
    assert len(losses(tmp_path / "ddp")) == 4


def test_resume_with_a_different_number_of_processes(tmp_path):
    short = write_config(tmp_path / "short.yaml")
    longer = write_config(tmp_path / "longer.yaml", schedule=[{"phases": 1, "epochs": 1}, {"phases": 2, "epochs": 2}])
    trainer.train(TrainConfig.load(longer), tmp_path / "single", quiet=True)
    torchrun(short, tmp_path / "mixed")  # 2 processes, then 1 process continues the extended run
    trainer.train(TrainConfig.load(longer), tmp_path / "mixed", resume=True, quiet=True)
    assert losses(tmp_path / "mixed") == pytest.approx(losses(tmp_path / "single"), rel=1e-4)
    assert_same_weights(tmp_path / "single" / "last.pt", tmp_path / "mixed" / "last.pt")


def test_one_process_without_torchrun():
    group, device = join_process_group("cpu")
    assert group == ProcessGroup(0, 1, 0) and group.is_main and not group.distributed
    assert device == torch.device("cpu")


def test_global_batch_must_split_evenly(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "join_process_group", lambda device: (ProcessGroup(0, 2, 0), torch.device("cpu")))
    config = TrainConfig.from_dict({**CONFIG, "train": {**CONFIG["train"], "batch_size": 3}})
    with pytest.raises(ValueError, match="multiple of the number of processes 2"):
        trainer.train(config, tmp_path / "run", quiet=True)
