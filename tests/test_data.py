"""raysweep.data on real on-disk formats (IDX, CIFAR-10 pickles, PNG folders, .npz) in tmp dirs."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import pytest
import torch

from raysweep import data as data_module
from raysweep.data import (
    CIFAR10_FILES,
    FASHION_MNIST_CLASSES,
    MNIST_FILES,
    cache_path,
    channel_stats,
    get_format,
    list_datasets,
    load_dataset,
    register_dataset,
    shard,
)
from raysweep.errors import DatasetError, UserError

try:
    from raysweep.sections import DatasetSpec
except ImportError:  # config.py is written in parallel; the fields below mirror it
    DatasetSpec = None

_DEFAULTS: dict[str, Any] = {
    "root": "~/.cache/raysweep/data",
    "download": True,
    "path": None,
    "image_size": None,
    "test_fraction": 0.2,
    "limit_train": None,
    "limit_test": None,
    "num_train": 512,
    "num_test": 256,
    "num_classes": 10,
    "channels": 3,
    "cache_dir": "~/.cache/raysweep/tensors",
    "split_seed": 0,
}


@pytest.fixture
def make_spec(tmp_path: Path):
    """Build a DatasetSpec whose root and cache_dir live in tmp_path (never the user's home)."""

    def make(name: str, **fields: Any) -> Any:
        fields = {"root": str(tmp_path / "root"), "cache_dir": str(tmp_path / "cache"), **fields}
        if DatasetSpec is not None:
            return DatasetSpec(name=name, **fields)
        return types.SimpleNamespace(**{**_DEFAULTS, "name": name, **fields})

    return make


def cache_files(tmp_path: Path) -> list[str]:
    return sorted(os.listdir(tmp_path / "cache"))


# --------------------------------------------------------------------------- digits


def test_digits_split_shapes_values_and_stratification(make_spec) -> None:
    from sklearn.datasets import load_digits

    data = load_dataset(make_spec("digits"))
    assert len(data.x_train) + len(data.x_test) == 1797
    assert data.x_train.shape[1:] == (1, 32, 32) and data.x_test.shape[1:] == (1, 32, 32)
    assert data.x_train.dtype == torch.uint8 and data.y_train.dtype == torch.int64
    assert data.x_train.is_contiguous() and data.x_test.is_contiguous()
    assert data.in_channels == 1 and data.image_size == 32 and data.num_classes == 10
    assert data.classes == [str(i) for i in range(10)]
    assert set(data.y_train.tolist()) == set(range(10)) == set(data.y_test.tolist())
    assert int(data.x_train.max()) == 255 and int(data.x_train.min()) == 0
    # Stratified: each class sends round(20%) of its samples to test.
    per_class = np.bincount(load_digits().target, minlength=10)
    expected_test = np.floor(per_class * 0.2 + 0.5).astype(int)
    assert data.y_test.bincount(minlength=10).tolist() == expected_test.tolist()
    assert data.y_train.bincount(minlength=10).tolist() == (per_class - expected_test).tolist()
    mean, std = channel_stats(data.x_train)
    assert data.mean == pytest.approx(mean) and data.std == pytest.approx(std)
    assert 0.0 < data.mean[0] < 1.0 and 0.0 < data.std[0] < 1.0


def test_digits_native_size_scales_0_16_to_0_255_exactly(make_spec) -> None:
    from sklearn.datasets import load_digits

    data = load_dataset(make_spec("digits", image_size=8, test_fraction=0.5))
    images = np.rint(load_digits().images * 255.0 / 16.0).astype(np.uint8)
    every = torch.cat([data.x_train, data.x_test])[:, 0].numpy()
    # Every decoded image is one of the originals, unchanged (order aside).
    originals = {img.tobytes() for img in images}
    assert all(img.tobytes() in originals for img in every)
    assert len(every) == 1797


def test_digits_second_load_is_served_from_cache(make_spec, tmp_path, monkeypatch) -> None:
    spec = make_spec("digits")
    first = load_dataset(spec)
    assert cache_files(tmp_path) == [cache_path(spec).name]
    assert cache_path(spec).name.startswith("digits-")

    def no_source() -> None:
        raise AssertionError("the second load must not decode the source again")

    monkeypatch.setattr("sklearn.datasets.load_digits", no_source)
    second = load_dataset(spec)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert first.mean == second.mean and first.classes == second.classes


def test_split_seed_changes_the_split(make_spec) -> None:
    a = load_dataset(make_spec("digits", image_size=8, split_seed=0))
    b = load_dataset(make_spec("digits", image_size=8, split_seed=1))
    assert len(a.y_test) == len(b.y_test)
    assert not torch.equal(a.x_test, b.x_test)


# --------------------------------------------------------------------------- MNIST (IDX)


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """Write `array` (uint8) in the IDX format: magic 0x0000 08 <ndim>, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def write_mnist(
    root: Path, folder: str, gz: bool | list[bool], n_train: int = 20, n_test: int = 10
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    flags = gz if isinstance(gz, list) else [gz] * 4
    for (key, name), flag in zip(MNIST_FILES.items(), flags, strict=True):
        write_idx(raw / name, arrays[key], flag)
    return arrays


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
@pytest.mark.parametrize("gz", [False, True, [True, False, False, True]])
def test_mnist_idx_round_trips(make_spec, tmp_path, name, folder, gz) -> None:
    arrays = write_mnist(tmp_path / "root", folder, gz)
    data = load_dataset(make_spec(name, download=False))
    assert data.x_train.shape == (20, 1, 28, 28) and data.x_test.shape == (10, 1, 28, 28)
    assert data.x_train.dtype == torch.uint8 and data.y_train.dtype == torch.int64
    assert np.array_equal(data.x_train[:, 0].numpy(), arrays["train_images"])
    assert np.array_equal(data.x_test[:, 0].numpy(), arrays["test_images"])
    assert data.y_train.tolist() == arrays["train_labels"].tolist()
    assert data.y_test.tolist() == arrays["test_labels"].tolist()
    expected = FASHION_MNIST_CLASSES if name == "fashion_mnist" else [str(i) for i in range(10)]
    assert data.classes == expected
    assert data.name == name


def test_mnist_resize_and_cache_survives_source_removal(make_spec, tmp_path) -> None:
    write_mnist(tmp_path / "root", "MNIST", gz=False)
    spec = make_spec("mnist", download=False, image_size=32)
    first = load_dataset(spec)
    assert first.x_train.shape == (20, 1, 32, 32)
    for path in (tmp_path / "root" / "MNIST" / "raw").iterdir():
        path.unlink()
    second = load_dataset(spec)  # served from the cache: the sources are gone
    assert torch.equal(first.x_train, second.x_train)
    native = make_spec("mnist", download=False)
    assert cache_path(native) != cache_path(spec)
    with pytest.raises(DatasetError):
        load_dataset(native)


def test_mnist_missing_without_download_names_expected_paths(make_spec, tmp_path) -> None:
    with pytest.raises(DatasetError) as excinfo:
        load_dataset(make_spec("fashion_mnist", download=False))
    message = str(excinfo.value)
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    for name in MNIST_FILES.values():
        assert str(raw / name) in message
    assert "download: true" in message
    assert isinstance(excinfo.value, UserError)


def test_mnist_offline_download_fails_with_instructions(make_spec, tmp_path, monkeypatch) -> None:
    import torchvision.datasets

    class Offline:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    with pytest.raises(DatasetError) as excinfo:
        load_dataset(make_spec("mnist", download=True))
    message = str(excinfo.value)
    assert "download" in message and "failed" in message
    assert str(tmp_path / "root" / "MNIST" / "raw" / "train-images-idx3-ubyte") in message
    assert "download: false" in message
    assert isinstance(excinfo.value.__cause__, URLError)


def test_mnist_download_is_used_when_allowed(make_spec, tmp_path, monkeypatch) -> None:
    import torchvision.datasets

    calls: list[tuple[str, bool]] = []

    class FakeDownload:
        def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
            calls.append((root, download))
            write_mnist(Path(root), "MNIST", gz=True)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeDownload)
    data = load_dataset(make_spec("mnist", download=True))
    assert calls == [(str(tmp_path / "root"), True)]
    assert data.x_train.shape == (20, 1, 28, 28)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, "bad magic"),  # float IDX, not unsigned bytes
        (b"\x00\x00\x08\x03" + struct.pack(">3I", 20, 28, 28) + b"\x00" * 100, "header promises"),
    ],
)
def test_mnist_corrupt_idx_is_a_dataset_error(make_spec, tmp_path, content, needle) -> None:
    write_mnist(tmp_path / "root", "MNIST", gz=False)
    (tmp_path / "root" / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(content)
    with pytest.raises(DatasetError, match=needle):
        load_dataset(make_spec("mnist", download=False))


def test_mnist_label_count_mismatch(make_spec, tmp_path) -> None:
    write_mnist(tmp_path / "root", "MNIST", gz=False)
    raw = tmp_path / "root" / "MNIST" / "raw"
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(9, dtype=np.uint8), gz=False)
    with pytest.raises(DatasetError, match="10 labels"):
        load_dataset(make_spec("mnist", download=False))


# --------------------------------------------------------------------------- CIFAR-10


def write_cifar(root: Path, per_batch: int = 4, protocol: int = 2) -> dict[str, np.ndarray]:
    """The python-format layout: 5 data batches, a test batch and batches.meta, pickled dicts."""
    rng = np.random.default_rng(1)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    images = rng.integers(0, 256, (6 * per_batch, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 6 * per_batch)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        chunk = slice(i * per_batch, (i + 1) * per_batch)
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in labels[chunk]],
            b"data": images[chunk].reshape(per_batch, 3072),  # channel-major rows
            b"filenames": [f"img_{j}.png".encode() for j in range(per_batch)],
        }
        (base / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {
        b"num_cases_per_batch": per_batch,
        b"label_names": [n.encode() for n in CIFAR_NAMES],
        b"num_vis": 3072,
    }
    (base / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return {"images": images, "labels": labels}


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer"]
CIFAR_NAMES += ["dog", "frog", "horse", "ship", "truck"]


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_round_trips_in_chw_order(make_spec, tmp_path, protocol) -> None:
    written = write_cifar(tmp_path / "root", protocol=protocol)
    data = load_dataset(make_spec("cifar10", download=False))
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    assert np.array_equal(data.x_train.numpy(), written["images"][:20])
    assert np.array_equal(data.x_test.numpy(), written["images"][20:])
    assert data.y_train.tolist() == written["labels"][:20].tolist()
    assert data.classes == CIFAR_NAMES
    # A known pixel: row 5, column 7 of the first image. In a CIFAR row the red plane comes
    # first (1024 values), then green, then blue, each row-major.
    row = written["images"][0].reshape(3072)
    for channel in range(3):
        assert int(data.x_train[0, channel, 5, 7]) == int(row[channel * 1024 + 5 * 32 + 7])


def test_cifar10_missing_and_offline(make_spec, tmp_path, monkeypatch) -> None:
    import torchvision.datasets

    base = tmp_path / "root" / "cifar-10-batches-py"
    with pytest.raises(DatasetError) as excinfo:
        load_dataset(make_spec("cifar10", download=False))
    assert str(base) in str(excinfo.value)
    assert all(name in str(excinfo.value) for name in CIFAR10_FILES)

    class Offline:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    with pytest.raises(DatasetError, match="failed.*download: false"):
        load_dataset(make_spec("cifar10", download=True))


def test_cifar10_refuses_pickles_that_run_code(make_spec, tmp_path) -> None:
    write_cifar(tmp_path / "root")

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, ("echo pwned",))

    (tmp_path / "root" / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(DatasetError, match="test_batch"):
        load_dataset(make_spec("cifar10", download=False))


# --------------------------------------------------------------------------- image folder


def write_png(path: Path, colour: tuple[int, ...] | int, size: tuple[int, int] = (10, 12)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if isinstance(colour, int) else "RGB"
    Image.new(mode, size, colour).save(path)


def test_folder_split_from_class_dirs(make_spec, tmp_path) -> None:
    root = tmp_path / "images"
    for i in range(5):
        write_png(root / "cat" / f"{i}.png", (200, 10, 30))
        write_png(root / "dog" / f"{i}.PNG", (5, 100, 250))
    (root / "dog" / "notes.txt").write_text("not an image")
    data = load_dataset(make_spec("folder", path=str(root)))
    assert data.classes == ["cat", "dog"]
    assert data.x_train.shape == (8, 3, 32, 32) and data.x_test.shape == (2, 3, 32, 32)
    assert data.y_test.bincount().tolist() == [1, 1]
    # Solid colours survive the resize exactly, in RGB channel order.
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        for image, label in zip(x, y, strict=True):
            colour = (200, 10, 30) if label == 0 else (5, 100, 250)
            assert image[:, 0, 0].tolist() == list(colour)
            assert bool((image == image[:, :1, :1]).all())


def test_folder_train_test_layout_greyscale_and_size(make_spec, tmp_path) -> None:
    root = tmp_path / "images"
    for split, count in (("train", 3), ("test", 2)):
        for label, grey in (("a", 40), ("b", 220)):
            for i in range(count):
                write_png(root / split / label / "nested" / f"{i}.png", grey)
    data = load_dataset(make_spec("folder", path=str(root), image_size=16))
    assert data.classes == ["a", "b"]
    assert data.x_train.shape == (6, 1, 16, 16) and data.x_test.shape == (4, 1, 16, 16)
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1] and data.y_test.tolist() == [0, 0, 1, 1]
    assert set(data.x_test[:, 0, 0, 0].tolist()) == {40, 220}


def test_folder_mixed_grey_and_colour_becomes_rgb(make_spec, tmp_path) -> None:
    root = tmp_path / "images"
    for i in range(3):
        write_png(root / "a" / f"{i}.png", 90)
        write_png(root / "b" / f"{i}.jpg", (10, 20, 30))
    data = load_dataset(make_spec("folder", path=str(root), test_fraction=0.34))
    assert data.in_channels == 3
    grey = data.x_train[data.y_train == 0]
    assert bool((grey == 90).all())


def test_folder_errors_name_the_path(make_spec, tmp_path) -> None:
    root = tmp_path / "images"
    with pytest.raises(DatasetError, match=str(root)):
        load_dataset(make_spec("folder", path=str(root)))
    root.mkdir()
    with pytest.raises(DatasetError, match="no class directories"):
        load_dataset(make_spec("folder", path=str(root)))
    (root / "cat").mkdir()
    with pytest.raises(DatasetError, match=f"{root / 'cat'} has no images"):
        load_dataset(make_spec("folder", path=str(root)))
    for i in range(3):
        write_png(root / "cat" / f"{i}.png", 10)
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="broken.png"):
        load_dataset(make_spec("folder", path=str(root)))


def test_folder_train_without_test(make_spec, tmp_path) -> None:
    root = tmp_path / "images"
    write_png(root / "train" / "cat" / "0.png", 10)
    with pytest.raises(DatasetError, match="no test/"):
        load_dataset(make_spec("folder", path=str(root)))


def test_folder_new_images_invalidate_the_cache(make_spec, tmp_path) -> None:
    root = tmp_path / "images"
    for i in range(5):
        write_png(root / "a" / f"{i}.png", 1)
        write_png(root / "b" / f"{i}.png", 2)
    spec = make_spec("folder", path=str(root))
    before = cache_path(spec)
    assert len(load_dataset(spec).x_train) == 8
    write_png(root / "a" / "new.png", 1)
    os.utime(root / "a", ns=(0, os.stat(root / "a").st_mtime_ns + 10**9))
    assert cache_path(spec) != before
    assert len(load_dataset(spec).x_train) + len(load_dataset(spec).x_test) == 11


# --------------------------------------------------------------------------- npz


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_npz_layouts_round_trip(make_spec, tmp_path, layout) -> None:
    rng = np.random.default_rng(2)
    channels = 1 if layout == "nhw" else 3
    images = rng.integers(0, 256, (20, channels, 12, 12), dtype=np.uint8)  # NCHW truth
    stored = {
        "nhw": images[:, 0],
        "nhwc": images.transpose(0, 2, 3, 1),
        "nchw": images,
    }[layout]
    labels = np.arange(20) % 4
    path = tmp_path / "d.npz"
    np.savez(path, x=stored, y=labels, x_test=stored[:6], y_test=labels[:6])
    data = load_dataset(make_spec("npz", path=str(path)))
    assert data.x_train.shape == (20, channels, 12, 12)
    assert np.array_equal(data.x_train.numpy(), images)
    assert np.array_equal(data.x_test.numpy(), images[:6])
    assert data.y_train.tolist() == labels.tolist()
    assert data.classes == ["0", "1", "2", "3"]


def test_npz_floats_split_and_class_names(make_spec, tmp_path) -> None:
    values = np.random.default_rng(3).integers(0, 256, (30, 8, 8)).astype(np.float32) / 255.0
    path = tmp_path / "d.npz"
    np.savez(path, x=values, y=np.arange(30) % 3, classes=np.array(["ant", "bee", "cow"]))
    data = load_dataset(make_spec("npz", path=str(path), image_size=8))
    assert data.classes == ["ant", "bee", "cow"]
    assert len(data.x_train) == 24 and data.y_test.bincount().tolist() == [2, 2, 2]
    restored = {img.tobytes() for img in np.rint(values * 255).astype(np.uint8)}
    assert all(img.tobytes() in restored for img in data.x_train[:, 0].numpy())


def test_npz_resize_makes_non_square_images_square(make_spec, tmp_path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.full((10, 6, 9), 77, dtype=np.uint8), y=np.arange(10) % 2)
    with pytest.raises(DatasetError, match="image_size"):
        load_dataset(make_spec("npz", path=str(path)))
    data = load_dataset(make_spec("npz", path=str(path), image_size=16))
    assert data.x_train.shape[1:] == (1, 16, 16) and bool((data.x_train == 77).all())


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"y": np.zeros(4, dtype=int)}, "no 'x'"),
        ({"x": np.zeros((4, 8, 8), dtype=np.uint8)}, "no 'y'"),
        ({"x": np.zeros((4, 8, 8), dtype=np.uint8), "y": np.zeros(3, dtype=int)}, "one label"),
        ({"x": np.full((4, 8, 8), 2.0), "y": np.zeros(4, dtype=int)}, r"\[0, 1\]"),
        ({"x": np.zeros((4, 8), dtype=np.uint8), "y": np.zeros(4, dtype=int)}, "shape"),
        ({"x": np.zeros((4, 8, 8), dtype=np.uint8), "y": np.zeros(4)}, "integer"),
        (
            {
                "x": np.zeros((4, 8, 8), dtype=np.uint8),
                "y": np.arange(4),
                "x_test": np.zeros((2, 8, 8), dtype=np.uint8),
            },
            "together",
        ),
        (
            {"x": np.zeros((4, 8, 8), np.uint8), "y": np.arange(4) % 2, "classes": np.array(["a"])},
            "name every class",
        ),
    ],
)
def test_npz_bad_inputs(make_spec, tmp_path, arrays, needle) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=needle):
        load_dataset(make_spec("npz", path=str(path), test_fraction=0.5))


def test_npz_missing_file_and_not_an_npz(make_spec, tmp_path) -> None:
    missing = tmp_path / "nope.npz"
    with pytest.raises(DatasetError, match=str(missing)):
        load_dataset(make_spec("npz", path=str(missing)))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive")
    with pytest.raises(DatasetError, match="numpy.savez"):
        load_dataset(make_spec("npz", path=str(garbage)))


def test_npz_cache_hit_and_invalidation(make_spec, tmp_path, monkeypatch) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((10, 8, 8), dtype=np.uint8), y=np.arange(10) % 2)
    spec = make_spec("npz", path=str(path), image_size=8)
    assert len(load_dataset(spec).x_train) == 8
    real_load = np.load

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("cache hit expected")

    monkeypatch.setattr(np, "load", forbidden)
    assert len(load_dataset(spec).x_train) == 8
    monkeypatch.setattr(np, "load", real_load)
    np.savez(path, x=np.zeros((20, 8, 8), dtype=np.uint8), y=np.arange(20) % 2)
    assert len(load_dataset(spec).x_train) == 16  # the file changed: decoded again


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_seeded_sized_and_learnable(make_spec) -> None:
    spec = make_spec("synthetic", num_train=200, num_test=100, num_classes=4, channels=2)
    data = load_dataset(spec)
    assert data.x_train.shape == (200, 2, 32, 32) and data.x_test.shape == (100, 2, 32, 32)
    assert data.classes == ["0", "1", "2", "3"] and data.y_train.bincount().tolist() == [50] * 4
    other = load_dataset(
        make_spec("synthetic", num_train=200, num_test=100, num_classes=4, channels=2, split_seed=1)
    )
    assert not torch.equal(data.x_train, other.x_train)
    # Nearest class mean classifies the test set: the classes are separable.
    train = data.x_train.float().flatten(1)
    centres = torch.stack([train[data.y_train == c].mean(0) for c in range(4)])
    predicted = torch.cdist(data.x_test.float().flatten(1), centres).argmin(1)
    assert (predicted == data.y_test).float().mean() > 0.95


def test_synthetic_image_size(make_spec) -> None:
    data = load_dataset(make_spec("synthetic", image_size=12, channels=1, num_classes=2))
    assert data.x_train.shape[1:] == (1, 12, 12) and data.image_size == 12


# --------------------------------------------------------------------------- limits, cache, shard


def test_limits_are_seeded_subsets_that_share_the_cache(make_spec, tmp_path) -> None:
    full = load_dataset(make_spec("synthetic", num_train=100, num_test=50))
    spec = make_spec("synthetic", num_train=100, num_test=50, limit_train=30, limit_test=10)
    small = load_dataset(spec)
    assert len(small.x_train) == 30 and len(small.x_test) == 10
    assert small.x_train.is_contiguous()
    assert len(cache_files(tmp_path)) == 1  # limits are applied after the cache
    rows = {img.numpy().tobytes() for img in full.x_train}
    assert all(img.numpy().tobytes() in rows for img in small.x_train)
    again = load_dataset(spec)
    assert torch.equal(small.x_train, again.x_train)
    assert small.mean == pytest.approx(channel_stats(small.x_train)[0])
    assert small.mean != full.mean
    big = load_dataset(make_spec("synthetic", num_train=100, num_test=50, limit_train=1000))
    assert len(big.x_train) == 100


def test_concurrent_loads_write_one_complete_cache(make_spec, tmp_path) -> None:
    spec = make_spec("synthetic", num_train=300)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(load_dataset(spec))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and torch.equal(results[0].x_train, results[1].x_train)
    assert cache_files(tmp_path) == [cache_path(spec).name]  # no temp files left behind
    assert torch.equal(load_dataset(spec).x_train, results[0].x_train)


def test_corrupt_cache_is_rebuilt(make_spec, tmp_path) -> None:
    spec = make_spec("synthetic", num_train=20, num_test=10)
    first = load_dataset(spec)
    cache_path(spec).write_bytes(b"half a file")
    assert torch.equal(load_dataset(spec).x_train, first.x_train)
    assert torch.load(cache_path(spec), weights_only=True)["x_train"].shape == (20, 3, 32, 32)


def test_unwritable_cache_still_returns_data(make_spec, tmp_path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache directory should be")
    spec = make_spec("synthetic", num_train=20, num_test=10, cache_dir=str(blocker))
    assert len(load_dataset(spec).x_train) == 20


def test_cache_dir_is_expanded_and_named_by_dataset(make_spec, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = make_spec("synthetic", num_train=20, num_test=10, cache_dir="~/tensors")
    load_dataset(spec)
    files = os.listdir(tmp_path / "home" / "tensors")
    assert len(files) == 1 and files[0].startswith("synthetic-") and files[0].endswith(".pt")


def test_mean_and_std_are_fractions_of_255(make_spec) -> None:
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 2, 2).contiguous()
    x[:, 2] = 51  # a constant channel: std floored at 1/255
    mean, std = channel_stats(x)
    assert mean == pytest.approx((0.5, 0.5, 0.2)) and std == pytest.approx((0.5, 0.5, 1 / 255))


def test_shard_strides_and_covers_everything() -> None:
    x = torch.arange(10).view(10, 1, 1, 1).to(torch.uint8)
    y = torch.arange(10)
    shards = [shard(x, y, rank, 3) for rank in range(3)]
    assert [s[1].tolist() for s in shards] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    for sx, sy in shards:
        assert sx.is_contiguous() and torch.equal(sx.flatten(), sy.to(torch.uint8))
    assert torch.equal(shard(x, y, 0, 1)[0], x)
    with pytest.raises(ValueError):
        shard(x, y, 3, 3)
    with pytest.raises(ValueError):
        shard(x, y[:5], 0, 2)


def test_unknown_dataset_name(tmp_path) -> None:
    spec = types.SimpleNamespace(**{**_DEFAULTS, "name": "imagenet", "cache_dir": str(tmp_path)})
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'"):
        load_dataset(spec)


def test_heavy_dependencies_are_imported_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, raysweep.data; "
        "print([m for m in ('torchvision', 'sklearn', 'PIL') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert data_module.__doc__


# --------------------------------------------------------------------------- registry


def _schema_names() -> set[str]:
    """The dataset names the sweep-file schema accepts (`dataset.name`)."""
    from typing import get_args

    return set(get_args(DatasetSpec.model_fields["name"].annotation)) if DatasetSpec else set()


@pytest.mark.skipif(DatasetSpec is None, reason="raysweep.config is not importable")
@pytest.mark.parametrize("name", sorted(set(list_datasets()) | _schema_names()))
def test_registry_and_config_schema_know_the_same_datasets(name) -> None:
    assert name in list_datasets(), f"the config accepts {name!r} but no format registers it"
    assert name in _schema_names(), f"{name!r} is registered but the config schema refuses it"
    DatasetSpec(name=name, path="anything")  # the schema's own checks accept it
    fmt = get_format(name)
    assert fmt.name == name
    unknown = set(fmt.cache_fields) - set(DatasetSpec.model_fields)
    assert not unknown, f"{name!r} keys its cache on fields the spec lacks: {unknown}"


def test_every_format_module_registers_a_dataset() -> None:
    import pkgutil

    from raysweep.data import formats

    registering = {get_format(name).decode.__module__ for name in list_datasets()}
    for module in pkgutil.iter_modules(formats.__path__):
        assert f"{formats.__name__}.{module.name}" in registering, module.name


def test_a_registered_format_loads_and_caches(tmp_path, monkeypatch) -> None:
    from raysweep.data import registry
    from raysweep.data.spec import target_size

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_dataset("plain_test", cache_fields=("num_classes",), default_image_size=8)
    def decode(spec: Any) -> Any:
        size = target_size(spec)
        x = torch.zeros(spec.num_classes * 2, 1, size, size, dtype=torch.uint8)
        y = torch.arange(spec.num_classes * 2) % spec.num_classes
        return x, y, x, y, [f"c{i}" for i in range(spec.num_classes)]

    spec = types.SimpleNamespace(
        **{**_DEFAULTS, "name": "plain_test", "num_classes": 3, "cache_dir": str(tmp_path)}
    )
    data = load_dataset(spec)
    assert "plain_test" in list_datasets()
    assert data.x_train.shape == (6, 1, 8, 8) and data.classes == ["c0", "c1", "c2"]
    assert os.listdir(tmp_path) == [cache_path(spec).name]
    assert cache_path(spec).name.startswith("plain_test-")
    assert cache_path(types.SimpleNamespace(**{**vars(spec), "num_classes": 4})) != cache_path(spec)
    assert cache_path(types.SimpleNamespace(**{**vars(spec), "num_train": 4})) == cache_path(spec)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("plain_test")(decode)


def test_unknown_dataset_lists_the_registered_names(tmp_path) -> None:
    spec = types.SimpleNamespace(**{**_DEFAULTS, "name": "imagenet", "cache_dir": str(tmp_path)})
    with pytest.raises(DatasetError) as excinfo:
        load_dataset(spec)
    assert all(name in str(excinfo.value) for name in list_datasets())


def test_every_format_imports_heavy_dependencies_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, raysweep.data; raysweep.data.list_datasets(); "
        "print([m for m in ('torchvision', 'sklearn', 'PIL') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- cache lock


LOAD_COUNTING = """
import dataclasses, os, sys, time
from pathlib import Path
from raysweep.sections import DatasetSpec
from raysweep.data import load as load_module

spec = DatasetSpec(name="digits", cache_dir=sys.argv[1], root=sys.argv[1])
real = load_module.get_format("digits")

def slow_decode(s):
    with Path(sys.argv[2]).open("a") as fh:
        fh.write(f"{os.getpid()}\\n")
    time.sleep(1.0)  # a download: the other process arrives meanwhile
    return real.decode(s)

load_module.get_format = lambda name: dataclasses.replace(real, decode=slow_decode)
load_module.load_dataset(spec)
"""

HOLD_LOCK = """
import sys, time
from pathlib import Path
from raysweep.data.cache import cache_lock

with cache_lock(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(1.0)
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)


def test_two_processes_on_a_fresh_cache_decode_once(tmp_path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "decodes.log"
    procs = [_python(LOAD_COUNTING, str(cache), str(log)) for _ in range(2)]
    assert [p.wait(120) for p in procs] == [0, 0]
    assert len(log.read_text().split()) == 1  # the second waited, then read the first's file
    assert [f for f in os.listdir(cache) if f.endswith(".pt")] != []
    assert not [f for f in os.listdir(cache) if "lock" in f]  # the lock lives elsewhere


def test_cache_lock_is_exclusive_across_processes(tmp_path) -> None:
    import time

    from raysweep.data.cache import cache_lock

    path = tmp_path / "cache" / "x.pt"
    child = _python(HOLD_LOCK, str(path))
    assert child.stdout is not None and child.stdout.readline().strip() == "holding"
    t0 = time.perf_counter()
    with cache_lock(path):
        waited = time.perf_counter() - t0
    assert child.wait(30) == 0
    assert waited > 0.3


def test_cache_lock_that_cannot_be_created_runs_unlocked(tmp_path, monkeypatch) -> None:
    from raysweep.data import cache as cache_module

    def refuse(*args: Any, **kwargs: Any) -> int:
        raise PermissionError("read-only")

    monkeypatch.setattr(cache_module.os, "open", refuse)
    with cache_module.cache_lock(tmp_path / "x.pt"):
        pass
