"""`lpam` command line: a thin layer over the Python API (lpam.workflows, lpam.training, lpam.physics)."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from lpam.algorithm.lpam import Constants
from lpam.options import parse_slices
from lpam.regularizers.tv import BOUNDARIES


def add_mask_options(parser: argparse.ArgumentParser, kind: str = "radial") -> None:
    from lpam.physics.masks import MASK_KINDS

    parser.add_argument("--mask", dest="mask_kind", default=None, choices=MASK_KINDS, help=f"mask kind (default {kind})")
    parser.add_argument("--rate", type=float, default=None, help="sampling rate (radial, variable-density, poisson)")
    parser.add_argument("--acceleration", type=float, default=None, help="acceleration (cartesian masks)")
    parser.add_argument("--center-fraction", type=float, default=None, help="fully sampled centre (cartesian)")
    parser.add_argument("--mask-seed", type=int, default=None, help="seed of the mask (default 0)")
    parser.set_defaults(default_mask_kind=kind)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def add_phases_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phases", type=positive_int, default=None,
                        help="LPAM-net phases (default: the trained K); more than K repeats the last phase's steps")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """--data and --split of `evaluate` and `benchmark` (lpam.data.sources.load_evaluation_data)."""
    parser.add_argument("--data", default="embedded",
                        help="'embedded', a dataset from `lpam prepare`, or a .npy/.npz of images (S, C, H, W) in [0, 1]")
    parser.add_argument("--split", default="test", help="split of the embedded or prepared data: train, val, test")


MASK_OPTIONS = {"mask_kind": "--mask", "rate": "--rate", "acceleration": "--acceleration",
                "center_fraction": "--center-fraction", "mask_seed": "--mask-seed"}


def mask_spec(args: argparse.Namespace):
    """The MaskSpec of --mask, --rate, ...; None with --mask-file (which excludes them: a conflict error)."""
    from lpam.physics.masks import MaskSpec

    if getattr(args, "mask_file", None) is not None:
        given = [option for key, option in MASK_OPTIONS.items() if getattr(args, key) is not None]
        if given:
            raise ValueError(f"--mask-file and {', '.join(given)} conflict: give the mask file or the mask to make")
        return None
    kind = args.mask_kind or args.default_mask_kind
    rate = args.rate
    if rate is None and args.acceleration is None and not kind.startswith("cartesian"):
        rate = 0.2
    seed = 0 if args.mask_seed is None else args.mask_seed
    return MaskSpec(kind, rate, args.acceleration, args.center_fraction, seed)


def command_mask(args: argparse.Namespace) -> None:
    from lpam.physics.masks import make_mask, save_mask

    mask = make_mask(args.kind, tuple(args.shape), rate=args.rate, acceleration=args.acceleration,
                     center_fraction=args.center_fraction, seed=args.seed)
    out = Path(args.out)
    if out.suffix != ".npy":
        raise ValueError(f"--out must end in .npy, got {out}")
    save_mask(mask, out, title=f"{args.kind}, achieved rate {mask.mean():.3f}")
    print(f"wrote {out} and {out.with_suffix('.png')} (sampling rate {mask.mean():.4f})")


def command_solve(args: argparse.Namespace) -> None:
    from lpam.reconstruction import TVSettings
    from lpam.workflows import format_table, solve_embedded

    constants = Constants(a=args.a, c=args.c, sigma=args.sigma, rho=0.5)
    settings = TVSettings(lam=TVSettings.lam if args.lam is None else args.lam, iterations=args.iterations,
                          eps0=TVSettings.eps0 if args.eps0 is None else args.eps0,
                          safeguard=not args.no_safeguard, eps_decay=not args.no_eps_decay, constants=constants,
                          boundary=args.tv_boundary)
    metrics = solve_embedded(args.out, args.regularizer, mask_spec(args), args.split, parse_slices(args.slices),
                             settings, noise_std=args.noise, progress=not args.quiet, contrasts=args.contrasts)
    print(format_table(metrics, args.contrasts))
    print(f"branches: {metrics['branches']}; wrote recon.npy, figure.png, convergence.png, history.json, "
          f"metrics.json to {args.out}")


def command_train(args: argparse.Namespace) -> None:
    from lpam.training.config import TrainConfig
    from lpam.training.trainer import train

    config = TrainConfig.load(args.config)
    if args.device is not None:
        config.train.device = args.device
    best = train(config, args.out, resume=args.resume, quiet=args.quiet)
    print(f"training finished; best checkpoint: {best}")


def command_demo(args: argparse.Namespace) -> None:
    from lpam.workflows import format_table, run_demo

    from lpam.reconstruction import TVSettings

    metrics = run_demo(args.out, args.checkpoint, parse_slices(args.slices), TVSettings(iterations=args.tv_iterations),
                       convergent=args.convergent, progress=not args.quiet, device=args.device, phases=args.phases)
    print(f"{metrics['model']}: {metrics['params'][metrics['model']]:,} parameters, {metrics['phases']} phases; "
          f"mask radial 20% (achieved {metrics['mask']['achieved_rate']:.3f}); test slices {metrics['slices'][0]}.."
          f"{metrics['slices'][-1]}")
    print(format_table(metrics, ["T1", "T2"]))
    written = "metrics.json and figure.png"
    if "convergent" in metrics:
        print(f"convergent mode branches: {metrics['convergent']}")
        written = "metrics.json, figure.png, history_convergent.json and convergence.png"
    print(f"headline: {metrics['headline']}; wrote {written} to {args.out}")


def command_reconstruct(args: argparse.Namespace) -> None:
    from lpam.user_data import reconstruct_files

    written = reconstruct_files(
        inputs=args.inputs, contrasts=args.contrasts, out_dir=args.out, input_type=args.input_type,
        mask_file=args.mask_file, mask=mask_spec(args), checkpoint=args.checkpoint, mode=args.mode, phases=args.phases,
        progress=not args.quiet, device=args.device, slice_axis=args.slice_axis,
    )
    print("wrote " + ", ".join(str(p) for p in written))


def command_evaluate(args: argparse.Namespace) -> None:
    from lpam.evaluation import evaluate_checkpoint
    from lpam.workflows import format_table

    metrics = evaluate_checkpoint(args.checkpoint, args.out, args.data, args.split, parse_slices(args.slices),
                                  mask_spec(args), args.mode, args.name, args.device, progress=not args.quiet,
                                  mask_file=args.mask_file, coils=args.coils, estimate_maps=args.estimate_maps,
                                  contrasts=args.contrasts, phases=args.phases)
    print(f"{metrics['data']}, {len(metrics['slices'])} slices, mask {metrics['mask']['kind']} "
          f"(achieved rate {metrics['mask']['achieved_rate']:.3f}), mode {metrics['mode']}")
    if "coils" in metrics:
        print(f"{metrics['coils']['count']} simulated coils, maps {metrics['coils']['maps']}")
    print(format_table(metrics, list(next(iter(metrics["methods"].values())))))
    print(f"wrote metrics.json and figure.png to {args.out}")


def command_benchmark(args: argparse.Namespace) -> None:
    from lpam.evaluation import retrain, run_benchmark
    from lpam.methods import methods_for

    checkpoints, methods = None, args.methods or methods_for(args.contrasts)
    if args.retrain:
        checkpoints = retrain(args.out, args.masks, methods, args.retrain_steps, args.device, not args.quiet,
                              data=args.data)
    metrics = run_benchmark(args.out, args.masks, methods, parse_slices(args.slices), args.subset_every,
                            args.tv_iterations, checkpoints, args.device, progress=not args.quiet,
                            data=args.data, split=args.split, contrasts=args.contrasts)
    print((Path(args.out) / "results.md").read_text())
    print(f"benchmark finished in {metrics['seconds_total']:.0f} s; wrote results.md, metrics.json and figures to {args.out}")


def command_prepare(args: argparse.Namespace) -> None:
    from lpam.data.prepare import prepare

    summary = prepare(args.data, args.out, args.contrasts, tuple(args.size), args.format,
                      tuple(args.split_fractions), args.min_foreground, progress=not args.quiet,
                      measured_kspace=args.measured_kspace, repetitions=args.repetitions, slice_axis=args.slice_axis,
                      keep_coils=args.keep_coils)
    kind = "complex images of the measured k-space" if summary["measured_kspace"] else "magnitudes"
    if summary["coils"] is not None:
        kind += f", {summary['coils']} coil images and coil maps"
    print(f"format {summary['format']}; wrote {args.out} ({kind})")
    for split, counts in summary["splits"].items():
        print(f"  {split:<5} {counts['subjects']:>5} subjects {counts['slices']:>7} slices")
    for name, absent in summary["skipped"].items():
        print(f"  skipped {name}: missing {', '.join(absent)}")
    mask = summary["mask"]
    if mask is not None:
        shape = "x".join(map(str, mask["shape"]))
        if mask["stored"]:
            print(f"  mask {mask['file']} ({shape}, rate {mask['rate']:.3f}) stored: "
                  f"lpam evaluate --data {args.out} --mask-file {args.out}")
        else:
            print(f"  mask {mask['file']} ({shape}) not stored: it is not on the prepared {args.size[0]}x{args.size[1]} "
                  "grid (a k-space mask does not survive an image-space crop); prepare with --size "
                  f"{' '.join(map(str, mask['shape']))} to keep it")


def build_parser() -> argparse.ArgumentParser:
    from lpam.physics.coils import MAP_METHODS
    from lpam.physics.masks import MASK_KINDS

    parser = argparse.ArgumentParser(prog="lpam", description="LPAM and LPAM-net for joint multi-contrast MRI")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("mask", help="make a k-space sampling mask (.npy and .png)")
    p.add_argument("--kind", default="radial", choices=MASK_KINDS)
    p.add_argument("--rate", type=float, default=None)
    p.add_argument("--acceleration", type=float, default=None)
    p.add_argument("--center-fraction", type=float, default=None)
    p.add_argument("--shape", type=int, nargs=2, default=[160, 180], metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(handler=command_mask)

    p = commands.add_parser("solve", help="classical LPAM with TV on the embedded data")
    p.add_argument("--regularizer", default="joint-tv", choices=["joint-tv", "separate-tv"])
    add_mask_options(p)
    p.add_argument("--split", default="test")
    p.add_argument("--slices", default="0:4", help="'start:stop' or comma-separated positions in the split")
    p.add_argument("--contrasts", nargs="+", default=["T1", "T2"],
                   help="embedded contrasts, one LPAM block each: T1, T2 and the synthetic PD")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--lam", type=float, default=None, help="TV weight (default: tuned on the validation slab)")
    p.add_argument("--eps0", type=float, default=None, help="starting eps (default: tuned)")
    p.add_argument("--noise", type=float, default=0.0, help="std of complex k-space noise")
    p.add_argument("--tv-boundary", choices=BOUNDARIES, default="zero",
                   help="TV's differences at the last row / column: zero (the published code) or periodic")
    p.add_argument("--a", type=float, default=Constants.a)
    p.add_argument("--c", type=float, default=Constants.c)
    p.add_argument("--sigma", type=float, default=Constants.sigma)
    p.add_argument("--no-safeguard", action="store_true", help="always take the residual step")
    p.add_argument("--no-eps-decay", action="store_true", help="keep eps fixed")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=command_solve)

    p = commands.add_parser("train", help="train LPAM-net (or the U-Net baseline) from a YAML config")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs)")
    p.add_argument("--resume", action="store_true", help="continue a stopped run from RUN_DIR/last.pt")
    p.add_argument("--device", default=None, help="override train.device (cpu, cuda)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=command_train)

    p = commands.add_parser("demo", help="LPAM-net with the shipped weights on the embedded test slab")
    p.add_argument("--out", default="lpam-demo")
    p.add_argument("--checkpoint", default=None, help="default: the shipped weights")
    p.add_argument("--slices", default=None, help="positions in the test slab (default: all)")
    p.add_argument("--convergent", action="store_true",
                   help="also run the convergent mode (history_convergent.json) and plot Phi_eps; always on "
                        "for a convergent network (the shipped default)")
    add_phases_option(p)
    p.add_argument("--tv-iterations", type=int, default=300, help="iterations of the joint-TV baseline")
    p.add_argument("--device", default="cpu", help="cpu or cuda (LPAM-net)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=command_demo)

    p = commands.add_parser("evaluate", help="evaluate one checkpoint (and zero-filled) on a split or your images")
    p.add_argument("--checkpoint", default=None, help="default: the shipped LPAM-net")
    add_data_options(p)
    p.add_argument("--slices", default=None, help="'start:stop' or comma-separated positions (default: all)")
    add_mask_options(p)
    p.add_argument("--mask-file", default=None,
                   help="mask file (.npy .npz .mat, or a prepared dataset holding a mask) instead of --mask")
    p.add_argument("--mode", choices=["plain", "convergent"], default="plain")
    add_phases_option(p)
    p.add_argument("--coils", type=int, default=None,
                   help="simulate k-space from this many coils (simulated maps); compare with RSS and SENSE zero-filled")
    p.add_argument("--estimate-maps", nargs="?", const="auto", default=None, choices=MAP_METHODS,
                   help="with --coils: estimate the maps from the calibration region (auto: espirit with sigpy, "
                        "else lowres) instead of using the simulated ones")
    p.add_argument("--contrasts", nargs="+", default=None,
                   help="contrasts of the data, in the model's order (default: those the checkpoint was trained on)")
    p.add_argument("--name", default=None, help="method name in metrics.json (default: the checkpoint's stem)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=command_evaluate)

    from lpam.methods import BENCHMARK_MASKS, METHODS

    p = commands.add_parser("benchmark", help="every method and mask on the embedded test slab or your data: tables and figures")
    p.add_argument("--out", required=True)
    add_data_options(p)
    p.add_argument("--masks", nargs="+", default=list(BENCHMARK_MASKS), choices=list(BENCHMARK_MASKS))
    p.add_argument("--methods", nargs="+", default=None, choices=list(METHODS),
                   help="default: every method for --contrasts (classical ones and models trained on them)")
    p.add_argument("--contrasts", nargs="+", default=["T1", "T2"],
                   help="contrasts reconstructed jointly, e.g. T1 T2 PD (the embedded data has a synthetic PD)")
    p.add_argument("--slices", default=None, help="positions in the split (default: all; the embedded test slab has 20)")
    p.add_argument("--subset-every", type=int, default=5,
                   help="masks other than radial-0.20 run on every N-th slice")
    p.add_argument("--tv-iterations", type=int, default=300)
    p.add_argument("--retrain", action="store_true",
                   help="train each learned model for each mask (runs in OUT/runs, resumable) instead of the shipped "
                        "weights, on the --data prepared dataset if given (else the embedded slab)")
    p.add_argument("--retrain-steps", type=int, default=None, help="cap the steps per epoch when retraining")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=command_benchmark)

    p = commands.add_parser("prepare", help="pair, select, crop, normalise and split a dataset for train/evaluate")
    p.add_argument("--data", required=True, help="dataset folder (or one .npz file)")
    from lpam.data.layouts.registry import LAYOUTS

    hints = "; ".join(f"{name}: {layout.hint}" for name, layout in LAYOUTS.items())
    p.add_argument("--format", default=None, choices=list(LAYOUTS), help=f"layout (default: detected): {hints}")
    p.add_argument("--contrasts", nargs="+", default=["T1", "T2"])
    p.add_argument("--size", type=int, nargs=2, default=[160, 180], metavar=("H", "W"))
    p.add_argument("--split-fractions", type=float, nargs=3, default=[0.8, 0.1, 0.1], metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--min-foreground", type=float, default=0.1, help="keep slices with at least this foreground fraction")
    p.add_argument("--measured-kspace", action="store_true",
                   help="h5 / mat / npz: keep the measured k-space (complex images, nothing re-simulated)")
    p.add_argument("--keep-coils", action="store_true",
                   help="with --measured-kspace, h5: keep multi-coil k-space per coil (coil images and coil maps "
                        "estimated from the k-space centre) instead of combining the coils")
    p.add_argument("--repetitions", choices=["average", "first"], default="average",
                   help="h5: average the repetitions of a contrast (M4Raw T101..T103) or keep the first")
    p.add_argument("--slice-axis", choices=["first", "last"], default=None,
                   help="mat / npz: axis of the slices in 3-D stacks (default: last for .mat, first for .npz)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True, help="prepared dataset (.npz)")
    p.set_defaults(handler=command_prepare)

    p = commands.add_parser("reconstruct", help="reconstruct your own data with LPAM-net")
    p.add_argument("inputs", nargs="+", help="one file per contrast (.npy .npz .mat .nii .nii.gz)")
    p.add_argument("--contrasts", nargs="+", default=None, help="names of the contrasts (default T1 T2)")
    p.add_argument("--input-type", choices=["image", "kspace"], default="image",
                   help="images to undersample, or measured centred k-space")
    p.add_argument("--mask-file", default=None, help="mask file (.npy .npz .mat); default: make one")
    add_mask_options(p)
    p.add_argument("--checkpoint", default=None, help="default: the shipped weights")
    p.add_argument("--mode", choices=["plain", "convergent"], default="plain")
    add_phases_option(p)
    p.add_argument("--slice-axis", choices=["first", "last"], default=None,
                   help="axis of the slices in 3-D arrays (default: last for NIfTI and .mat (H, W, S), first for "
                        ".npy / .npz (S, H, W))")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=command_reconstruct)
    return parser


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parsed arguments; an unknown option is reported by its command's parser (``lpam <command>: error``)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"lpam {args.command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            args.handler(args)
        except (ValueError, OSError, FloatingPointError) as error:
            # ValueError: bad input (configs, files, options); OSError: the file system (missing, read-only
            # or occupied paths, a full disk)
            print(f"lpam {args.command}: error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
