"""Evidence for the convergent LPAM-net (docs/method.md section 4b): the demo's test slices at 20% radial,
each network run for 4K phases, PSNR / Phi_eps / eps / ||grad Phi_eps|| against the phase and the acceptance
rate per phase, for the default (convergent) and the plain-trained weights, each in both modes.

    python scripts/convergence_evidence.py [--slices 0:20] [--depth 4] [--out docs/convergent]

Writes phases.png, acceptance.png, evidence.json and evidence.md into --out. The checks per slice are the
ones the convergence argument promises (docs/method.md): Phi_eps never increases while eps is constant,
eps is reduced within the K trained phases, and ||grad Phi_eps|| just after the reductions decreases.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio  # noqa: E402

from lpam.algorithm.lpam import History  # noqa: E402
from lpam.checkpoint import WEIGHTS_DIR, load_model  # noqa: E402
from lpam.data.embedded import load_split, simulate_kspace  # noqa: E402
from lpam.io import save_json  # noqa: E402
from lpam.metrics import evaluate_contrasts  # noqa: E402
from lpam.physics.masks import MaskSpec  # noqa: E402
from lpam.physics.mri import MRIPhysics  # noqa: E402

RUNS = {  # label -> (weights file, mode)
    "convergent (default), convergent": ("lpam_net_joint_radial20.pt", "convergent"),
    "convergent (default), plain": ("lpam_net_joint_radial20.pt", "plain"),
    "plain-trained, plain": ("lpam_net_joint_radial20_plain.pt", "plain"),
    "plain-trained, convergent": ("lpam_net_joint_radial20_plain.pt", "convergent"),
}
# Phi_eps may rise by float32 round-off between equal-eps iterates; a rise above this relative size counts
PHI_TOLERANCE = 1e-6


def run(model: torch.nn.Module, kspace: torch.Tensor, physics: MRIPhysics, truth: np.ndarray, mode: str,
        phases: int) -> tuple[np.ndarray, History, dict[int, np.ndarray]]:
    """PSNR (slices, phases, contrasts), the history, and the magnitudes at every phase, slice by slice."""
    psnr = np.zeros((kspace.shape[0], phases, kspace.shape[1]))
    history, images = History(), {}
    for i in range(kspace.shape[0]):
        iterates, sample = [], History()
        with torch.no_grad():
            model(kspace[i : i + 1], physics, phases=phases, mode=mode, history=sample, iterates=iterates)
        history.add_samples(sample)
        for k, x in enumerate(iterates):
            magnitude = x[0].abs().numpy()
            images.setdefault(k, []).append(magnitude)
            for c in range(kspace.shape[1]):
                psnr[i, k, c] = peak_signal_noise_ratio(truth[i, c], magnitude[c], data_range=1.0)
    return psnr, history, {k: np.stack(v) for k, v in images.items()}


def slice_checks(history: History, index: int, trained_phases: int) -> dict:
    """The per-slice checks of the convergence argument, on the history of slice ``index``."""
    phi, eps = np.asarray(history.phi[index]), np.asarray(history.eps[index])
    grad = np.asarray(history.grad_norm[index])
    same_eps = eps[1:] == eps[:-1]
    rises = (phi[1:] - phi[:-1]) > PHI_TOLERANCE * np.abs(phi[:-1])
    reductions = np.flatnonzero(eps[1:] < eps[:-1])  # eps_{k+1} < eps_k: reduced after phase k
    after = grad[reductions]
    return {
        "phi_increases_at_constant_eps": int((rises & same_eps).sum()),
        "eps_reductions_within_K": int((reductions < trained_phases).sum()),
        "eps_reductions": int(len(reductions)),
        "grad_after_reductions_decreasing": bool(np.all(np.diff(after) < 0)) if len(after) > 1 else None,
        "accepted_within_K": int(sum(b == "residual" for b in history.branch[index][:trained_phases])),
    }


def summarise(label: str, psnr: np.ndarray, history: History, images: dict, truth: np.ndarray,
              trained_phases: int, convergent: bool) -> dict:
    phases = psnr.shape[1]
    depths = [d * trained_phases for d in (1, 2, 4) if d * trained_phases <= phases]
    result = {"psnr": {}, "ssim": {}}
    for depth in depths:
        metrics = evaluate_contrasts(images[depth - 1], truth, ["T1", "T2"])
        result["psnr"][depth] = {c: metrics[c]["psnr"]["mean"] for c in ("T1", "T2")}
        result["ssim"][depth] = {c: metrics[c]["ssim"]["mean"] for c in ("T1", "T2")}
    if convergent:
        branches = np.array([[b == "residual" for b in sample] for sample in history.branch])
        checks = [slice_checks(history, i, trained_phases) for i in range(len(history.phi))]
        result["acceptance_within_K"] = float(branches[:, :trained_phases].mean())
        result["acceptance_all_phases"] = float(branches.mean())
        result["acceptance_per_phase"] = branches.mean(0).tolist()
        result["slices_with_phi_increase"] = sum(c["phi_increases_at_constant_eps"] > 0 for c in checks)
        result["min_eps_reductions_within_K"] = min(c["eps_reductions_within_K"] for c in checks)
        result["slices_grad_after_reductions_decreasing"] = sum(bool(c["grad_after_reductions_decreasing"])
                                                                for c in checks)
        result["per_slice"] = checks
    result["curves"] = {key: np.asarray(getattr(history, key), dtype=float).mean(0).tolist()
                        for key in ("phi", "eps", "grad_norm")}
    result["curves"]["psnr"] = psnr.mean(0).T.tolist()  # (contrasts, phases)
    return result


def plot(results: dict, trained_phases: int, out: Path) -> None:
    figure, axes = plt.subplots(1, 5, figsize=(22, 3.8))
    titles = ["T1 PSNR (dB)", "T2 PSNR (dB)", "Phi_eps(x^k)", "eps_k", "||grad Phi_eps(x^k)||"]
    for label, result in results.items():
        curves = result["curves"]
        steps = np.arange(1, len(curves["phi"]) + 1)
        series = [curves["psnr"][0], curves["psnr"][1], curves["phi"], curves["eps"], curves["grad_norm"]]
        for axis, values in zip(axes, series):
            axis.plot(steps, values, lw=1.3, label=label)
    for axis, title in zip(axes, titles):
        axis.axvline(trained_phases, color="k", lw=0.8, ls=":")
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("phase (dotted: trained K)")
        axis.grid(alpha=0.3)
    for axis in axes[2:]:
        axis.set_yscale("log")
    axes[0].legend(fontsize=7)
    figure.suptitle("mean over the test slices, 20% radial; Phi_eps of each network's own objective", fontsize=10)
    figure.tight_layout()
    figure.savefig(out / "phases.png", dpi=110)
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(7, 3.6))
    for label, result in results.items():
        if "acceptance_per_phase" in result:
            rate = result["acceptance_per_phase"]
            axis.plot(np.arange(1, len(rate) + 1), rate, "o-", ms=3, label=label)
    axis.axvline(trained_phases, color="k", lw=0.8, ls=":")
    axis.set_ylim(-0.05, 1.05)
    axis.set_xlabel("phase (dotted: trained K)")
    axis.set_ylabel("fraction of slices accepting the learned step")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "acceptance.png", dpi=110)
    plt.close(figure)


def markdown(results: dict, slices: int) -> str:
    lines = [f"Test slices: {slices}, 20% radial. PSNR / SSIM at K, 2K and 4K phases (T1 / T2).", "",
             "| network, mode | K | 2K | 4K | accepted (within K) | slices with Phi rise | min eps reductions in K |"
             " slices with decreasing grad after reductions |", "|---|---|---|---|---|---|---|---|"]
    for label, result in results.items():
        cells = [" / ".join(f"{result['psnr'][d][c]:.2f}" for c in ("T1", "T2")) + " dB, "
                 + " / ".join(f"{result['ssim'][d][c]:.3f}" for c in ("T1", "T2")) for d in result["psnr"]]
        extra = ["-"] * 4
        if "acceptance_within_K" in result:
            extra = [f"{100 * result['acceptance_within_K']:.0f}%", str(result["slices_with_phi_increase"]),
                     str(result["min_eps_reductions_within_K"]), str(result["slices_grad_after_reductions_decreasing"])]
        lines.append(f"| {label} | " + " | ".join(cells + extra) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", default="0:20", help="start:stop positions in the test slab")
    parser.add_argument("--depth", type=int, default=4, help="run to this multiple of the trained K")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS), metavar="RUN",
                        help="which network, mode pairs to run (quote each): " + "; ".join(RUNS))
    parser.add_argument("--out", default="docs/convergent")
    parser.add_argument("--keep", action="store_true",
                        help="keep the results of the runs not rerun from OUT/evidence.json (same slices and depth)")
    args = parser.parse_args()
    start, _, stop = args.slices.partition(":")
    data = load_split("test", slices=slice(int(start), int(stop)))
    mask = MaskSpec().build(tuple(data.images.shape[-2:]))
    kspace, truth = simulate_kspace(data.images, mask), data.images.numpy()
    physics = MRIPhysics(mask, data.images.shape[1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, trained_phases = {}, None
    if args.keep and (out / "evidence.json").is_file():
        stored = json.loads((out / "evidence.json").read_text())
        results = {label: stored[label] for label in RUNS if label in stored and label not in args.runs}
    for label in args.runs:
        weights, mode = RUNS[label]
        model = load_model(WEIGHTS_DIR / weights)
        trained_phases = model.config.phases
        psnr, history, images = run(model, kspace, physics, truth, mode, args.depth * trained_phases)
        results[label] = summarise(label, psnr, history, images, truth, trained_phases, mode == "convergent")
        print(label, {d: v for d, v in results[label]["psnr"].items()},
              {k: results[label][k] for k in ("acceptance_within_K", "min_eps_reductions_within_K")
               if k in results[label]})
    results = {label: results[label] for label in RUNS if label in results}
    plot(results, trained_phases, out)
    save_json(results, out / "evidence.json")
    (out / "evidence.md").write_text(markdown(results, len(data.axial_indices)))
    print((out / "evidence.md").read_text())


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
