"""The arguments of each `lpam` command (:mod:`lpam.cli` builds the parser from them), and the option groups
several commands share."""
from __future__ import annotations

import argparse

from lpam.algorithm.lpam import Constants
from lpam.regularizers.tv import BOUNDARIES

IMAGE_SHAPE = (160, 180)  # px (H, W): the grid of the embedded data and of the paper's masks
DEFAULT_CONTRASTS = ("T1", "T2")  # the paper's pair, the contrasts of the shipped weights
TV_ITERATIONS = 300  # LPAM-TV iterations, as TVSettings: enough for the joint-TV baseline to settle
SUBSET_EVERY = 5  # benchmark: the masks other than radial-0.20 run on every 5th slice, to bound the run time
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # prepare: train / val / test shares of the subjects
MIN_FOREGROUND = 0.1  # prepare: a slice with less foreground (the volume's ends, mostly air) is dropped
MODES = ("plain", "convergent")  # LPAM-net's modes (docs/method.md)
SLICE_AXES = ("first", "last")  # --slice-axis: where the slices lie in a 3-D stack


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


# --- option groups shared by several commands ------------------------------------------------------------

def add_mask_options(parser: argparse.ArgumentParser, kind: str = "radial") -> None:
    """--mask, --rate, ... of the mask to make (lpam.cli.mask_spec reads them)."""
    from lpam.physics.masks import MASK_KINDS

    parser.add_argument("--mask", dest="mask_kind", default=None, choices=MASK_KINDS, help=f"mask kind (default {kind})")
    parser.add_argument("--rate", type=float, default=None, help="sampling rate (radial, variable-density, poisson)")
    parser.add_argument("--acceleration", type=float, default=None, help="acceleration (cartesian masks)")
    parser.add_argument("--center-fraction", type=float, default=None, help="fully sampled centre (cartesian)")
    parser.add_argument("--mask-seed", type=int, default=None, help="seed of the mask (default 0)")
    parser.set_defaults(default_mask_kind=kind)


def add_trajectory_options(parser: argparse.ArgumentParser) -> None:
    """--trajectory, --spokes, --readout: measure on a radial trajectory (the NUFFT) instead of a mask
    (lpam.cli.sampling_spec reads them)."""
    from lpam.physics.radial import TRAJECTORY_KINDS

    parser.add_argument("--trajectory", default=None, choices=TRAJECTORY_KINDS,
                        help="non-Cartesian k-space: radial spokes at golden-angle or uniform angles (radial NUFFT)")
    parser.add_argument("--spokes", type=int, default=None, help="spokes of --trajectory (default 64)")
    parser.add_argument("--readout", type=int, default=None,
                        help="samples per spoke (default 2 max(H, W): 2x readout oversampling)")


def add_phases_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phases", type=positive_int, default=None,
                        help="LPAM-net phases (default: the trained K; in convergent mode the count its checkpoint "
                             "stores, chosen on validation, if any); more than K repeats the last phase's steps")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """--data and --split of `evaluate` and `benchmark` (lpam.data.sources.load_evaluation_data)."""
    parser.add_argument("--data", default="embedded",
                        help="'embedded', a dataset from `lpam prepare`, or a .npy/.npz of images (S, C, H, W) in [0, 1]")
    parser.add_argument("--split", default="test", help="split of the embedded or prepared data: train, val, test")


def add_device_option(parser: argparse.ArgumentParser, default: str | None = "cpu", help: str = "cpu or cuda") -> None:
    parser.add_argument("--device", default=default, help=help)


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true")


def add_out_option(parser: argparse.ArgumentParser, help: str | None = None, default: str | None = None) -> None:
    """--out: required unless it has a default."""
    parser.add_argument("--out", required=default is None, default=default, help=help)


def add_checkpoint_option(parser: argparse.ArgumentParser, help: str = "default: the shipped weights") -> None:
    parser.add_argument("--checkpoint", default=None, help=help)


def add_mode_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=list(MODES), default="plain",
                        help="convergent: the acceptance test, safeguard and eps decay on every phase, for the "
                             "checkpoint's validation-chosen phase count (README, 'Robustness on Cartesian lines': "
                             "on inputs unlike the training data running past the trained K can cost quality)")


def add_slice_axis_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--slice-axis", choices=list(SLICE_AXES), default=None, help=help)


def add_shape_option(parser: argparse.ArgumentParser, flag: str) -> None:
    parser.add_argument(flag, type=int, nargs=2, default=list(IMAGE_SHAPE), metavar=("H", "W"))


# --- the arguments of each command, in the order of its --help ---------------------------------------------

