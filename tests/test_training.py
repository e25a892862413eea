"""`lpam train`: a tiny run end to end, exact resume after a kill, logs, and config errors."""
import copy

import pytest
import torch
import yaml

from lpam.checkpoint import load_checkpoint, load_model
from lpam.training import trainer
from lpam.training.config import TrainConfig

TINY = {
    "model": {"phases": 2, "features": 8},
    "data": {"mask": {"kind": "radial", "rate": 0.2, "pool": 4}},
    "train": {"schedule": [{"phases": 1, "epochs": 1}, {"phases": 2, "epochs": 1}], "steps_per_epoch": 2,
              "val_slices": 1, "checkpoint_every": 1, "lr": 1e-3, "lr_steps": 1e-4},
}


def tiny_config(**train):
    raw = copy.deepcopy(TINY)
    raw["train"].update(train)
    return TrainConfig.from_dict(raw)


def test_tiny_training_run_writes_everything(tmp_path):
    best = trainer.train(tiny_config(), tmp_path / "run", quiet=True)
    for name in ("last.pt", "best.pt", "train.csv", "val.csv", "config.yaml"):
        assert (tmp_path / "run" / name).is_file(), name
    assert any((tmp_path / "run" / "events").iterdir())
    assert len((tmp_path / "run" / "train.csv").read_text().strip().splitlines()) == 1 + 4
    model = load_model(best)
    assert model.config.phases == 2


def test_resume_continues_exactly(tmp_path, monkeypatch):
    reference = trainer.train(tiny_config(), tmp_path / "reference", quiet=True)
    original_loss, calls = trainer.training_loss, {"n": 0}

    def killed_after_three_steps(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt  # what a killed job looks like from inside
        return original_loss(*args, **kwargs)

    monkeypatch.setattr(trainer, "training_loss", killed_after_three_steps)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(tiny_config(), tmp_path / "killed", quiet=True)
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["position"]["global_step"] == 3
    monkeypatch.setattr(trainer, "training_loss", original_loss)
    resumed = trainer.train(tiny_config(), tmp_path / "killed", resume=True, quiet=True)
    expected, got = load_checkpoint(reference)["model"], load_checkpoint(resumed)["model"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    assert (tmp_path / "killed" / "train.csv").read_text().count("\n") == 1 + 4


def test_resume_may_extend_the_schedule(tmp_path):
    trainer.train(tiny_config(), tmp_path / "run", quiet=True)
    longer = tiny_config(schedule=[{"phases": 1, "epochs": 1}, {"phases": 2, "epochs": 2}])
    trainer.train(longer, tmp_path / "run", resume=True, quiet=True)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["position"]["global_step"] == 6
    shorter_first = tiny_config(schedule=[{"phases": 1, "epochs": 2}, {"phases": 2, "epochs": 2}])
    with pytest.raises(ValueError, match="only train.schedule may grow"):
        trainer.train(shorter_first, tmp_path / "run", resume=True, quiet=True)


def test_run_directory_and_resume_errors(tmp_path):
    trainer.train(tiny_config(), tmp_path / "run", quiet=True)
    with pytest.raises(FileExistsError, match="--resume"):
        trainer.train(tiny_config(), tmp_path / "run", quiet=True)
    with pytest.raises(ValueError, match="config differs"):
        trainer.train(tiny_config(lr=5e-4), tmp_path / "run", resume=True, quiet=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        trainer.train(tiny_config(), tmp_path / "empty", resume=True, quiet=True)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train": {"learning_rate": 1e-3}}, "unknown train section key.*learning_rate"),
        ({"model": {"coupling": "both"}}, "unknown coupling"),
        ({"extra": 1}, "unknown config top-level key.*extra"),
        ({"train": {"schedule": [{"phases": 1, "epochs": 1}]}}, "last stage"),
        ({"train": {"mode": "fast"}}, "train.mode"),
        ({"data": {"augment": {"flips": True}}}, "unknown augmentation option"),
    ],
)
def test_config_errors(tmp_path, change, message):
    raw = copy.deepcopy(TINY)
    for section, values in change.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=message):
        TrainConfig.load(path)


def test_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        TrainConfig.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        TrainConfig.load(bad)


def test_shipped_configs_load():
    from pathlib import Path

    for path in sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")):
        TrainConfig.load(path)
