"""`lpam train`: a tiny run end to end, exact resume after a kill, logs, and config errors."""
import copy
import csv
import math
from pathlib import Path

import pytest
import torch
import yaml

from lpam.checkpoint import load_checkpoint, load_model
from lpam.physics.coils import simulate_coil_maps
from lpam.data.sources import EvaluationData
from lpam.training import run_files, samples, trainer
from lpam.training.config import LR_FLOOR, TrainConfig, lr_factor

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
    rows = (tmp_path / "run" / "train.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4 and rows[0].endswith(",peak_mib") and int(rows[-1].rsplit(",", 1)[1]) > 0
    model = load_model(best)
    assert model.config.phases == 2


@pytest.mark.parametrize("g_init", ["random", "tv"])
def test_two_runs_of_one_config_give_identical_weights(tmp_path, g_init):
    """Initial weights come from train.seed, not from whatever state the global generator is in."""
    raw = copy.deepcopy(TINY)
    raw["model"]["g_init"] = g_init
    states = []
    for run, global_seed in (("a", 1), ("b", 2)):
        torch.manual_seed(global_seed)
        best = trainer.train(TrainConfig.from_dict(raw), tmp_path / run, quiet=True)
        states.append(load_checkpoint(best)["model"])
    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]), name
    raw["train"]["seed"] = 1
    other = load_checkpoint(trainer.train(TrainConfig.from_dict(raw), tmp_path / "c", quiet=True))["model"]
    assert not torch.equal(other["g.0.weight_real.0"], states[0]["g.0.weight_real.0"])


def test_tiny_multicoil_training_run(tmp_path):
    raw = copy.deepcopy(TINY)
    raw["data"]["coils"] = 4
    best = trainer.train(TrainConfig.from_dict(raw), tmp_path / "run", quiet=True)
    assert (tmp_path / "run" / "last.pt").is_file() and best.is_file()
    with open(tmp_path / "run" / "train.csv") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 4 and all(math.isfinite(loss) for loss in losses)
    assert load_checkpoint(best)["train_config"]["data"]["coils"] == 4


