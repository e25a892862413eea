"""`lpam` command line: a thin layer over the Python API (lpam.workflows, lpam.training, lpam.physics); the
arguments of each command are in lpam.cli_arguments."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from lpam import cli_arguments as arguments
from lpam.algorithm.lpam import Constants
from lpam.options import parse_slices

DEFAULT_RATE = 0.2  # the paper's radial 20% mask: the rate when neither --rate nor --acceleration is given
TV_RHO = 0.5  # backtracking factor rho of `lpam solve`, as TVSettings' constants (the algorithm's default is 0.9)

MASK_OPTIONS = {"mask_kind": "--mask", "rate": "--rate", "acceleration": "--acceleration",
                "center_fraction": "--center-fraction", "mask_seed": "--mask-seed"}
TRAJECTORY_OPTIONS = {"spokes": "--spokes", "readout": "--readout"}
# `lpam solve` options the primal-dual solver ignores (a warning says so when given)
LPAM_ONLY_OPTIONS = {"--eps0": lambda a: a.eps0 is not None, "--no-safeguard": lambda a: a.no_safeguard,
                     "--no-eps-decay": lambda a: a.no_eps_decay,
                     **{f"--{k}": lambda a, k=k: getattr(a, k) != getattr(Constants, k) for k in ("a", "c", "sigma")}}


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
        rate = DEFAULT_RATE
    seed = 0 if args.mask_seed is None else args.mask_seed
    return MaskSpec(kind, rate, args.acceleration, args.center_fraction, seed)


def sampling_spec(args: argparse.Namespace):
    """The TrajectorySpec of --trajectory, --spokes, --readout, else :func:`mask_spec`; a trajectory excludes
    the mask options and mask files, and --spokes / --readout need --trajectory (conflict errors)."""
    from lpam.physics.radial import TrajectorySpec

    if getattr(args, "trajectory", None) is None:
        given = [option for key, option in TRAJECTORY_OPTIONS.items() if getattr(args, key, None) is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} need --trajectory (radial-golden or radial-uniform)")
        if getattr(args, "trajectory_file", None) is None:
            return mask_spec(args)
        given = [option for key, option in {**MASK_OPTIONS, "mask_file": "--mask-file"}.items()
                 if getattr(args, key, None) is not None]
        if given:
            raise ValueError(f"--trajectory-file and {', '.join(given)} conflict: give a trajectory or a mask")
        return None
    conflicting = {**MASK_OPTIONS, "mask_file": "--mask-file", "trajectory_file": "--trajectory-file"}
    given = [option for key, option in conflicting.items() if getattr(args, key, None) is not None]
    if given:
        raise ValueError(f"--trajectory and {', '.join(given)} conflict: give a trajectory or a mask")
    spokes = TrajectorySpec.spokes if args.spokes is None else args.spokes
    return TrajectorySpec(args.trajectory, spokes, args.readout)


def command_mask(args: argparse.Namespace) -> None:
    from lpam.data.mask_files import save_mask
    from lpam.physics.masks import make_mask

    rate = DEFAULT_RATE if args.rate is None and not args.kind.startswith("cartesian") else args.rate
    mask = make_mask(args.kind, tuple(args.shape), rate=rate, acceleration=args.acceleration,
                     center_fraction=args.center_fraction, seed=args.seed)
    out = Path(args.out)
    if out.suffix != ".npy":
        raise ValueError(f"--out must end in .npy, got {out}")
    save_mask(mask, out, title=f"{args.kind}, achieved rate {mask.mean():.3f}")
    print(f"wrote {out} and {out.with_suffix('.png')} (sampling rate {mask.mean():.4f})")


def command_solve(args: argparse.Namespace) -> None:
    from lpam.tv_tuning import tuned_settings
    from lpam.workflows import REGULARIZERS, format_table, solve_embedded

    ignored = [flag for flag, given in LPAM_ONLY_OPTIONS.items() if given(args)]
    if args.solver != "lpam" and ignored:
        warnings.warn(f"{', '.join(ignored)}: LPAM's options, ignored by the {args.solver} solver")
    constants = Constants(a=args.a, c=args.c, sigma=args.sigma, rho=TV_RHO)
    spec = sampling_spec(args)
    settings = tuned_settings(spec, REGULARIZERS[args.regularizer], args.lam, args.eps0, solver=args.solver,
                              iterations=args.iterations, safeguard=not args.no_safeguard,
                              eps_decay=not args.no_eps_decay, constants=constants, boundary=args.tv_boundary)
    metrics = solve_embedded(args.out, args.regularizer, spec, args.split, parse_slices(args.slices),
                             settings, noise_std=args.noise, progress=not args.quiet, contrasts=args.contrasts)
    print(format_table(metrics, args.contrasts))
    if "branches" in metrics:
        print(f"branches: {metrics['branches']}", end="; ")
    else:
        last = metrics["primal_dual"]
        print(f"{settings.iterations} primal-dual iterations; last objective per slice "
              f"{', '.join(f'{v:.6g}' for v in last['objective'])}; last ||x^(k+1) - x^k|| "
              f"{max(last['primal_change']):.2e}", end="; ")
    print(f"wrote recon.npy, figure.png, convergence.png, history.json, metrics.json to {args.out}")


def command_train(args: argparse.Namespace) -> None:
    from lpam.training.config import TrainConfig
    from lpam.training.trainer import train

    config = TrainConfig.load(args.config)
    if args.device is not None:
        config.train.device = args.device
    best = train(config, args.out, resume=args.resume, quiet=args.quiet)
    print(f"training finished; best checkpoint: {best}")


def command_demo(args: argparse.Namespace) -> None:
    from lpam.reconstruction import TVSettings
    from lpam.workflows import format_table, run_demo

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

    written, model = reconstruct_files(
        inputs=args.inputs, contrasts=args.contrasts, out_dir=args.out, input_type=args.input_type,
        mask_file=args.mask_file, mask=sampling_spec(args), checkpoint=args.checkpoint, mode=args.mode,
        phases=args.phases, progress=not args.quiet, device=args.device, slice_axis=args.slice_axis,
        estimate_maps=args.estimate_maps, trajectory_file=args.trajectory_file, image_size=args.image_size,
    )
    print(f"model: {model}")
    print("wrote " + ", ".join(str(p) for p in written))


def command_evaluate(args: argparse.Namespace) -> None:
    from lpam.evaluation import evaluate_checkpoint
    from lpam.workflows import format_table

    metrics = evaluate_checkpoint(args.checkpoint, args.out, args.data, args.split, parse_slices(args.slices),
                                  sampling_spec(args), args.mode, args.name, args.device, progress=not args.quiet,
                                  mask_file=args.mask_file, coils=args.coils, estimate_maps=args.estimate_maps,
                                  contrasts=args.contrasts, phases=args.phases)
    print(f"model: {metrics['checkpoint']}")
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
                            data=args.data, split=args.split, contrasts=args.contrasts,
                            tv_pd_iterations=args.tv_pd_iterations)
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


def _commands() -> tuple:
    """(name, help, the function adding its arguments, handler) of each command, in the order of `lpam --help`.
    Built at each call, so that the handlers are looked up when the parser is built."""
    return (
        ("mask", "make a k-space sampling mask (.npy and .png)", arguments.mask_arguments, command_mask),
        ("solve", "classical LPAM with TV on the embedded data", arguments.solve_arguments, command_solve),
        ("train", "train LPAM-net (or the U-Net baseline) from a YAML config", arguments.train_arguments,
         command_train),
        ("demo", "LPAM-net with the shipped weights on the embedded test slab", arguments.demo_arguments,
         command_demo),
        ("evaluate", "evaluate one checkpoint (and zero-filled) on a split or your images",
         arguments.evaluate_arguments, command_evaluate),
        ("benchmark", "every method and mask on the embedded test slab or your data: tables and figures",
         arguments.benchmark_arguments, command_benchmark),
        ("prepare", "pair, select, crop, normalise and split a dataset for train/evaluate",
         arguments.prepare_arguments, command_prepare),
        ("reconstruct", "reconstruct your own data with LPAM-net", arguments.reconstruct_arguments,
         command_reconstruct),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpam", description="LPAM and LPAM-net for joint multi-contrast MRI")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, handler in _commands():
        command = commands.add_parser(name, help=help_text)
        add_arguments(command)
        command.set_defaults(handler=handler)
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
