"""Speed and memory of LPAM-net on one 160x180 T1/T2 pair (a benchmark, not a test).

Reports seconds per pair for inference (plain and convergent), seconds per training step, peak resident
memory of each (each part runs in a fresh process), the model's FLOPs per pair (counted by
torch.utils.flop_counter: convolutions, 2 FLOPs per multiply-add, 4 real products per complex one) and the
achieved FLOP rate against a 2048x2048 fp32 matmul timed in the same run (SPEC.md section 7).

    python scripts/benchmark_speed.py [--checkpoint CKPT] [--threads 2] [--repeats 3] [--out bench.json]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

PARTS = ("matmul", "plain", "convergent", "train-step")


def matmul_rate(repeats: int) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(2):
        a @ b
    started = time.perf_counter()
    for _ in range(10 * repeats):
        a @ b
    return 2 * 2048**3 * 10 * repeats / (time.perf_counter() - started)


def one_pair(model):
    from lpam.data.embedded import load_split, simulate_kspace
    from lpam.physics.masks import MaskSpec

    images = load_split("test", slices=[10]).images
    mask = MaskSpec().build(tuple(images.shape[-2:]))
    return simulate_kspace(images, mask), mask, images


def run_part(part: str, checkpoint: str | None, repeats: int) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from lpam.checkpoint import load_model
    from lpam.training.trainer import training_loss

    if part == "matmul":
        return {"matmul_flops_per_second": matmul_rate(repeats)}
    model = load_model(checkpoint)
    kspace, mask, images = one_pair(model)
    if part == "train-step":
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)

        def step() -> None:
            loss = training_loss(model(kspace, mask), images, 0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    else:
        def step() -> None:
            with torch.no_grad():
                model(kspace, mask, mode=part)
    step()  # warm-up
    with FlopCounterMode(display=False) as counter:
        step()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    seconds = (time.perf_counter() - started) / repeats
    flops = counter.get_total_flops()
    return {"seconds": seconds, "flops": flops, "flops_per_second": flops / seconds, "phases": model.config.phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--part", choices=PARTS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part is not None:  # child process: one measurement, peak memory of this process only
        result = run_part(args.part, args.checkpoint, args.repeats)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    results = {"threads": args.threads, "torch": torch.__version__}
    for part in PARTS:
        command = [sys.executable, __file__, "--part", part, "--threads", str(args.threads), "--repeats", str(args.repeats)]
        if args.checkpoint:
            command += ["--checkpoint", args.checkpoint]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[part] = json.loads(output.strip().splitlines()[-1])
    reference = results["matmul"]["matmul_flops_per_second"]
    print(f"dense fp32 matmul 2048^3: {reference / 1e9:.1f} GFLOP/s on {args.threads} threads")
    print(f"{'part':<12}{'s/pair':>10}{'GFLOP':>10}{'GFLOP/s':>10}{'of matmul':>11}{'peak MiB':>10}")
    for part in PARTS[1:]:
        r = results[part]
        r["fraction_of_matmul"] = r["flops_per_second"] / reference
        print(f"{part:<12}{r['seconds']:>10.3f}{r['flops'] / 1e9:>10.1f}{r['flops_per_second'] / 1e9:>10.1f}"
              f"{r['fraction_of_matmul']:>10.0%}{r['peak_rss_mib']:>10.0f}")
    if args.out:
        from lpam.io import save_json

        save_json(results, args.out)


if __name__ == "__main__":
    main()
