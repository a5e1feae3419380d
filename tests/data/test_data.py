from __future__ import annotations

import numpy as np
import pytest
import torch

from consistency import DataFileError
from consistency.data import celeba, mnist, read_idx
from tests.conftest import write_idx


def test_idx_raw_and_gz(tmp_path) -> None:  # type: ignore[no-untyped-def]
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", arr)
    write_idx(tmp_path / "b-idx3-ubyte.gz", arr)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), arr)
    assert np.array_equal(read_idx(tmp_path / "b-idx3-ubyte.gz"), arr)


def test_idx_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    arr = np.zeros((4, 5, 5), dtype=np.uint8)
    write_idx(tmp_path / "x", arr)
    blob = (tmp_path / "x").read_bytes()
    (tmp_path / "short").write_bytes(blob[:-7])
    with pytest.raises(
        DataFileError, match=r"short: truncated or corrupt: header declares shape \(4, 5, 5\)"
    ):
        read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x12\x34" + blob[2:])
    with pytest.raises(DataFileError, match="magic: wrong magic number 0x12340803"):
        read_idx(tmp_path / "magic")
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataFileError, match=r"bad\.gz: corrupt or truncated gzip"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(DataFileError, match="IDX file not found"):
        read_idx(tmp_path / "nope")


def test_mnist_layouts(mnist_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train = mnist(mnist_root, "train", download=False)
    test = mnist(mnist_root, "test", download=False)
    assert len(train) == 64 and len(test) == 32
    x, y = train[0]
    assert (
        x.shape == (1, 28, 28)
        and x.dtype == torch.float32
        and 0 <= float(x.min())
        and float(x.max()) <= 1
    )
    assert y.dtype == torch.int64
    # files directly in root, gzipped
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in (mnist_root / "MNIST" / "raw").iterdir():
        (flat / (f.name + ".gz")).write_bytes(__import__("gzip").compress(f.read_bytes()))
    assert torch.equal(mnist(flat, "train", download=False).images, train.images)


def test_mnist_missing_and_corrupt(mnist_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        DataFileError, match=r"train-images-idx3-ubyte\[\.gz\] not found in .*--data-root"
    ):
        mnist(tmp_path / "empty", "train", download=False)
    img = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    img.write_bytes(img.read_bytes()[:1000])
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte: truncated or corrupt"):
        mnist(mnist_root, "train", download=False)
    with pytest.raises(ValueError, match="split must be"):
        mnist(mnist_root, "validation", download=False)


def test_mnist_verify_rejects_non_official(mnist_root) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataFileError, match="md5 does not match the official file"):
        mnist(mnist_root, "test", download=False, verify=True)


def test_celeba_miniature(celeba_root) -> None:  # type: ignore[no-untyped-def]
    train = celeba(celeba_root, "train", size=32)
    test = celeba(celeba_root, "test", size=32)
    assert len(train) == 4 and len(test) == 4
    x, idx = train[1]
    assert x.shape == (3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1 and int(idx) == 1


def test_celeba_errors(celeba_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataFileError, match=r"CelebA not found: expected list_eval_partition\.txt"):
        celeba(tmp_path / "nothing")
    (celeba_root / "img_align_celeba" / "000002.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataFileError, match=r"cannot read CelebA image .*000002\.jpg"):
        celeba(celeba_root, "train", size=32)[1]
    (celeba_root / "img_align_celeba" / "000001.jpg").unlink()
    with pytest.raises(
        DataFileError, match=r"1 image\(s\) of split 'train' .* missing, e.g. .*000001.jpg"
    ):
        celeba(celeba_root, "train")


def test_mnist_download_verified_and_failing(mnist_root, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import gzip
    import hashlib
    import importlib
    import io

    m = importlib.import_module(
        "consistency.data.mnist"
    )  # the module (the package exports a function of that name)

    blobs = {
        f.name: gzip.compress(f.read_bytes()) for f in (mnist_root / "MNIST" / "raw").iterdir()
    }
    table = {
        name: {"md5": "", "gz_md5": hashlib.md5(blob).hexdigest()} for name, blob in blobs.items()
    }
    monkeypatch.setattr(m, "MNIST_FILES", table)
    fetched: list[str] = []

    def fake_urlopen(url: str, timeout: float = 0):  # type: ignore[no-untyped-def]
        name = url.rsplit("/", 1)[1][: -len(".gz")]
        fetched.append(url)
        if url.startswith(m.MIRRORS[0]):
            return io.BytesIO(b"corrupt download")  # first mirror serves garbage: md5 rejects it
        return io.BytesIO(blobs[name])

    monkeypatch.setattr(m.urllib.request, "urlopen", fake_urlopen)
    data = m.mnist(tmp_path / "fresh", "test")
    assert (
        len(data) == 32
        and (tmp_path / "fresh" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").exists()
    )
    assert len(fetched) == 4  # each file: bad mirror, then good mirror

    def offline(url: str, timeout: float = 0):  # type: ignore[no-untyped-def]
        raise OSError("network unreachable")

    monkeypatch.setattr(m.urllib.request, "urlopen", offline)
    with pytest.raises(
        DataFileError, match=r"not in .* could not be downloaded .*network unreachable.*--data-root"
    ):
        m.mnist(tmp_path / "offline", "train")
