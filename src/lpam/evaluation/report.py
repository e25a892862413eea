"""results.md of `lpam benchmark`: one table per mask, best value per metric column in bold, notes above."""
from __future__ import annotations

import os
import platform
from typing import Sequence

import torch


def machine_description() -> str:
    cores = len(os.sched_getaffinity(0))
    return f"{platform.machine()} {platform.processor() or platform.platform()}, {cores} cores, torch {torch.__version__}"


def results_markdown(metrics: dict, contrasts: Sequence[str], notes: Sequence[str]) -> str:
    """results.md: one table per mask, best value per metric column in bold, notes below."""
    lines = ["# lpam benchmark", ""]
    lines += [f"- {note}" for note in notes]
    for mask in metrics["masks"]:
        lines += ["", f"## {mask} (achieved rate {metrics['masks'][mask]['achieved_rate']:.3f})", ""]
        header = "| method | params | " + " | ".join(f"{c} PSNR | {c} SSIM" for c in contrasts) + " | s / pair |"
        lines += [header, "|" + "---|" * (3 + 2 * len(contrasts))]
        rows = {}
        for method, per_mask in metrics["methods"].items():
            if mask in per_mask:
                rows[method] = [per_mask[mask][c][k]["mean"] for c in contrasts for k in ("psnr", "ssim")]
        best = [max(values[column] for values in rows.values()) for column in range(2 * len(contrasts))]
        for method, values in rows.items():
            cells = []
            for column, value in enumerate(values):
                std = metrics["methods"][method][mask][contrasts[column // 2]]["psnr" if column % 2 == 0 else "ssim"]["std"]
                text = f"{value:.2f} ± {std:.2f}" if column % 2 == 0 else f"{value:.4f} ± {std:.3f}"
                cells.append(f"**{text}**" if value == best[column] else text)
            marker = " †" if mask in metrics["off_mask"].get(method, []) else ""
            subset = " ‡" if metrics["evaluated_on"][method][mask] == "subset" else ""
            seconds = metrics["seconds_per_pair"][method][mask]
            params = metrics["params"].get(method, {}).get(mask, 0)  # classical methods: none
            lines.append(f"| {method}{marker}{subset} | {params:,} | " + " | ".join(cells)
                         + f" | {seconds:.2f} |")
    return "\n".join(lines) + "\n"
