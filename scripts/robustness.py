"""LPAM-net on inputs unlike the training slab: the test slab blurred, sharpened, rescaled, noisy, rotated,
and at another matrix size; zero-filled, joint TV and LPAM-net in its plain and convergent modes side by
side (PSNR / SSIM per contrast).

    python scripts/robustness.py [--checkpoint CKPT] [--slices 0:4] [--out out/robustness.json]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from lpam.checkpoint import load_model
from lpam.cli import mask_spec
from lpam.cli_arguments import add_mask_options
from lpam.options import parse_slices
from lpam.data.embedded import load_split, simulate_kspace
from lpam.io import save_json
from lpam.metrics import evaluate_contrasts
from lpam.physics.mri import MRIPhysics
from lpam.reconstruction import reconstruct_tv
from lpam.data.augment import gaussian_blur, rotate_and_zoom
from lpam.models.shipped import resolve_checkpoint
from lpam.tv_tuning import tuned_settings
from lpam.workflows import run_network


def variants(images: torch.Tensor) -> dict[str, tuple[torch.Tensor, float]]:
    """Name -> (images, k-space noise std)."""
    blurred = torch.stack([gaussian_blur(x, 1.0) for x in images])
    sharpened = torch.stack([(x + 0.8 * (x - gaussian_blur(x, 1.0))).clamp(0, 1) for x in images])
    padded = F.pad(images, (6, 6, 16, 16))  # 192 x 192 matrix
    return {
        "test slab as is": (images, 0.0),
        "blurred (sigma 1 px)": (blurred, 0.0),
        "sharpened": (sharpened, 0.0),
        "intensity x0.5": (0.5 * images, 0.0),
        "k-space noise std 0.01": (images, 0.01),
        "rotated 20 degrees": (rotate_and_zoom(images, 20.0), 0.0),
        "192x192 matrix": (padded, 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--slices", default="0:4")
    parser.add_argument("--out", default=None)
    add_mask_options(parser)
    args = parser.parse_args()
    spec = mask_spec(args)
    checkpoint, described = resolve_checkpoint(args.checkpoint, spec)
    print(f"mask: {spec.kind}, model: {described}")
    model, tv_settings = load_model(checkpoint), tuned_settings(spec)
    images = load_split("test", slices=parse_slices(args.slices)).images
    results = {}
    print(f"{'input':<26}{'method':<21}{'T1 PSNR':>9}{'T1 SSIM':>9}{'T2 PSNR':>9}{'T2 SSIM':>9}")
    for name, (truth, noise) in variants(images).items():
        mask = spec.build(tuple(truth.shape[-2:]))
        kspace, physics = simulate_kspace(truth, mask, noise_std=noise), MRIPhysics(mask, truth.shape[1])
        recons = {"zero-filled": physics.adjoint(kspace), "joint-tv": reconstruct_tv(kspace, physics, tv_settings)[0],
                  "lpam-net": run_network(model, kspace, physics),
                  "lpam-net-convergent": run_network(model, kspace, physics, "convergent")}
        # data range 1 for the metrics: halved images are compared on the halved scale
        scale = float(truth.max()) if float(truth.max()) < 1 else 1.0
        results[name] = {}
        for method, recon in recons.items():
            metrics = evaluate_contrasts(recon.numpy() / scale, truth.numpy() / scale, ["T1", "T2"])
            results[name][method] = metrics
            row = "".join(f"{metrics[c]['psnr']['mean']:>9.2f}{metrics[c]['ssim']['mean']:>9.4f}" for c in ("T1", "T2"))
            print(f"{name:<26}{method:<21}{row}")
    if args.out:
        save_json(results, args.out)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
