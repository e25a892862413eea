"""3-contrast against 2-contrast joint reconstruction: what adding PD's k-space does to T1 and T2.

On the embedded test slab (20 slices, radial 20%, seed 0): joint TV on (T1, T2) and on (T1, T2, PD) with
the same lam and iterations; LPAM-net trained on (T1, T2) and on (T1, T2, PD) with equal training (both
warm-started from the shipped weights and fine-tuned with the same schedule: configs/
two_contrast_finetune_cpu.yaml and configs/three_contrast_cpu.yaml). PD is the embedded synthetic contrast
(docs/method.md section 6). Writes JSON and a Markdown table.

    python scripts/three_contrasts.py [--two CKPT] [--three CKPT] [--slices 0:20] [--out docs/three_contrasts]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lpam.checkpoint import load_model
from lpam.options import parse_slices
from lpam.data.sources import load_evaluation_data
from lpam.evaluation.scoring import (evaluate_method, evaluation_batch, network_reconstructor, summary,
                                     tv_reconstructor)
from lpam.io import atomic_path, save_json
from lpam.physics.masks import MaskSpec
from lpam.reconstruction import TVSettings

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "lpam" / "weights"
PAIR, TRIPLE = ("T1", "T2"), ("T1", "T2", "PD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--two", default=str(WEIGHTS / "lpam_net_joint2_finetuned_radial20.pt"))
    parser.add_argument("--three", default=str(WEIGHTS / "lpam_net_joint3_radial20.pt"))
    parser.add_argument("--slices", default=None)
    parser.add_argument("--tv-iterations", type=int, default=300)
    parser.add_argument("--out", default="docs/three_contrasts")
    args = parser.parse_args()
    torch.set_num_threads(2)
    mask = MaskSpec()
    results: dict[str, dict[str, dict]] = {}
    for contrasts, checkpoint in ((PAIR, args.two), (TRIPLE, args.three)):
        data = load_evaluation_data("embedded", "test", parse_slices(args.slices), contrasts)
        sampling = mask.build(tuple(data.images.shape[-2:]))
        positions = list(range(data.images.shape[0]))
        batch = evaluation_batch(data, sampling, positions)
        reconstructors = {"joint TV": tv_reconstructor(TVSettings(iterations=args.tv_iterations)),
                          "LPAM-net": network_reconstructor(load_model(checkpoint), "plain")}
        for method, reconstruct in reconstructors.items():
            result = evaluate_method(reconstruct, batch, positions, contrasts)
            results.setdefault(method, {})["+".join(contrasts)] = summary(result, contrasts)
            print(method, contrasts, {c: round(v["psnr"]["mean"], 2) for c, v in results[method]["+".join(contrasts)].items()})
    lines = ["| method | contrasts | T1 PSNR | T1 SSIM | T2 PSNR | T2 SSIM | PD PSNR | PD SSIM |", "|---|---|---|---|---|---|---|---|"]
    for method, per_set in results.items():
        for key, metrics in per_set.items():
            cells = [f"{metrics[c]['psnr']['mean']:.2f} | {metrics[c]['ssim']['mean']:.4f}" if c in metrics else "- | -"
                     for c in TRIPLE]
            lines.append(f"| {method} | {key.replace('+', ', ')} | " + " | ".join(cells) + " |")
        two, three = per_set["+".join(PAIR)], per_set["+".join(TRIPLE)]
        gains = [f"{c} {three[c]['psnr']['mean'] - two[c]['psnr']['mean']:+.2f} dB" for c in PAIR]
        lines.append(f"| {method}: 3 - 2 contrasts | | " + " | | ".join(gains) + " | | | |")
    out = Path(args.out)
    save_json({"mask": mask.describe(), "results": results}, out / "metrics.json")
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
