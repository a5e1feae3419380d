"""CelebA (aligned and cropped) from its standard folder layout."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import DataFileError, InvalidValueError
from ._common import default_root

__all__ = ["CelebA", "celeba"]

_SPLITS = {"train": 0, "valid": 1, "test": 2}


class CelebA(Dataset[tuple[Tensor, Tensor]]):
    """CelebA images ``(3, size, size)`` in ``[0, 1]``: centre square crop, then resized.

    Reads ``root/img_align_celeba/*.jpg`` and ``root/list_eval_partition.txt`` (also accepted under
    ``root/celeba/``). Every listed image of the split must exist (checked at construction);
    an unreadable JPEG raises :class:`~consistency.errors.DataFileError` naming the file.
    Labels are the image indices (CelebA attributes are not used).
    """

    def __init__(
        self, root: str | Path | None = None, split: str = "train", size: int = 128
    ) -> None:
        if split not in _SPLITS:
            raise InvalidValueError(f"split must be one of {tuple(_SPLITS)}; got {split!r}")
        try:
            from PIL import Image  # noqa: F401
        except ImportError as err:  # pragma: no cover
            raise ImportError(
                "CelebA needs pillow: pip install 'interventional-consistency[examples]'"
            ) from err
        base = Path(root) if root is not None else default_root()
        candidates = [base, base / "celeba", base / "CelebA"]
        folder = next((c for c in candidates if (c / "list_eval_partition.txt").exists()), None)
        if folder is None:
            raise DataFileError(
                f"CelebA not found: expected list_eval_partition.txt and img_align_celeba/*.jpg in one of "
                f"{[str(c) for c in candidates]}; pass --data-root (or set CONSISTENCY_DATA_DIR)"
            )
        images = folder / "img_align_celeba"
        partition = folder / "list_eval_partition.txt"
        files = []
        for line_no, line in enumerate(partition.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit():
                raise DataFileError(
                    f"{partition}:{line_no}: expected '<file>.jpg <0|1|2>', got {line!r}"
                )
            if int(parts[1]) == _SPLITS[split]:
                files.append(images / parts[0])
        missing = [f for f in files if not f.exists()]
        if missing:
            raise DataFileError(
                f"{len(missing)} image(s) of split {split!r} listed in {partition} are missing, e.g. {missing[0]}"
            )
        self.files, self.size = files, int(size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        from PIL import Image

        path = self.files[index]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                side = min(w, h)
                left, top = (w - side) // 2, (h - side) // 2
                img = img.crop((left, top, left + side, top + side)).resize(
                    (self.size, self.size), Image.Resampling.BILINEAR
                )
                data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        except OSError as err:
            raise DataFileError(f"cannot read CelebA image {path}: {err}") from err
        x = data.view(self.size, self.size, 3).permute(2, 0, 1).float().div_(255.0)
        return x, torch.tensor(index)


def celeba(root: str | Path | None = None, split: str = "train", size: int = 128) -> CelebA:
    """The CelebA data set (see :class:`CelebA`)."""
    return CelebA(root, split, size)
