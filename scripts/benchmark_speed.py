"""Speed and memory of LPAM-net on one 160x180 T1/T2 pair (a benchmark, not a test).

Reports seconds per pair for inference (plain and convergent), seconds per training step, peak memory of
each (each part runs in a fresh process: resident memory on the CPU, torch.cuda.max_memory_allocated on
a GPU), the model's FLOPs per pair (counted by torch.utils.flop_counter: convolutions, 2 FLOPs per
multiply-add, 4 real products per complex one) and the achieved FLOP rate against a 2048x2048 fp32 matmul
timed in the same run (docs/method.md section 7). ``--memory-per-phase`` adds the peak memory of a training step
unrolled to 1, 3, 5, ... phases and its slope, the memory one more phase costs.

    python scripts/benchmark_speed.py [--checkpoint CKPT] [--device cpu|cuda] [--threads 2] [--repeats 3]
                                      [--memory-per-phase] [--out bench.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch

from lpam.device import peak_memory_mib

PARTS = ("matmul", "plain", "convergent", "train-step")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(repeats: int, device: torch.device) -> float:
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    for _ in range(2):
        a @ b
    synchronize(device)
    started = time.perf_counter()
    for _ in range(10 * repeats):
        a @ b
    synchronize(device)
    return 2 * 2048**3 * 10 * repeats / (time.perf_counter() - started)


def one_pair(device: torch.device):
    from lpam.data.embedded import load_split, simulate_kspace
    from lpam.physics.masks import MaskSpec
    from lpam.physics.mri import MRIPhysics

    images = load_split("test", slices=[10]).images
    mask = MaskSpec().build(tuple(images.shape[-2:]))
    return simulate_kspace(images, mask).to(device), MRIPhysics(mask, images.shape[1]).to(device), images.to(device)


def run_part(part: str, checkpoint: str | None, repeats: int, device: torch.device, phases: int | None) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from lpam.checkpoint import load_model
    from lpam.training.trainer import training_loss

    if part == "matmul":
        return {"matmul_flops_per_second": matmul_rate(repeats, device)}
    model = load_model(checkpoint, map_location=device)
    phases = phases or model.config.phases
    kspace, physics, images = one_pair(device)
    if part == "train-step":
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)

        def step() -> None:
            loss = training_loss(model(kspace, physics, phases=phases), images, 0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    else:
        def step() -> None:
            with torch.no_grad():
                model(kspace, physics, phases=phases, mode=part)
    step()  # warm-up
    with FlopCounterMode(display=False) as counter:
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    synchronize(device)
    seconds = (time.perf_counter() - started) / repeats
    flops = counter.get_total_flops()
    return {"seconds": seconds, "flops": flops, "flops_per_second": flops / seconds, "phases": phases}


def measure(part: str, args: argparse.Namespace, phases: int | None = None) -> dict:
    """One part in a fresh process, so that its peak memory is its own."""
    command = [sys.executable, __file__, "--part", part, "--threads", str(args.threads), "--repeats",
               str(args.repeats), "--device", args.device]
    command += ["--checkpoint", args.checkpoint] if args.checkpoint else []
    command += ["--phases", str(phases)] if phases else []
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--memory-per-phase", action="store_true", help="peak training-step memory against phases")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--part", choices=PARTS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--phases", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.part is not None:  # child process: one measurement, peak memory of this process only
        result = run_part(args.part, args.checkpoint, args.repeats, device, args.phases)
        result["peak_mib"] = peak_memory_mib(device)
        print(json.dumps(result))
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} CPU threads"
    results = {"device": name, "threads": args.threads, "torch": torch.__version__}
    for part in PARTS:
        results[part] = measure(part, args)
    reference = results["matmul"]["matmul_flops_per_second"]
    print(f"dense fp32 matmul 2048^3: {reference / 1e9:.1f} GFLOP/s on {name}")
    print(f"{'part':<12}{'s/pair':>10}{'GFLOP':>10}{'GFLOP/s':>10}{'of matmul':>11}{'peak MiB':>10}")
    for part in PARTS[1:]:
        r = results[part]
        r["fraction_of_matmul"] = r["flops_per_second"] / reference
        print(f"{part:<12}{r['seconds']:>10.3f}{r['flops'] / 1e9:>10.1f}{r['flops_per_second'] / 1e9:>10.1f}"
              f"{r['fraction_of_matmul']:>10.0%}{r['peak_mib']:>10.0f}")
    if args.memory_per_phase:
        phases = list(range(1, results["train-step"]["phases"] + 1, 2))
        peaks = [measure("train-step", args, k)["peak_mib"] for k in phases]
        slope = float(np.polyfit(phases, peaks, 1)[0]) if len(phases) > 1 else float("nan")
        results["memory_per_phase"] = {"phases": phases, "peak_mib": peaks, "mib_per_phase": slope}
        print("training-step peak memory by phases: " + ", ".join(f"{k}: {m:.0f} MiB" for k, m in zip(phases, peaks))
              + f"; {slope:.0f} MiB per phase")
    if args.out:
        from lpam.io import save_json

        save_json(results, args.out)


if __name__ == "__main__":
    main()
