"""MNIST from the four standard IDX files (raw or ``.gz``), with verified download."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataFileError, InvalidValueError
from ._common import ImageDataset, default_root

__all__ = ["MNIST_FILES", "mnist", "read_idx"]

# md5 of the official uncompressed IDX files, and of the official .gz archives
MNIST_FILES: dict[str, dict[str, str]] = {
    "train-images-idx3-ubyte": {
        "md5": "6bbc9ace898e44ae57da46a324031adb",
        "gz_md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    },
    "train-labels-idx1-ubyte": {
        "md5": "a25bea736e30d166cdddb491f175f624",
        "gz_md5": "d53e105ee54ea40749a09fcbcd1e9432",
    },
    "t10k-images-idx3-ubyte": {
        "md5": "2646ac647ad5339dbf082846283269ea",
        "gz_md5": "9fb629c4189551a2d022fa330f9573f3",
    },
    "t10k-labels-idx1-ubyte": {
        "md5": "27ae3e4e09519cfbb04c329615203637",
        "gz_md5": "ec29112dd5afa0611ce80d1b7f02629c",
    },
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed when the name ends in ``.gz``).

    Raises:
        DataFileError: the file is missing, has a wrong magic number, or is truncated / too long
            for the shape its header declares (the message names the file).
    """
    path = Path(path)
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError as err:
        raise DataFileError(f"IDX file not found: {path}") from err
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataFileError(f"cannot read {path}: corrupt or truncated gzip data ({err})") from err
    if len(data) < 4:
        raise DataFileError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _DTYPES or ndim < 1:
        raise DataFileError(
            f"{path}: wrong magic number 0x{data[:4].hex()} (expected 0x0000 + type code + rank, e.g. 0x00000803)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{path}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataFileError(
            f"{path}: truncated or corrupt: header declares shape {shape} ({expected} bytes of data), "
            f"the file holds {len(data) - header}"
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _find(name: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.exists():
                return candidate
    return None


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _download(name: str, target: Path) -> None:
    """Fetch ``name`` into ``target``; the folder is created only once a verified file came."""
    errors = []
    for mirror in MIRRORS:
        url = f"{mirror}{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                blob = response.read()
        except OSError as err:
            errors.append(f"{url}: {err}")
            continue
        if _md5(blob) != MNIST_FILES[name]["gz_md5"]:
            errors.append(f"{url}: md5 mismatch")
            continue
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / f"{name}.gz.part"
        tmp.write_bytes(blob)
        shutil.move(str(tmp), str(target / f"{name}.gz"))
        return
    raise DataFileError(f"could not download {name}: " + "; ".join(errors))


def mnist(
    root: str | Path | None = None,
    split: str = "train",
    download: bool = True,
    verify: bool = False,
) -> ImageDataset:
    """MNIST as an in-memory :class:`ImageDataset` of ``(N, 1, 28, 28)`` floats in ``[0, 1]``.

    Looks for the IDX files (raw or ``.gz``) in ``root/MNIST/raw/`` (torchvision's layout) and
    then directly in ``root``; when absent and ``download`` is set, fetches the ``.gz`` archives
    from the standard public mirrors with md5 verification. ``verify=True`` also checks the
    md5 of files found on disk.

    Args:
        root: data folder (default ``$CONSISTENCY_DATA_DIR`` or ``~/.cache/consistency/data``).
        split: ``"train"`` (60,000) or ``"test"`` (10,000).

    Raises:
        DataFileError: files missing and not downloadable (names the files, the folders
            searched, and how to point the examples at existing files), or corrupt.
    """
    if split not in _SPLITS:
        raise InvalidValueError(f"split must be 'train' or 'test'; got {split!r}")
    root = Path(root) if root is not None else default_root()
    folders = [root / "MNIST" / "raw", root]
    image_name, label_name, count = _SPLITS[split]
    paths = {}
    for name in (image_name, label_name):
        found = _find(name, folders)
        if found is None and download:
            try:
                _download(name, folders[0])
            except OSError as err:
                raise DataFileError(
                    f"MNIST file {name} is not in {[str(f) for f in folders]} and could not be downloaded "
                    f"({err}). Put the four IDX files ({', '.join(MNIST_FILES)}, raw or .gz) in one of "
                    "those folders, or pass --data-root (or set CONSISTENCY_DATA_DIR) to where they are."
                ) from err
            found = _find(name, folders)
        if found is None:
            raise DataFileError(
                f"MNIST file {name}[.gz] not found in {[str(f) for f in folders]} (download disabled). "
                f"Expected the four IDX files {', '.join(MNIST_FILES)}; pass --data-root or set "
                "CONSISTENCY_DATA_DIR to the folder holding them."
            )
        paths[name] = found
    arrays = {}
    for name, path in paths.items():
        arrays[name] = read_idx(path)
        if verify:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            if _md5(raw) != MNIST_FILES[name]["md5"]:
                raise DataFileError(f"{path}: md5 does not match the official file")
    images, labels = arrays[image_name], arrays[label_name]
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise DataFileError(
            f"{paths[image_name]} / {paths[label_name]}: expected images (N, 28, 28) and labels (N,); "
            f"got {images.shape} and {labels.shape}"
        )
    if images.shape[0] != count and verify:
        raise DataFileError(
            f"{paths[image_name]}: expected {count} images for split {split!r}; got {images.shape[0]}"
        )
    x = torch.from_numpy(images.copy()).float().div_(255.0).unsqueeze(1)
    return ImageDataset(x, torch.from_numpy(labels.astype(np.int64)))
