"""Reading users' arrays: .npy, .npz, .mat (v5 with scipy, v7.3 with h5py) and NIfTI (nibabel).

Every failure names the file: missing, unsupported, corrupt or truncated, or holding no usable array.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ARRAY_SUFFIXES = (".npy", ".npz", ".mat", ".nii", ".nii.gz")


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix.lower()


def _pick(arrays: dict[str, np.ndarray], path: Path, preferred: tuple[str, ...]) -> np.ndarray:
    """The array under a preferred key, else the only / largest numeric array."""
    for key in preferred:
        if key in arrays:
            return arrays[key]
    numeric = {k: v for k, v in arrays.items() if isinstance(v, np.ndarray) and v.dtype.kind in "biufc" and v.ndim >= 2}
    if not numeric:
        raise ValueError(f"{path}: holds no numeric array of at least 2 dimensions")
    return max(numeric.values(), key=lambda a: a.size)


def _read_mat(path: Path, preferred: tuple[str, ...]) -> np.ndarray:
    import scipy.io

    try:
        contents = scipy.io.loadmat(path)
        return _pick({k: v for k, v in contents.items() if not k.startswith("__")}, path, preferred)
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        import h5py

        with h5py.File(path, "r") as handle:
            arrays = {}
            for key, item in handle.items():
                if isinstance(item, h5py.Dataset):
                    data = item[()]
                    if data.dtype.names and {"real", "imag"} <= set(data.dtype.names):
                        data = data["real"] + 1j * data["imag"]
                    arrays[key] = np.asarray(data).T  # MATLAB stores column-major
            return _pick(arrays, path, preferred)


def read_array(path: str | Path, preferred: tuple[str, ...] = ()) -> np.ndarray:
    """Load one array from ``path``; ``preferred`` keys are tried first in .npz / .mat containers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    suffix = _suffix(path)
    if suffix not in ARRAY_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(ARRAY_SUFFIXES)}")
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                key = next((k for k in preferred if k in archive.files), None)  # read only that array
                array = archive[key] if key else _pick({k: archive[k] for k in archive.files}, path, preferred)
        elif suffix == ".mat":
            array = _read_mat(path, preferred)
        else:
            import nibabel

            array = np.asarray(nibabel.load(path).dataobj)
    except ValueError as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"{path}: cannot be read (corrupt or truncated?): {error}") from error
    except Exception as error:  # readers raise many types (OSError, EOFError, zipfile errors...)
        raise ValueError(f"{path}: cannot be read (corrupt or truncated?): {error}") from error
    array = np.asarray(array)
    if array.dtype.kind not in "biufc":
        raise ValueError(f"{path}: holds non-numeric data of dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: contains NaN or infinite values")
    return array
