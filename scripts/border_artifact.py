"""The border artifact before and after circular padding (docs/method.md section 4b, "Padding"): error maps
of the last image rows, where the crop cuts the head at the field-of-view edge, for a network with zero-padded
convolutions in g and one with circular padding (consistent with the periodic FFT).

    python scripts/border_artifact.py [--before lpam_net_joint_radial20_plain.pt]
                                      [--after lpam_net_joint_radial20.pt] [--out docs/convergent]

Writes border.png (error maps of the last rows, both contrasts, mean over the test slab) and border.json (the
mean absolute error of the last row against the mean over the interior rows) into --out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lpam.checkpoint import WEIGHTS_DIR, load_model  # noqa: E402
from lpam.data.embedded import load_split, simulate_kspace  # noqa: E402
from lpam.io import save_json  # noqa: E402
from lpam.physics.masks import MaskSpec  # noqa: E402
from lpam.physics.mri import MRIPhysics  # noqa: E402
from lpam.workflows import run_network  # noqa: E402

SHOWN_ROWS = 24  # the last rows shown in the figure
INTERIOR = slice(20, -20)  # rows away from both field-of-view edges: the reference error level


def mean_error(weights: str, kspace: torch.Tensor, physics: MRIPhysics, truth: np.ndarray) -> np.ndarray:
    """|x - truth| averaged over the slices, (C, H, W), for the network in its natural mode."""
    model = load_model(WEIGHTS_DIR / weights)
    mode = model.config.natural_mode
    with torch.no_grad():
        recon = run_network(model, kspace, physics, mode).abs().numpy()
    return np.abs(recon - truth).mean(axis=0)


def row_summary(error: np.ndarray, contrasts: list[str]) -> dict:
    """Per contrast: mean error of the last row, of the interior rows, and their ratio."""
    result = {}
    for c, name in enumerate(contrasts):
        last, interior = float(error[c, -1].mean()), float(error[c, INTERIOR].mean())
        result[name] = {"last_row": last, "interior_rows": interior, "ratio": last / interior}
    return result


def plot(errors: dict[str, np.ndarray], contrasts: list[str], path: Path) -> None:
    vmax = max(float(e[:, -SHOWN_ROWS:].max()) for e in errors.values())
    fig, axes = plt.subplots(len(errors), len(contrasts), figsize=(4.2 * len(contrasts), 1.5 * len(errors) + 0.6),
                             squeeze=False)
    for r, (label, error) in enumerate(errors.items()):
        for c, name in enumerate(contrasts):
            ax = axes[r, c]
            shown = ax.imshow(error[c, -SHOWN_ROWS:], cmap="magma", vmin=0, vmax=vmax, aspect="auto")
            ax.set_title(f"{label}: {name}", fontsize=9)
            ax.set_yticks([0, SHOWN_ROWS - 1], [f"row {error.shape[1] - SHOWN_ROWS}", f"row {error.shape[1] - 1}"])
            ax.set_xticks([])
    fig.colorbar(shown, ax=axes, fraction=0.03, label="mean |x - truth| over the test slab")
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="lpam_net_joint_radial20_plain.pt", help="zero-padded network")
    parser.add_argument("--after", default="lpam_net_joint_radial20.pt", help="circularly padded network")
    parser.add_argument("--out", default="docs/convergent")
    args = parser.parse_args()
    data = load_split("test")
    mask = MaskSpec().build(tuple(data.images.shape[-2:]))
    kspace, physics = simulate_kspace(data.images, mask), MRIPhysics(mask, data.images.shape[1])
    contrasts, truth = list(data.contrasts), data.images.numpy()
    errors = {f"before ({args.before})": mean_error(args.before, kspace, physics, truth),
              f"after ({args.after})": mean_error(args.after, kspace, physics, truth)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(errors, contrasts, out / "border.png")
    summary = {label: row_summary(error, contrasts) for label, error in errors.items()}
    save_json(summary, out / "border.json")
    for label, rows in summary.items():
        print(label, {c: f"last row {v['ratio']:.2f}x interior" for c, v in rows.items()})


if __name__ == "__main__":
    main()