def test_make_batch_with_coils_simulates_coil_kspace():
    config = TrainConfig.from_dict({"data": {"coils": 3, "augment": {"enabled": False},
                                             "mask": {"kind": "variable-density", "rate": 1.0, "pool": 1}}})
    images = torch.rand(4, 2, 24, 20)
    data = EvaluationData(images, [0, 1, 2, 3], ["T1", "T2"], "test")
    transform = samples.config_transform(data, config, samples.pool_draw(config.data.mask))
    kspace, physics, targets = samples.make_batch(transform, [1, 3], config.train.seed, (0, 0))
    assert kspace.shape == (2, 2, 3, 24, 20) and physics.mask.shape == (2, 24, 20) and bool(physics.mask.all())
    torch.testing.assert_close(physics.maps, simulate_coil_maps(3, (24, 20)).expand(2, -1, -1, -1))
    torch.testing.assert_close(targets, images[[1, 3]])
    combined = physics.adjoint(kspace)  # sum_c conj(S_c) F^H y_c with sum_c |S_c|^2 = 1
    torch.testing.assert_close(combined, images[[1, 3]].to(torch.complex64), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("settings", [{"lr_decay": "constant"}, {"lr_decay": "cosine"}, {"ema_decay": 0.5}])
def test_resume_continues_exactly(tmp_path, monkeypatch, settings):
    """A run killed after 3 steps resumes to the uninterrupted run's best.pt (with ema_decay: the moving average
    of the weights, resumed from last.pt)."""
    reference = trainer.train(tiny_config(**settings), tmp_path / "reference", quiet=True)
    original_loss, calls = trainer.training_loss, {"n": 0}

    def killed_after_three_steps(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt  # what a killed job looks like from inside
        return original_loss(*args, **kwargs)

    monkeypatch.setattr(trainer, "training_loss", killed_after_three_steps)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(tiny_config(**settings), tmp_path / "killed", quiet=True)
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["position"]["global_step"] == 3
    monkeypatch.setattr(trainer, "training_loss", original_loss)
    resumed = trainer.train(tiny_config(**settings), tmp_path / "killed", resume=True, quiet=True)
    expected, got = load_checkpoint(reference)["model"], load_checkpoint(resumed)["model"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    assert (tmp_path / "killed" / "train.csv").read_text().count("\n") == 1 + 4


def test_the_moving_average_of_the_weights_is_validated_and_kept(tmp_path):
    """train.ema_decay d = 0.5 over two steps from w0: best.pt holds d^2 w0 + d (1 - d) w1 + (1 - d) w2."""
    run = trainer.Trainer(tiny_config(ema_decay=0.5, schedule=[{"phases": 2, "epochs": 1}]), tmp_path / "run",
                          quiet=True)
    weights, optimizer_step = [copy.deepcopy(run.model.state_dict())], run.optimizer.step

    def step_and_record(*args, **kwargs):
        optimizer_step(*args, **kwargs)
        weights.append(copy.deepcopy(run.model.state_dict()))

    run.optimizer.step = step_and_record
    best = load_checkpoint(run.run())["model"]
    w0, w1, w2 = weights
    changed = [key for key in w0 if not torch.equal(w1[key], w2[key])]
    assert changed
    for key in changed:
        torch.testing.assert_close(best[key], 0.25 * w0[key] + 0.25 * w1[key] + 0.5 * w2[key], msg=key)


def test_micro_batches_take_the_step_of_the_whole_batch(tmp_path):
    """train.micro_batch_size 1 with a batch of 2 accumulates the two samples' gradients, each loss weighted by
    its share: the gradients and the loss equal those of the batch taken at once (up to float rounding)."""
    gradients, losses = {}, {}
    for name, micro in (("whole", None), ("micro", 1)):
        run = trainer.Trainer(tiny_config(batch_size=2, micro_batch_size=micro), tmp_path / name, quiet=True)
        run.optimizer.step = lambda: None  # the gradients of the first step, weights untouched
        losses[name] = run.step(run.config.train.schedule[0], 0, [0, 1])
        gradients[name] = {key: p.grad.clone() for key, p in run.model.named_parameters() if p.grad is not None}
    assert gradients["whole"].keys() == gradients["micro"].keys() and gradients["whole"]
    for key, grad in gradients["whole"].items():
        torch.testing.assert_close(gradients["micro"][key], grad, rtol=1e-4, atol=1e-7)
    assert losses["micro"] == pytest.approx(losses["whole"], rel=1e-5)


def test_cosine_decay_runs_from_the_initial_rates_down_to_the_floor(tmp_path):
    factors = [lr_factor("cosine", step, 10) for step in range(11)]
    assert factors[0] == 1.0 and factors[-1] == pytest.approx(LR_FLOOR)
    assert all(a > b for a, b in zip(factors, factors[1:]))
    assert {lr_factor("constant", step, 10) for step in range(11)} == {1.0}
    run = trainer.Trainer(tiny_config(lr_decay="cosine"), tmp_path / "run", quiet=True)
    run.run()
    last_factor = lr_factor("cosine", run.total_steps - 1, run.total_steps)
    rates = [group["lr"] for group in run.optimizer.param_groups]
    assert rates == pytest.approx([1e-3 * last_factor, 1e-4 * last_factor])
    with pytest.raises(ValueError, match="lr_decay"):
        tiny_config(lr_decay="linear")


def test_resume_may_extend_the_schedule(tmp_path):
    trainer.train(tiny_config(), tmp_path / "run", quiet=True)
    longer = tiny_config(schedule=[{"phases": 1, "epochs": 1}, {"phases": 2, "epochs": 2}])
    trainer.train(longer, tmp_path / "run", resume=True, quiet=True)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["position"]["global_step"] == 6
    shorter_first = tiny_config(schedule=[{"phases": 1, "epochs": 2}, {"phases": 2, "epochs": 2}])
    with pytest.raises(ValueError, match="only train.schedule may grow"):
        trainer.train(shorter_first, tmp_path / "run", resume=True, quiet=True)


def test_a_run_started_before_a_config_key_existed_resumes():
    started = tiny_config().to_dict()
    del started["data"]["coils"], started["data"]["coil_maps"]  # a checkpoint written before multi-coil training
    position = run_files.Position(1, 0, 0, 2, 1)
    assert run_files.resumed_position(started, tiny_config(), position) == position
    with pytest.raises(ValueError, match="config differs"):
        raw = copy.deepcopy(TINY)
        raw["data"]["coils"] = 4
        run_files.resumed_position(started, TrainConfig.from_dict(raw), run_files.Position())


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
        ({"train": {"schedule": [{"phases": 2, "epochs": 1, "mode": "fast"}]}}, "stage's mode"),
        ({"data": {"augment": {"flips": True}}}, "unknown augmentation option"),
        ({"data": {"coils": 0}}, "data.coils must be a whole number >= 1"),
        ({"data": {"coils": 2.5}}, "data.coils must be a whole number"),
        ({"data": {"coils": 4, "coil_maps": "espirit"}}, "unknown data.coil_maps"),
        ({"data": {"coils": 4}, "model": {"initial_image": "learned"}}, "single-coil k-space only"),
        ({"train": {"checkpoint_phases": "yes"}}, "checkpoint_phases must be true or false"),
        ({"train": {"ema_decay": 1.0}}, "ema_decay must lie in"),
        ({"train": {"micro_batch_size": 0}}, "micro_batch_size must be a whole number >= 1"),
        ({"train": {"ema_decay": "0.9"}}, "ema_decay must be a number"),
        ({"train": {"ema_decay": 0}}, "ema_decay must lie in"),
        ({"train": {"schedule": [{"phases": 2, "epochs": 1, "gradient_phases": 3}]}}, "gradient_phases must be"),
        ({"train": {"schedule": [{"phases": 2, "epochs": 1, "gradient_phases": 0}]}}, "gradient_phases must be"),
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


CONVERGENT = {"model": {"phases": 2, "features": 8, "step_rule": "descent", "reg_weight_init": 0.01,
                        "padding": "circular", "constants": {"sigma": 300.0}},
              "train": {"mode": "convergent", "descent_weight": 0.01, "init_alpha": 0.8}}


def convergent_config(steps: int = 2, epochs: int = 1) -> TrainConfig:
    raw = copy.deepcopy(TINY)
    raw["model"].update(CONVERGENT["model"])
    # a plain stage of the descent-rule network first, then the machinery on (train.mode convergent)
    schedule = [{"phases": 2, "epochs": 1, "mode": "plain"}, {"phases": 2, "epochs": epochs - 1}]
    raw["train"].update(CONVERGENT["train"], steps_per_epoch=steps, schedule=schedule)
    raw["data"]["augment"] = {"enabled": False}
    return TrainConfig.from_dict(raw)


def test_convergent_training_lowers_the_loss_and_resumes_exactly(tmp_path, monkeypatch):
    """A plain stage, then train.mode convergent: the validation PSNR of a later epoch beats the first on the
    same validation slice, and a run killed after 3 steps resumes to the uninterrupted run's weights."""
    best = trainer.train(convergent_config(steps=2, epochs=4), tmp_path / "reference", quiet=True)
    with open(tmp_path / "reference" / "val.csv") as handle:
        psnr = [float(row["psnr_T1"]) + float(row["psnr_T2"]) for row in csv.DictReader(handle)]
    assert len(psnr) == 4 and max(psnr[1:]) > psnr[0]  # the same validation slice after each epoch
    assert load_checkpoint(best)["model_config"]["step_rule"] == "descent"
    original_loss, calls = trainer.training_loss, {"n": 0}

    def killed_after_three_steps(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return original_loss(*args, **kwargs)

    monkeypatch.setattr(trainer, "training_loss", killed_after_three_steps)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(convergent_config(steps=2, epochs=4), tmp_path / "killed", quiet=True)
    monkeypatch.setattr(trainer, "training_loss", original_loss)
    resumed = trainer.train(convergent_config(steps=2, epochs=4), tmp_path / "killed", resume=True, quiet=True)
    expected = load_checkpoint(tmp_path / "reference" / "last.pt")["model"]
    got = load_checkpoint(tmp_path / "killed" / "last.pt")["model"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    assert resumed.is_file()


def test_checkpointed_phases_train_to_the_same_weights(tmp_path):
    """train.checkpoint_phases recomputes the phases in the backward pass: the weights after a plain and a
    convergent epoch equal those of the run that stores them (up to float rounding of the recomputation)."""
    stored = trainer.train(convergent_config(steps=2, epochs=2), tmp_path / "stored", quiet=True)
    config = convergent_config(steps=2, epochs=2)
    config.train.checkpoint_phases = True
    recomputed = trainer.train(config, tmp_path / "recomputed", quiet=True)
    expected, got = load_checkpoint(stored)["model"], load_checkpoint(recomputed)["model"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-6, msg=key)


def test_gradient_phases_train_through_the_last_phases(tmp_path):
    """A stage with gradient_phases 1 of 2 trains (its best.pt validated at both phases) and leaves phase 1's
    step sizes where the warm start put them: only the last phase backpropagates."""
    config = convergent_config(steps=2, epochs=2)
    config.train.schedule[-1].gradient_phases = 1
    config.train.schedule = config.train.schedule[-1:]
    best = trainer.train(config, tmp_path / "run", quiet=True)
    alpha = load_checkpoint(best)["model"]["alpha"]
    start = torch.full_like(alpha[0], config.train.init_alpha)
    torch.testing.assert_close(alpha[0], start, rtol=0, atol=0)
    assert not torch.equal(alpha[1], start)


def test_every_committed_config_loads():
    """configs/*.yaml, their base chains resolved (an experiment's config holds only what it changes)."""
    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert len(configs) > 10
    for path in configs:
        TrainConfig.load(path)


def test_a_config_applies_its_keys_on_top_of_its_base(tmp_path):
    (tmp_path / "nested").mkdir()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY))
    (tmp_path / "nested" / "child.yaml").write_text(
        "base: ../base.yaml\nmodel: {features: 4}\ntrain: {schedule: [{phases: 2, epochs: 3}]}\n")
    child = TrainConfig.load(tmp_path / "nested" / "child.yaml")
    expected = tiny_config(schedule=[{"phases": 2, "epochs": 3}])
    expected.model.features = 4  # a mapping merges key by key, a list (the schedule) is replaced
    assert child.to_dict() == expected.to_dict()


@pytest.mark.parametrize(
    "files, message",
    [
        ({"a.yaml": "base: missing.yaml\n"}, r"training config not found: .*missing.yaml \(the base of .*a.yaml\)"),
        ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"}, "the base configs form a cycle"),
        ({"a.yaml": "base: 3\n"}, "base must be the path of another training config"),
        ({"a.yaml": "base: b.yaml\n", "b.yaml": "- 1\n"}, "must be a mapping"),
    ],
)
def test_base_config_errors(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        TrainConfig.load(tmp_path / "a.yaml")


def test_checkpointed_phases_need_lpam_net():
    raw = copy.deepcopy(TINY)
    raw["model"] = {"type": "unet", "channels": 4}
    raw["train"].update(checkpoint_phases=True, schedule=[{"phases": 1, "epochs": 1}])
    with pytest.raises(ValueError, match="checkpoint_phases needs LPAM-net"):
        TrainConfig.from_dict(raw)
    raw["train"].update(checkpoint_phases=False, schedule=[{"phases": 1, "epochs": 1, "gradient_phases": 1}])
    with pytest.raises(ValueError, match="gradient_phases needs LPAM-net"):
        TrainConfig.from_dict(raw)
