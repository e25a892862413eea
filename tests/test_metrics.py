import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lpam.metrics import evaluate_contrasts, nmse, psnr, rmse, slice_metrics, ssim, summarize


def test_metrics_match_scikit_image_and_numpy():
    rng = np.random.default_rng(0)
    target = rng.uniform(size=(40, 50))
    recon = np.clip(target + 0.05 * rng.normal(size=target.shape), 0, 1)
    assert psnr(recon, target) == pytest.approx(peak_signal_noise_ratio(target, recon, data_range=1.0))
    expected = structural_similarity(target, recon, win_size=7, data_range=1.0, K1=0.01, K2=0.03)
    assert ssim(recon, target) == pytest.approx(expected)
    assert nmse(recon, target) == pytest.approx(np.linalg.norm(recon - target) ** 2 / np.linalg.norm(target) ** 2)
    assert rmse(recon, target) == pytest.approx(np.sqrt(np.mean((recon - target) ** 2)))
    assert psnr(recon, target) == pytest.approx(-20 * np.log10(rmse(recon, target)))


def test_magnitudes_summaries_and_errors():
    rng = np.random.default_rng(1)
    targets = rng.uniform(size=(3, 2, 16, 16))
    recons = targets * np.exp(1j * 0.3)  # a global phase does not change magnitudes
    summary = evaluate_contrasts(recons, targets, ["T1", "T2"])
    assert summary["T1"]["nmse"]["mean"] == pytest.approx(0, abs=1e-20)
    values = [{"psnr": v, "ssim": v, "nmse": v, "rmse": v} for v in (1.0, 3.0)]
    assert summarize(values)["psnr"] == {"mean": 2.0, "std": 1.0}
    with pytest.raises(ValueError, match="same shape"):
        evaluate_contrasts(recons[:, :1], targets, ["T1", "T2"])
    with pytest.raises(ValueError, match="NaN"):
        slice_metrics(np.full((8, 8), np.nan), np.ones((8, 8)))
    with pytest.raises(ValueError, match="no slices"):
        summarize([])