def mask_arguments(parser: argparse.ArgumentParser) -> None:
    from lpam.physics.masks import MASK_KINDS

    parser.add_argument("--kind", default="radial", choices=MASK_KINDS)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--acceleration", type=float, default=None)
    parser.add_argument("--center-fraction", type=float, default=None)
    add_shape_option(parser, "--shape")
    parser.add_argument("--seed", type=int, default=0)
    add_out_option(parser)


def solve_arguments(parser: argparse.ArgumentParser) -> None:
    from lpam.reconstruction import SOLVER_ITERATIONS, SOLVERS

    parser.add_argument("--regularizer", default="joint-tv", choices=["joint-tv", "separate-tv"])
    parser.add_argument("--solver", default="lpam", choices=SOLVERS,
                        help="lpam: classical LPAM on the smoothed TV (default); primal-dual: the Condat-Vu "
                             "algorithm on the exact TV, solved to convergence (ignores --eps0, --a, --c, --sigma, "
                             "--no-safeguard, --no-eps-decay)")
    add_mask_options(parser)
    add_trajectory_options(parser)
    parser.add_argument("--split", default="test")
    parser.add_argument("--slices", default="0:4", help="'start:stop' or comma-separated positions in the split")
    parser.add_argument("--contrasts", nargs="+", default=list(DEFAULT_CONTRASTS),
                        help="embedded contrasts, one LPAM block each: T1, T2 and the synthetic PD")
    parser.add_argument("--iterations", type=int, default=None,
                        help="default by solver: " + ", ".join(f"{k} {v}" for k, v in SOLVER_ITERATIONS.items()))
    parser.add_argument("--lam", type=float, default=None,
                        help="TV weight (default: tuned on the validation slab for the mask, coupling and solver)")
    parser.add_argument("--eps0", type=float, default=None, help="starting eps (default: tuned)")
    parser.add_argument("--noise", type=float, default=0.0, help="std of complex k-space noise")
    parser.add_argument("--tv-boundary", choices=BOUNDARIES, default="zero",
                        help="TV's differences at the last row / column: zero (the published code), circular "
                             "(periodic) or zero-extension (x = 0 outside the image)")
    for name in ("a", "c", "sigma"):
        parser.add_argument(f"--{name}", type=float, default=getattr(Constants, name))
    parser.add_argument("--no-safeguard", action="store_true", help="always take the residual step")
    parser.add_argument("--no-eps-decay", action="store_true", help="keep eps fixed")
    add_quiet_option(parser)
    add_out_option(parser)


def train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True)
    add_out_option(parser, help="run directory (checkpoints, logs)")
    parser.add_argument("--resume", action="store_true", help="continue a stopped run from RUN_DIR/last.pt")
    add_device_option(parser, default=None, help="override train.device (cpu, cuda)")
    add_quiet_option(parser)


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    add_out_option(parser, default="lpam-demo")
    add_checkpoint_option(parser)
    parser.add_argument("--slices", default=None, help="positions in the test slab (default: all)")
    parser.add_argument("--convergent", action="store_true",
                        help="also run the convergent mode (history_convergent.json) and plot Phi_eps; always on "
                             "for a convergent network (the shipped default)")
    add_phases_option(parser)
    parser.add_argument("--tv-iterations", type=int, default=TV_ITERATIONS, help="iterations of the joint-TV baseline")
    add_device_option(parser, help="cpu or cuda (LPAM-net)")
    add_quiet_option(parser)


def evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from lpam.physics.coils import MAP_METHODS

    add_checkpoint_option(parser, help="default: the shipped LPAM-net")
    add_data_options(parser)
    parser.add_argument("--slices", default=None, help="'start:stop' or comma-separated positions (default: all)")
    add_mask_options(parser)
    parser.add_argument("--mask-file", default=None,
                        help="mask file (.npy .npz .mat, or a prepared dataset holding a mask) instead of --mask")
    add_trajectory_options(parser)
    add_mode_option(parser)
    add_phases_option(parser)
    parser.add_argument("--coils", type=int, default=None,
                        help="simulate k-space from this many coils (simulated maps); compare with RSS and SENSE zero-filled")
    parser.add_argument("--estimate-maps", nargs="?", const="auto", default=None, choices=MAP_METHODS,
                        help="with --coils: estimate the maps from the calibration region (auto: espirit with sigpy, "
                             "else lowres) instead of using the simulated ones")
    parser.add_argument("--contrasts", nargs="+", default=None,
                        help="contrasts of the data, in the model's order (default: those the checkpoint was trained on)")
    parser.add_argument("--name", default=None, help="method name in metrics.json (default: the checkpoint's stem)")
    add_device_option(parser)
    add_quiet_option(parser)
    add_out_option(parser)


def benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    from lpam.methods import BENCHMARK_MASKS, BENCHMARK_SAMPLINGS, METHODS
    from lpam.reconstruction import SOLVER_ITERATIONS

    add_out_option(parser)
    add_data_options(parser)
    parser.add_argument("--masks", nargs="+", default=list(BENCHMARK_MASKS), choices=list(BENCHMARK_SAMPLINGS),
                        help="masks and trajectories (radial-golden-64, radial-uniform-64: the radial NUFFT); "
                             "default: every mask")
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS),
                        help="default: every method for --contrasts (classical ones and models trained on them)")
    parser.add_argument("--contrasts", nargs="+", default=list(DEFAULT_CONTRASTS),
                        help="contrasts reconstructed jointly, e.g. T1 T2 PD (the embedded data has a synthetic PD)")
    parser.add_argument("--slices", default=None, help="positions in the split (default: all; the embedded test slab has 20)")
    parser.add_argument("--subset-every", type=int, default=SUBSET_EVERY,
                        help="masks other than radial-0.20 run on every N-th slice")
    parser.add_argument("--tv-iterations", type=int, default=TV_ITERATIONS,
                        help="LPAM iterations of joint-tv and separate-tv")
    parser.add_argument("--tv-pd-iterations", type=int, default=SOLVER_ITERATIONS["primal-dual"],
                        help="primal-dual iterations of joint-tv-pd (joint TV solved to convergence)")
    parser.add_argument("--retrain", action="store_true",
                        help="train each learned model for each mask (runs in OUT/runs, resumable) instead of the shipped "
                             "weights, on the --data prepared dataset if given (else the embedded slab)")
    parser.add_argument("--retrain-steps", type=int, default=None, help="cap the steps per epoch when retraining")
    add_device_option(parser)
    add_quiet_option(parser)


def prepare_arguments(parser: argparse.ArgumentParser) -> None:
    from lpam.data.layouts.registry import LAYOUTS

    parser.add_argument("--data", required=True, help="dataset folder (or one .npz file)")
    hints = "; ".join(f"{name}: {layout.hint}" for name, layout in LAYOUTS.items())
    parser.add_argument("--format", default=None, choices=list(LAYOUTS), help=f"layout (default: detected): {hints}")
    parser.add_argument("--contrasts", nargs="+", default=list(DEFAULT_CONTRASTS))
    add_shape_option(parser, "--size")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=list(SPLIT_FRACTIONS),
                        metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--min-foreground", type=float, default=MIN_FOREGROUND,
                        help="keep slices with at least this foreground fraction")
    parser.add_argument("--measured-kspace", action="store_true",
                        help="h5 / mat / npz: keep the measured k-space (complex images, nothing re-simulated)")
    parser.add_argument("--keep-coils", action="store_true",
                        help="with --measured-kspace, h5: keep multi-coil k-space per coil (coil images and coil maps "
                             "estimated from the k-space centre) instead of combining the coils")
    parser.add_argument("--repetitions", choices=["average", "first"], default="average",
                        help="h5: average the repetitions of a contrast (M4Raw T101..T103) or keep the first")
    add_slice_axis_option(parser, "mat / npz: axis of the slices in 3-D stacks (default: last for .mat, first for .npz)")
    add_quiet_option(parser)
    add_out_option(parser, help="prepared dataset (.npz)")


def reconstruct_arguments(parser: argparse.ArgumentParser) -> None:
    from lpam.physics.coils import MAP_METHODS

    parser.add_argument("inputs", nargs="+", help="one file per contrast (.npy .npz .mat .nii .nii.gz, ISMRMRD .h5)")
    parser.add_argument("--contrasts", nargs="+", default=None, help="names of the contrasts (default T1 T2)")
    parser.add_argument("--input-type", choices=["image", "kspace", "ismrmrd"], default="image",
                        help="images to undersample, measured centred k-space (4-D: multi-coil), or ISMRMRD raw "
                             "data (.h5, one file per contrast)")
    parser.add_argument("--estimate-maps", default="lowres", choices=MAP_METHODS,
                        help="multi-coil k-space: how coil maps are estimated from the calibration region")
    parser.add_argument("--mask-file", default=None, help="mask file (.npy .npz .mat); default: make one")
    add_mask_options(parser)
    add_trajectory_options(parser)
    parser.add_argument("--trajectory-file", default=None,
                        help=".npy of k-space coordinates (2, K) or (K, 2) in radians per pixel, [-pi, pi]: the "
                             "trajectory of --input-type kspace samples (K,) or (Nc, K) per contrast")
    parser.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="image grid of k-space on a trajectory (--input-type kspace)")
    add_checkpoint_option(parser)
    add_mode_option(parser)
    add_phases_option(parser)
    add_slice_axis_option(parser, "axis of the slices in 3-D arrays (default: last for NIfTI and .mat (H, W, S), "
                                  "first for .npy / .npz (S, H, W))")
    add_device_option(parser)
    add_quiet_option(parser)
    add_out_option(parser)
