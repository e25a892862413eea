import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lpam.metrics import evaluate_contrasts, slice_metrics, summarize


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    target = rng.uniform(size=(40, 50))
    return np.clip(target + 0.05 * rng.normal(size=target.shape), 0, 1), target


def test_psnr_and_ssim_match_scikit_image(pair):
    recon, target = pair
    metrics, exact = slice_metrics(recon, target), slice_metrics(target, target)
    assert metrics["psnr"] == peak_signal_noise_ratio(target, recon, data_range=1.0)
    expected = structural_similarity(target, recon, win_size=7, data_range=1.0, K1=0.01, K2=0.03,
                                     gaussian_weights=False)
    assert metrics["ssim"] == expected
    assert exact["ssim"] == pytest.approx(1.0)
    assert exact["psnr"] == np.inf


def test_nmse_and_rmse_match_numpy_formulas(pair):
    recon, target = pair
    metrics = slice_metrics(recon, target)
    assert metrics["nmse"] == pytest.approx(np.linalg.norm(recon - target) ** 2 / np.linalg.norm(target) ** 2)
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean((recon - target) ** 2)))
    assert metrics["psnr"] == pytest.approx(-20 * np.log10(metrics["rmse"]))


def test_slice_metrics_use_magnitudes(pair):
    recon, target = pair
    rotated = slice_metrics(recon * np.exp(1j * 0.7), target.astype(np.complex64))
    assert rotated == pytest.approx(slice_metrics(recon, target))
    assert set(rotated) == {"psnr", "ssim", "nmse", "rmse"}


def test_summarize_mean_and_population_std():
    values = [{"psnr": v, "ssim": v / 10, "nmse": v, "rmse": v} for v in (1.0, 3.0)]
    summary = summarize(values)
    assert summary["psnr"] == {"mean": 2.0, "std": 1.0}
    assert summary["ssim"] == pytest.approx({"mean": 0.2, "std": 0.1})


def test_evaluate_contrasts_summarises_each_channel():
    rng = np.random.default_rng(1)
    targets = rng.uniform(size=(3, 2, 16, 16))
    recons = targets.copy()
    recons[:, 1] += 0.1
    summary = evaluate_contrasts(recons * np.exp(1j * 0.3), targets, ["T1", "T2"])
    assert summary["T1"]["nmse"]["mean"] == pytest.approx(0, abs=1e-20)
    assert summary["T2"]["rmse"] == pytest.approx({"mean": 0.1, "std": 0.0}, abs=1e-12)
    assert summary["T2"]["psnr"]["mean"] == pytest.approx(20.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: evaluate_contrasts(np.zeros((2, 1, 8, 8)), np.zeros((2, 2, 8, 8)), ["T1", "T2"]), "same shape"),
        (lambda: evaluate_contrasts(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)), ["T1"]), "same shape"),
        (lambda: evaluate_contrasts(np.ones((2, 2, 8, 8)), np.ones((2, 2, 8, 8)), ["T1"]), "names given"),
        (lambda: slice_metrics(np.full((8, 8), np.nan), np.ones((8, 8))), "reconstruction contains NaN"),
        (lambda: slice_metrics(np.ones((8, 8)), np.full((8, 8), np.inf)), "target contains NaN"),
        (lambda: slice_metrics(np.ones((8, 9)), np.ones((8, 8))), "same shape"),
        (lambda: slice_metrics(np.ones(8), np.ones(8)), "2-D"),
        (lambda: slice_metrics(np.ones((8, 8)), np.zeros((8, 8))), "all-zero target"),
        (lambda: summarize([]), "no slices"),
        (lambda: summarize([{"psnr": 1.0}, {"ssim": 1.0}]), "different metrics"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
