"""Training configuration: a YAML file with sections ``model``, ``data`` and ``train``; unknown keys are
errors (a typo must not silently train something else). A file may start from another: ``base: other.yaml``
(a path relative to the file) loads that config and applies this file's keys on top of it, mappings merged
key by key and anything else (a list such as the schedule, a number) replaced, so an experiment's config
holds only what it changes."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lpam.models.lpam_net import MODES, LPAMNetConfig
from lpam.models.registry import ModelConfig, model_config_from_dict, model_type_of
from lpam.options import check_unique, checked_options, is_whole_number, load_yaml
from lpam.physics.masks import MaskSpec
from lpam.physics.radial import TrajectorySpec
from lpam.data.augment import AugmentConfig

COIL_MAPS = ("simulated", "measured")
LR_DECAYS = ("constant", "cosine")
LR_FLOOR = 0.05  # cosine decay ends at this fraction of the initial rates
BASE_KEY = "base"  # a config file's key naming the config it starts from


def lr_factor(decay: str, step: int, total_steps: int) -> float:
    """The factor on both learning rates at optimisation step ``step`` (0-based) of ``total_steps``:
    1 for "constant"; f + (1 - f) (1 + cos(pi step / total_steps)) / 2 with f = LR_FLOOR for "cosine"."""
    if decay == "constant":
        return 1.0
    progress = min(step / max(total_steps, 1), 1.0)
    return LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))


def merged(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``: mappings merged key by key, any other value replaced."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def _resolved_yaml(path: Path, chain: tuple[Path, ...]) -> Any:
    """The mapping of config file ``path`` on top of its ``base`` file's (resolved the same way); ``chain``
    holds the files that led here, to refuse a cycle."""
    if not path.is_file():
        where = f" (the base of {chain[-1]})" if chain else ""
        raise FileNotFoundError(f"training config not found: {path}{where}")
    if path.resolve() in chain:
        raise ValueError(f"{chain[0]}: the base configs form a cycle through {path}")
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(raw, dict) or BASE_KEY not in raw:
        return raw
    raw = dict(raw)
    base = raw.pop(BASE_KEY)
    if not isinstance(base, str) or not base:
        raise ValueError(f"{path}: base must be the path of another training config, got {base!r}")
    base_raw = _resolved_yaml(path.parent / base, chain + (path.resolve(),))
    if not isinstance(base_raw, dict):
        raise ValueError(f"{path.parent / base}: a training config must be a mapping with sections model, data, train")
    return merged(base_raw, raw)


@dataclass
class MaskConfig(MaskSpec):
    """Sampling masks of the training data: each sample draws one of ``pool`` masks, mask i with seed
    ``seed + i``. ``mix`` lists further mask settings (kind, rate or acceleration, centre; their own seed is
    not used) trained alongside the main one: mask i takes setting i mod (1 + len(mix)), the main setting
    first. Validation uses mask 0 (the main setting), or with ``mix`` mask i mod (1 + len(mix)) on
    validation slice i, so that every setting is validated."""

    pool: int = 64
    mix: list[MaskSpec] = field(default_factory=list)

    def settings(self) -> list[MaskSpec]:
        """The main setting, then those of ``mix``."""
        return [self, *self.mix]

    def setting(self, index: int) -> MaskSpec:
        """The setting of pool mask ``index``."""
        settings = self.settings()
        return settings[index % len(settings)]


@dataclass
class DataConfig:
    """Training data. ``coils``: None trains on single-coil k-space y = P F x; N >= 1 on N-coil k-space
    y_c = P F S_c x with the maps of lpam.physics.coils.simulate_coil_maps (sum_c |S_c|^2 = 1), given to the
    model as ``maps`` (docs/method.md section 1). ``coil_maps: measured`` instead trains on the measured coil
    k-space and stored maps of a dataset prepared with ``--keep-coils`` (``coils`` then optional: if given,
    it must be the dataset's coil count). ``trajectory`` ({kind, spokes, readout}) measures every sample on that
    radial trajectory (the NUFFT) instead of a mask; it excludes ``mask``."""

    source: str = "embedded"
    contrasts: list[str] = field(default_factory=lambda: ["T1", "T2"])
    train_split: str = "train"
    val_split: str = "val"
    mask: MaskConfig = field(default_factory=MaskConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    coils: int | None = None
    coil_maps: str = "simulated"
    trajectory: TrajectorySpec | None = None


def _trajectory_from(data_raw: dict) -> TrajectorySpec:
    """data.trajectory as a TrajectorySpec: a mapping {kind, spokes, readout}, exclusive with data.mask."""
    if "mask" in data_raw:
        raise ValueError("data.trajectory and data.mask exclude each other: measure on a trajectory or with a mask")
    raw = data_raw["trajectory"]
    if isinstance(raw, TrajectorySpec):
        return raw
    values = checked_options(TrajectorySpec, dict(raw), "data.trajectory section", prefix="data.trajectory")
    try:
        return TrajectorySpec(**values)
    except ValueError as error:
        raise ValueError(f"data.{error}") from None


@dataclass
class Stage:
    """Progressive training (docs/method.md section 4): ``epochs`` epochs with ``phases`` phases, in ``mode``
    (default: ``train.mode``; e.g. plain stages of a descent-rule network before convergent ones).
    ``gradient_phases`` (LPAM-net): backpropagate through the last that many phases only (truncated
    backpropagation, lpam.models.lpam_net.LPAMNet.forward), e.g. to train the count of phases deployed."""

    phases: int
    epochs: int
    mode: str | None = None
    gradient_phases: int | None = None


@dataclass
class TrainSettings:
    schedule: list[Stage] = field(default_factory=lambda: [Stage(3, 2), Stage(5, 2), Stage(15, 2)])
    mode: str = "plain"
    batch_size: int = 1
    # the batch's gradients accumulated over micro-batches of this many samples (memory of a micro-batch, the
    # step of the whole batch); None: the whole batch at once
    micro_batch_size: int | None = None
    lr: float = 1e-4
    lr_steps: float = 1e-4
    # "constant", or "cosine": every rate follows lr_factor (a half cosine over the schedule's steps)
    lr_decay: str = "constant"
    ssim_weight: float = 0.1
    descent_weight: float = 0.0  # LPAM-net: weight of the learned steps' descent violation in the loss
    # LPAM-net: recompute each phase in the backward pass instead of storing it (same gradients, one more forward
    # pass; convergent mode at K = 10 on 160x180 peaked at 5.1 GiB with it, about 17 GiB without)
    checkpoint_phases: bool = False
    seed: int = 0
    checkpoint_every: int = 50
    steps_per_epoch: int | None = None
    val_slices: int | None = None
    device: str = "cpu"
    init_from: str | None = None  # a checkpoint to start from (lpam.training.warm_start), not a resume
    # the rate of the network weights that init_from does not hold (e.g. a branch added to a trained network,
    # which starts from zero while the trained weights need small steps); None: lr
    lr_new: float | None = None
    # d in (0, 1): validate and keep as best.pt the exponential moving average of the weights,
    # w_avg <- d w_avg + (1 - d) w after every step (None: the weights themselves); it averages out the noise of
    # small-batch steps, e.g. when fine-tuning a trained network
    ema_decay: float | None = None
    # LPAM-net with model.initial_image "unet": the trained U-Net checkpoint its initial-image U-Net starts from
    initializer_from: str | None = None
    # LPAM-net: every phase's alpha set to this value at the start (after init_from), e.g. a step that the
    # warm-started network's Phi_eps accepts (docs/method.md section 4b, "Start")
    init_alpha: float | None = None

    def stage_mode(self, stage: Stage) -> str:
        """The mode a stage trains in: its own, else ``mode``."""
        return self.mode if stage.mode is None else stage.mode


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=LPAMNetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainSettings = field(default_factory=TrainSettings)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainConfig":
        if not isinstance(raw, dict):
            raise ValueError("a training config must be a mapping with sections model, data, train")
        checked_options(cls, raw, "config top-level")
        data_raw = dict(checked_options(DataConfig, dict(raw.get("data") or {}), "data section", prefix="data"))
        if "mask" in data_raw:
            mask_raw = dict(checked_options(MaskConfig, dict(data_raw["mask"]), "data.mask section", prefix="data.mask"))
            mask_raw["mix"] = [MaskSpec(**checked_options(MaskSpec, dict(entry), "data.mask.mix entry",
                                                          prefix="data.mask.mix"))
                               for entry in mask_raw.get("mix", [])]
            data_raw["mask"] = MaskConfig(**mask_raw)
        if "augment" in data_raw:
            data_raw["augment"] = AugmentConfig.from_dict(dict(data_raw["augment"]))
        if data_raw.get("trajectory") is not None:
            data_raw["trajectory"] = _trajectory_from(data_raw)
        train_raw = dict(checked_options(TrainSettings, dict(raw.get("train") or {}), "train section", prefix="train"))
        if "schedule" in train_raw:
            train_raw["schedule"] = [Stage(**checked_options(Stage, dict(s), "train.schedule section",
                                                             prefix="train.schedule")) for s in train_raw["schedule"]]
        model = model_config_from_dict(dict(raw.get("model") or {}))
        config = cls(model, DataConfig(**data_raw), TrainSettings(**train_raw))
        config.validate()
        return config

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """The config of the YAML file ``path``, its ``base`` chain resolved."""
        path = Path(path)
        raw = _resolved_yaml(path, ())
        try:
            return cls.from_dict(raw)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from error

    def validate(self) -> None:
        schedule = self.train.schedule
        if not schedule:
            raise ValueError("train.schedule needs at least one stage")
        for stage in schedule:
            if stage.epochs < 1:
                raise ValueError(f"stage epochs must be >= 1, got {stage.epochs}")
            self._validate_gradient_phases(stage)
        self.model.check_schedule([stage.phases for stage in schedule])
        modes = {self.train.mode} | {self.train.stage_mode(stage) for stage in schedule}
        for mode in sorted(modes):
            if mode not in MODES:
                raise ValueError(f"unknown training mode {mode!r} (train.mode or a stage's mode); choose one of "
                                 f"{', '.join(MODES)}")
            if mode not in self.model.modes:
                raise ValueError(f"train.mode must be {' or '.join(self.model.modes)} for the "
                                 f"{model_type_of(self.model)} (it has no {mode} mode)")
        if len(self.data.contrasts) != self.model.contrasts:
            raise ValueError(f"data.contrasts lists {len(self.data.contrasts)} contrasts, model.contrasts is {self.model.contrasts}")
        self._validate_coils()
        self._validate_trajectory()
        for name in ("lr", "lr_steps"):
            if not getattr(self.train, name) > 0:
                raise ValueError(f"train.{name} must be positive")
        if self.train.lr_new is not None and not (self.train.lr_new > 0 and self.train.init_from is not None):
            raise ValueError(f"train.lr_new must be a positive rate for the weights that train.init_from does not "
                             f"hold (it needs init_from), got {self.train.lr_new!r}")
        if self.train.initializer_from is not None and getattr(self.model, "initial_image", None) != "unet":
            raise ValueError("train.initializer_from needs an LPAM-net with model.initial_image 'unet'")
        if self.train.lr_decay not in LR_DECAYS:
            raise ValueError(f"unknown train.lr_decay {self.train.lr_decay!r}; choose one of {', '.join(LR_DECAYS)}")
        if self.train.init_alpha is not None and not (self.train.init_alpha > 0 and hasattr(self.model, "alpha_init")):
            raise ValueError(f"train.init_alpha must be a positive step size of LPAM-net, got {self.train.init_alpha}")
        decay = self.train.ema_decay  # a number or None: checked_options converted it
        if decay is not None and not 0 < decay < 1:
            raise ValueError(f"train.ema_decay must lie in (0, 1) (or null: no averaging), got {decay!r}")
        if not self.train.descent_weight >= 0:
            raise ValueError(f"train.descent_weight must be >= 0, got {self.train.descent_weight}")
        if self.train.descent_weight > 0 and not hasattr(self.model, "step_rule"):
            raise ValueError("train.descent_weight needs LPAM-net (it weights the acceptance test of its steps)")
        if not isinstance(self.train.checkpoint_phases, bool):
            raise ValueError(f"train.checkpoint_phases must be true or false, got {self.train.checkpoint_phases!r}")
        if self.train.checkpoint_phases and not hasattr(self.model, "step_rule"):
            raise ValueError("train.checkpoint_phases needs LPAM-net (it recomputes the network's phases)")
        if self.train.batch_size < 1 or self.train.checkpoint_every < 1 or self.data.mask.pool < 1:
            raise ValueError("train.batch_size, train.checkpoint_every and data.mask.pool must be >= 1")
        self._validate_counts()

    def _validate_gradient_phases(self, stage: Stage) -> None:
        count = stage.gradient_phases
        if count is None:
            return
        if not hasattr(self.model, "step_rule"):
            raise ValueError("train.schedule gradient_phases needs LPAM-net (it truncates the backpropagation "
                             "through the network's phases)")
        if not (is_whole_number(count) and count <= stage.phases):
            raise ValueError(f"a stage's gradient_phases must be a whole number in 1..{stage.phases} (its phases), "
                             f"got {count!r}")

    def _validate_counts(self) -> None:
        """Counts that must be >= 1 when given, weights / seeds that must be >= 0, contrasts named once."""
        check_unique(self.data.contrasts, "data.contrasts")
        for name in ("steps_per_epoch", "val_slices", "micro_batch_size"):
            value = getattr(self.train, name)
            if value is not None and value < 1:
                raise ValueError(f"train.{name} must be a whole number >= 1 (or null for all), got {value!r}")
        for name in ("ssim_weight", "seed"):
            if getattr(self.train, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self.train, name)!r}")
        if self.data.mask.seed < 0:
            raise ValueError(f"data.mask.seed must be >= 0, got {self.data.mask.seed!r}")
        for name in ("features", "layers", "channels"):  # LPAM-net's and the U-Net's sizes
            if getattr(self.model, name, 1) < 1:
                raise ValueError(f"model.{name} must be a whole number >= 1, got {getattr(self.model, name)!r}")

    def _validate_trajectory(self) -> None:
        if self.data.trajectory is None:
            return
        if self.data.coil_maps == "measured":
            raise ValueError("data.trajectory simulates k-space on the trajectory; measured coil k-space "
                             "(data.coil_maps: measured) is Cartesian")
        if getattr(self.model, "initial_image", None) == "learned":
            raise ValueError("model.initial_image 'learned' works on Cartesian k-space; use 'zero-filled' with "
                             "data.trajectory")

    def _validate_coils(self) -> None:
        if self.data.coil_maps not in COIL_MAPS:
            raise ValueError(f"unknown data.coil_maps {self.data.coil_maps!r}; choose one of {', '.join(COIL_MAPS)}")
        coils = self.data.coils
        if coils is not None and not is_whole_number(coils):
            raise ValueError(f"data.coils must be a whole number >= 1 (or null for single-coil data), got {coils!r}")
        multi_coil = coils is not None or self.data.coil_maps == "measured"
        if multi_coil and getattr(self.model, "initial_image", None) == "learned":
            raise ValueError("model.initial_image 'learned' works on single-coil k-space only; use 'zero-filled' "
                             "with multi-coil data (data.coils / data.coil_maps)")

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        if self.data.trajectory is not None:  # the mask is unused: left out, so that the dict loads again
            del values["data"]["mask"]
        values["model"] = {"type": model_type_of(self.model), **values["model"]}
        return values
