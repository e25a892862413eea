"""Evaluation on identical data, masks and metric code: `lpam evaluate` (one model on any data,
:mod:`lpam.evaluation.evaluate`), `lpam benchmark` (every method on every mask, :mod:`lpam.evaluation.benchmark`,
its results.md from :mod:`lpam.evaluation.report`), `lpam benchmark --retrain` (:mod:`lpam.evaluation.retrain`);
the methods as reconstructors and the per-slice scores in :mod:`lpam.evaluation.scoring`."""
from lpam.evaluation.benchmark import run_benchmark
from lpam.evaluation.evaluate import evaluate_checkpoint
from lpam.evaluation.retrain import retrain

__all__ = ["evaluate_checkpoint", "retrain", "run_benchmark"]
