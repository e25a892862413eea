"""The training and validation samples of a config: its mask pool, and the data transform
(:mod:`lpam.data.transforms`) of its data source, coils and augmentation."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from lpam.data.sources import EvaluationData, load_evaluation_data
from lpam.data.transforms import DataTransform, MaskDraw, collate, data_transform, evaluation_samples, fixed_masks
from lpam.physics.masks import make_mask
from lpam.physics.mri import ContrastPhysics
from lpam.training.config import DataConfig, MaskConfig, TrainConfig

Batch = tuple[torch.Tensor, ContrastPhysics, torch.Tensor]  # (k-space, physics, targets |x|)


@lru_cache(maxsize=512)
def _cached_mask(kind: str, shape: tuple[int, int], rate: float | None, acceleration: float | None,
                 center_fraction: float | None, seed: int) -> torch.Tensor:
    mask = make_mask(kind, shape, rate=rate, acceleration=acceleration, center_fraction=center_fraction, seed=seed)
    return torch.from_numpy(np.ascontiguousarray(mask))


def mask_for(config: MaskConfig, shape: tuple[int, int], index: int) -> torch.Tensor:
    """Mask number ``index`` of the pool: the setting :meth:`MaskConfig.setting` gives it, seed
    ``config.seed + index`` (cached: masks are reused)."""
    setting = config.setting(index)
    return _cached_mask(setting.kind, tuple(shape), setting.rate, setting.acceleration, setting.center_fraction,
                        config.seed + index)


def pool_draw(config: MaskConfig) -> MaskDraw:
    """Each training sample draws one mask of the pool."""
    return lambda shape, index, rng: mask_for(config, shape, int(rng.integers(config.pool)))


def sampling_draw(config: DataConfig) -> MaskDraw:
    """The training samples' draw: the trajectory of ``data.trajectory`` (every sample), else a pool mask."""
    return fixed_masks(config.trajectory) if config.trajectory is not None else pool_draw(config.mask)


def validation_masks(config: MaskConfig, shape: tuple[int, int], count: int) -> torch.Tensor:
    """The validation mask: mask 0 of the pool (H, W); with a mask ``mix``, mask i mod (1 + len(mix)) for
    validation slice i, (count, H, W), so that every setting of the mix is validated."""
    if not config.mix:
        return mask_for(config, shape, 0)
    settings = len(config.settings())
    return torch.stack([mask_for(config, shape, i % settings) for i in range(count)])


def config_transform(data: EvaluationData, config: TrainConfig, draw_mask: MaskDraw,
                     augment: bool = True) -> DataTransform:
    """The transform of ``data`` under ``config``: ``data.coils`` simulated coils, or the measured coils of a
    ``--keep-coils`` dataset with ``data.coil_maps: measured`` (errors name the dataset)."""
    measured = config.data.coil_maps == "measured"
    if measured and data.coil_images is None:
        raise ValueError(f"{data.source}: data.coil_maps 'measured' needs a dataset prepared with --measured-kspace "
                         "--keep-coils (measured multi-coil k-space)")
    if measured and config.data.coils not in (None, data.coil_images.shape[2]):
        raise ValueError(f"{data.source}: holds {data.coil_images.shape[2]} coils, data.coils is {config.data.coils}")
    settings = config.data.augment if augment else type(config.data.augment)(enabled=False)
    return data_transform(data, settings, draw_mask, None if measured else config.data.coils, measured)


def make_batch(transform: DataTransform, indices: list[int], seed: int, seed_key: tuple[int, ...]) -> Batch:
    """The samples at ``indices``, sample i drawing its random choices from a generator seeded by
    (seed, *seed_key, i): the same in every process and after a resume."""
    return collate([transform(index, np.random.default_rng([seed, *seed_key, index])) for index in indices])


def validation_data(config: TrainConfig) -> Batch:
    """The first ``val_slices`` of the validation split with the validation mask(s) (:func:`validation_masks`)
    or the trajectory, noise-free, no augmentation."""
    split = load_evaluation_data(config.data.source, config.data.val_split, contrasts=config.data.contrasts)
    count = len(range(split.images.shape[0])[slice(config.train.val_slices)])
    masks = config.data.trajectory or validation_masks(config.data.mask, tuple(split.images.shape[-2:]), count)
    transform = config_transform(split, config, fixed_masks(masks), augment=False)
    return evaluation_samples(transform, list(range(count)))
