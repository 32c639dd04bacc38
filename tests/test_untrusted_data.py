"""Safe with untrusted files: no data layout makes trustkit unpickle a file it was given or found.

A payload pickle whose ``__reduce__`` touches a marker file is planted wherever a library would unpickle
(scikit-learn's Olivetti cache, torchvision's MNIST ``processed/*.pt``, CIFAR-10's pickled batches); loading must
either give the right data from a safe source or stop with one line, and the marker must never appear.
Bad files (corrupt JPEG, empty batches folder, truncated IDX, ...) end with one line that names them.
"""
from __future__ import annotations

import gzip
import hashlib
import pathlib
import pickle

import numpy as np
import pytest
import torch

from tests.helpers import run_cli
from trustkit import load_dataset
from trustkit.data import cifar10, mnist, olivetti
from trustkit.errors import DataNotFoundError

# the layouts' own names, spelled out so that the tests do not lean on the modules they test
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
BATCHES = "cifar-10-batches-py"
BATCH_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
               "batches.meta")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Payload:
    """Unpickling this touches ``marker``: proof that a loader ran code from a data file."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.fixture
def marker(tmp_path) -> pathlib.Path:
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "a planted pickle was unpickled"


@pytest.fixture
def no_unpickling(monkeypatch):
    """Any Python-level pickle / joblib / torch load fails the test (belt and braces beside the marker)."""
    import joblib

    def forbidden(*args, **kwargs):
        raise AssertionError("a data file was unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (joblib, "load"), (torch, "load")):
        monkeypatch.setattr(module, name, forbidden)


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


def assert_cli_refuses(capsys, root: pathlib.Path, dataset: str, *expected: str) -> str:
    """``trustkit train`` on ``root`` ends with exit code 2, one stderr line holding ``expected``, nothing written."""
    out = root.parent / f"{root.name}-out"
    code, _, err = run_cli(capsys, "train", "--model", "softmax", "--dataset", dataset, "--data-root", str(root),
                           "--epochs", "1", "--out", str(out / "model.safetensors"))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    for text in expected:
        assert text in err, err
    assert not out.exists()
    return err


# ---------------------------------------------------------------- tiny generated data sets

def write_idx(path: pathlib.Path, array: np.ndarray) -> None:
    magic = 0x00000803 if array.ndim == 3 else 0x00000801  # IDX: unsigned bytes, 3 or 1 dimensions
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(raw: pathlib.Path, n_train: int = 12, n_test: int = 7, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        image_file, label_file = IDX_FILES[split]
        write_idx(raw / image_file, images)
        write_idx(raw / label_file, labels)
        arrays[split] = (images, labels)
    return arrays


def make_olivetti_faces(seed: int = 0) -> np.ndarray:
    """400 random uint8 64×64 'faces' holding both 0 and 255 (so scikit-learn's min/max scaling is x / 255)."""
    faces = np.random.default_rng(seed).integers(0, 256, (400, 64, 64), dtype=np.uint8)
    faces[:, 0, 0], faces[:, 0, 1] = 0, 255
    return faces


def write_png_folder(folder: pathlib.Path, faces: np.ndarray) -> None:
    from PIL import Image

    for index, face in enumerate(faces):
        path = folder / f"{index // 10:02d}" / f"{index % 10}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(path)  # uint8 H×W: an 8-bit grey PNG


def write_mat(path: pathlib.Path, faces: np.ndarray) -> None:
    """``faces`` as Roweis' olivettifaces.mat stores them: 4096×400, each column one image in MATLAB order."""
    from scipy.io import savemat

    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"faces": faces.transpose(0, 2, 1).reshape(400, -1).T.copy()}, do_compression=True)


def save_jpeg(path: pathlib.Path, pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path, "JPEG")


def make_jpeg_tree(folder: pathlib.Path, per_class: int = 2, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name in CIFAR_CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            save_jpeg(folder / name / f"{i}.jpg", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))


# ---------------------------------------------------------------- the plants are live

def test_planted_payloads_would_run_if_unpickled(tmp_path):
    """Sanity: each plant does run its code when loaded the way the libraries load these files."""
    import joblib

    cases = {
        "pickle": lambda path, m: (path.write_bytes(pickle.dumps(Payload(m))), pickle.loads(path.read_bytes())),
        "joblib": lambda path, m: (joblib.dump(Payload(m), path, compress=6), joblib.load(path)),
        "torch": lambda path, m: (torch.save(Payload(m), path), torch.load(path, weights_only=False)),
    }
    for name, plant_and_load in cases.items():
        marker_file = tmp_path / f"ran-{name}"
        plant_and_load(tmp_path / f"plant-{name}", marker_file)
        assert marker_file.exists(), name


# ---------------------------------------------------------------- Olivetti

def plant_pkz(root: pathlib.Path, marker_file: pathlib.Path) -> pathlib.Path:
    import joblib

    path = root / "scikit_learn_data" / "olivetti_py3.pkz"
    path.parent.mkdir(parents=True)
    joblib.dump(Payload(marker_file), path, compress=6)  # exactly how scikit-learn writes its cache
    return path


def test_olivetti_pkz_is_refused_and_never_opened(tmp_path, marker, no_unpickling, capsys):
    root = tmp_path / "data"
    pkz = plant_pkz(root, marker)
    for data_root in (root, pkz.parent):  # the data root, or scikit-learn's folder itself
        with pytest.raises(DataNotFoundError) as info:
            load_dataset("olivetti", "test", data_root=data_root)
        message = one_line_error(info)
        assert str(pkz) in message and "pickle" in message and "run any code" in message
        assert "olivetti/<person 00-39>/<0-9>.png" in message and "olivettifaces.mat" in message
    assert_cli_refuses(capsys, root, "olivetti", str(pkz), "pickle", "olivettifaces.mat")


def test_olivetti_png_folder_is_read_beside_a_planted_pkz(tmp_path, marker, no_unpickling):
    faces = make_olivetti_faces()
    write_png_folder(tmp_path / "olivetti", faces)
    plant_pkz(tmp_path, marker)
    labels = np.arange(400) // 10
    for split, count in (("train", 320), ("test", 80)):
        data = load_dataset("olivetti", split, data_root=tmp_path)
        chosen = olivetti.split_indices(labels, split)
        assert len(data) == count and data.shape == (1, 64, 64) and data.images.dtype == torch.float32
        assert torch.bincount(data.labels).tolist() == [count // 40] * 40
        assert torch.equal(data.labels, torch.from_numpy(labels[chosen]))
        # image i of scikit-learn's order is <person i // 10>/<i % 10>.png, scaled to [0, 1]
        expected = torch.from_numpy(faces[chosen].astype(np.float32) / 255).unsqueeze(1)
        assert torch.allclose(data.images, expected, atol=1e-7)
    train_idx, test_idx = olivetti.split_indices(labels, "train"), olivetti.split_indices(labels, "test")
    assert not set(train_idx) & set(test_idx) and len(set(train_idx) | set(test_idx)) == 400


def test_olivetti_mat_is_read_only_with_the_published_sha256(tmp_path, marker, no_unpickling, monkeypatch, capsys):
    faces = make_olivetti_faces(seed=1)
    mat = tmp_path / "mat" / "olivetti" / olivetti.MAT_FILE
    write_mat(mat, faces)
    plant_pkz(tmp_path / "mat", marker)
    with pytest.raises(DataNotFoundError) as info:  # a .mat that is not the published file is refused
        load_dataset("olivetti", "test", data_root=tmp_path / "mat")
    message = one_line_error(info)
    assert str(mat) in message and "SHA-256" in message and olivetti.MAT_SHA256 in message
    assert_cli_refuses(capsys, tmp_path / "mat", "olivetti", "SHA-256", str(mat))

    # with its digest declared published, the same file reads as scikit-learn reads it, in the PNG folder's order
    monkeypatch.setattr(olivetti, "MAT_SHA256", hashlib.sha256(mat.read_bytes()).hexdigest())
    from_mat = load_dataset("olivetti", "train", data_root=tmp_path / "mat")
    write_png_folder(tmp_path / "png" / "olivetti", faces)
    from_png = load_dataset("olivetti", "train", data_root=tmp_path / "png")
    assert len(from_mat) == 320 and torch.equal(from_mat.labels, from_png.labels)
    assert torch.allclose(from_mat.images, from_png.images, atol=1e-6)


def test_olivetti_bad_png_folders_name_the_file(tmp_path):
    from PIL import Image

    faces = make_olivetti_faces()
    folder = tmp_path / "olivetti"
    write_png_folder(folder, faces)
    (folder / "07" / "3.png").unlink()
    with pytest.raises(DataNotFoundError, match=r"incomplete: 07/3\.png is missing") as info:
        load_dataset("olivetti", "test", data_root=tmp_path)
    one_line_error(info)
    (folder / "07" / "3.png").write_bytes(b"")  # zero bytes
    with pytest.raises(DataNotFoundError, match=r"07/3\.png \(empty file\)"):
        load_dataset("olivetti", "test", data_root=tmp_path)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "07" / "3.png")  # colour, not 8-bit grey
    with pytest.raises(DataNotFoundError, match=r"07/3\.png is a 'RGB' image, expected 8-bit grey"):
        load_dataset("olivetti", "test", data_root=tmp_path)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "07" / "3.png")
    with pytest.raises(DataNotFoundError, match=r"07/3\.png is 32×32 pixels, expected 64×64"):
        load_dataset("olivetti", "test", data_root=tmp_path)


def test_olivetti_download_fetches_only_the_checked_mat(tmp_path, monkeypatch):
    import io
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataNotFoundError, match="downloading Olivetti faces .* failed .*unreachable") as info:
        load_dataset("olivetti", "test", data_root=tmp_path, download=True)
    one_line_error(info)
    assert not any(tmp_path.iterdir())  # nothing half-written

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"<html>not the file</html>"))
    with pytest.raises(DataNotFoundError, match="SHA-256 .* not the published " + olivetti.MAT_SHA256):
        load_dataset("olivetti", "test", data_root=tmp_path, download=True)
    assert not list(tmp_path.rglob("*.mat")) and not list(tmp_path.rglob("*.tmp"))


def test_olivetti_offline_copy_loads_from_png(shared_data, no_unpickling):
    if not (shared_data / "olivetti" / "00").is_dir():
        pytest.skip(f"the Olivetti PNG folder is not in the offline data ({shared_data / 'olivetti'})")
    train, test = (load_dataset("olivetti", split, data_root=shared_data) for split in ("train", "test"))
    assert (len(train), len(test)) == (320, 80) and train.shape == (1, 64, 64)
    assert train.images.dtype == torch.float32 and 0 <= train.images.min() and train.images.max() <= 1
    assert torch.bincount(train.labels).tolist() == [8] * 40 and torch.bincount(test.labels).tolist() == [2] * 40
    assert abs(torch.cat([train.images, test.images]).mean().item() - olivetti.SPEC.mean[0]) < 2e-3


# ---------------------------------------------------------------- MNIST

def plant_pt(mnist_folder: pathlib.Path, marker_file: pathlib.Path) -> list[pathlib.Path]:
    paths = [mnist_folder / "processed" / name for name in ("training.pt", "test.pt")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        torch.save(Payload(marker_file), path)
    return paths


def test_mnist_reads_raw_idx_and_never_touches_processed(tmp_path, marker, no_unpickling):
    arrays = make_mnist(tmp_path / "MNIST" / "raw")
    plant_pt(tmp_path / "MNIST", marker)
    for split, (images, labels) in arrays.items():
        for root in (tmp_path, tmp_path / "MNIST"):
            data = load_dataset("mnist", split, data_root=root)
            assert data.images.dtype == torch.uint8 and data.shape == (1, 28, 28)
            assert torch.equal(data.images, torch.from_numpy(images).unsqueeze(1))
            assert torch.equal(data.labels, torch.from_numpy(labels.astype(np.int64)))


def test_mnist_with_only_processed_pt_is_refused(tmp_path, marker, no_unpickling, capsys):
    planted = plant_pt(tmp_path / "MNIST", marker)
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", "test", data_root=tmp_path)
    message = one_line_error(info)
    assert str(planted[0]) in message and "pickle" in message and "MNIST/raw/*-ubyte" in message
    assert_cli_refuses(capsys, tmp_path, "mnist", "processed/training.pt", "pickle")


def test_mnist_folder_names_are_case_insensitive(tmp_path):
    arrays = make_mnist(tmp_path / "mnist" / "RAW", seed=2)
    data = load_dataset("mnist", "train", data_root=tmp_path)
    assert torch.equal(data.images, torch.from_numpy(arrays["train"][0]).unsqueeze(1))


@pytest.mark.parametrize("damage, expected", [
    (lambda p: p.write_bytes(p.read_bytes()[:-100]), r"t10k-images-idx3-ubyte is truncated \(5,404 bytes, expected "
                                                     r"5,504 for 7 images\)"),
    (lambda p: p.write_bytes(p.read_bytes()[:9]), r"t10k-images-idx3-ubyte is truncated \(9 bytes, shorter than an "
                                                  r"IDX header\)"),
    (lambda p: p.write_bytes(b""), r"t10k-images-idx3-ubyte is truncated \(0 bytes"),
    (lambda p: p.write_bytes(b"\x00\x00\x08\x01" + p.read_bytes()[4:]), r"not an MNIST IDX image file \(magic number "
                                                                        r"0x00000801, expected 0x00000803\)"),
    (lambda p: p.write_bytes(gzip.compress(p.read_bytes())), r"t10k-images-idx3-ubyte is gzip-compressed; decompress "
                                                             r"it \(gunzip\)"),
    (lambda p: write_idx(p, np.zeros((7, 32, 32), np.uint8)), r"holds 32×32 images, expected 28×28"),
    (lambda p: write_idx(p, np.zeros((6, 28, 28), np.uint8)), r"holds 6 images but .*t10k-labels-idx1-ubyte 7 labels"),
    (lambda p: write_idx(p.with_name("t10k-labels-idx1-ubyte"), np.full(7, 10, np.uint8)), r"holds label 10"),
])
def test_bad_idx_files_end_with_one_line_naming_them(tmp_path, damage, expected):
    make_mnist(tmp_path / "MNIST" / "raw")
    damage(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte")
    with pytest.raises(DataNotFoundError, match=expected) as info:
        load_dataset("mnist", "test", data_root=tmp_path)
    assert str(tmp_path / "MNIST" / "raw") in one_line_error(info)


def test_mnist_gz_only_says_to_gunzip(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    make_mnist(raw)
    for name in IDX_FILES["test"]:
        (raw / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes()))
        (raw / name).unlink()
    with pytest.raises(DataNotFoundError, match=r"lacks t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte \(only the "
                                                r"\.gz archives are there: gunzip them\)") as info:
        load_dataset("mnist", "test", data_root=tmp_path)
    one_line_error(info)


def test_mnist_download_keeps_nothing_when_it_fails(tmp_path, monkeypatch):
    from torchvision.datasets import utils as tv_utils

    calls = []

    def offline(url, download_root, filename, md5):
        calls.append((url, md5))
        raise OSError("network is unreachable")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DataNotFoundError, match="downloading MNIST .* failed .*network is unreachable") as info:
        load_dataset("mnist", "test", data_root=tmp_path, download=True)
    one_line_error(info)
    assert calls[0] == (mnist.MIRRORS[0] + mnist.RESOURCES[0][0], mnist.RESOURCES[0][1])  # MD5-checked download
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- CIFAR-10

def plant_batches(root: pathlib.Path, marker_file: pathlib.Path) -> pathlib.Path:
    folder = root / BATCHES
    folder.mkdir(parents=True)
    for name in BATCH_FILES:
        payload = Payload(marker_file) if name in ("data_batch_1", "test_batch") else {"junk": name}
        (folder / name).write_bytes(pickle.dumps(payload))
    return folder


def test_cifar10_planted_batches_are_refused_before_unpickling(tmp_path, marker, no_unpickling, capsys):
    folder = plant_batches(tmp_path, marker)
    for split, first_bad in (("test", "data_batch_1"), ("train", "data_batch_1")):
        with pytest.raises(DataNotFoundError) as info:
            load_dataset("cifar10", split, data_root=tmp_path)
        message = one_line_error(info)
        assert str(folder / first_bad) in message and "MD5" in message
        assert "c99cafc152244af753f735de768cd75f" in message  # data_batch_1's published MD5
    # only test_batch planted, the rest missing: still refused, by name
    for name in BATCH_FILES:
        if name != "test_batch":
            (folder / name).unlink()
    with pytest.raises(DataNotFoundError, match="incomplete: data_batch_1, .*batches.meta missing"):
        load_dataset("cifar10", "test", data_root=tmp_path)
    assert_cli_refuses(capsys, tmp_path, "cifar10", str(folder), "--download")


def test_cifar10_empty_batches_folder_is_one_line(tmp_path, capsys):
    (tmp_path / BATCHES).mkdir()
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("cifar10", "test", data_root=tmp_path)
    message = one_line_error(info)
    assert "is incomplete: data_batch_1, data_batch_2" in message and "test_batch" in message
    assert "--download" in message and "cifar10-jpeg" in message
    assert_cli_refuses(capsys, tmp_path, "cifar10", "incomplete")


def test_cifar10_verified_batches_load_through_torchvision(tmp_path, monkeypatch):
    """The happy path with tiny batches whose MD5s stand in for the published ones (in trustkit and torchvision)."""
    from torchvision.datasets import CIFAR10

    rng = np.random.default_rng(0)
    folder = tmp_path / BATCHES
    folder.mkdir()
    batches = {}
    for name in BATCH_FILES[:-1]:
        batches[name] = (rng.integers(0, 256, (3, 3072), dtype=np.uint8), rng.integers(0, 10, 3).tolist())
        (folder / name).write_bytes(pickle.dumps({"data": batches[name][0], "labels": batches[name][1]}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR_CLASSES)}))
    digests = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in BATCH_FILES}
    monkeypatch.setattr(cifar10, "BATCH_MD5", digests)
    monkeypatch.setattr(CIFAR10, "train_list", [[n, digests[n]] for n in BATCH_FILES[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", digests["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": digests["batches.meta"]})
    test = load_dataset("cifar10", "test", data_root=tmp_path)
    assert test.images.shape == (3, 3, 32, 32) and test.labels.tolist() == batches["test_batch"][1]
    assert torch.equal(test.images, torch.from_numpy(batches["test_batch"][0].reshape(3, 3, 32, 32)))
    assert len(load_dataset("cifar10", "train", data_root=tmp_path)) == 15


@pytest.mark.parametrize("damage, expected", [
    (lambda p: p.write_bytes(b""), r"bird/1\.jpg \(empty file\)"),
    (lambda p: p.write_bytes(p.read_bytes()[:60]), r"bird/1\.jpg \("),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(500)), r"bird/1\.jpg \(UnidentifiedImageError"),
    (lambda p: save_jpeg(p, np.zeros((32, 40, 3), np.uint8)), r"bird/1\.jpg is 40×32 pixels, expected 32×32"),
])
def test_corrupt_jpeg_names_the_file(tmp_path, capsys, damage, expected):
    for split in ("train", "test"):  # the CLI loads both splits: damage both
        make_jpeg_tree(tmp_path / "cifar10-jpeg" / split)
        damage(tmp_path / "cifar10-jpeg" / split / "bird" / "1.jpg")
    with pytest.raises(DataNotFoundError, match=expected) as info:
        load_dataset("cifar10", "test", data_root=tmp_path)
    assert "replace it with a good 32×32 copy, or delete it" in one_line_error(info)
    assert_cli_refuses(capsys, tmp_path, "cifar10", "bird/1.jpg")


def test_jpeg_tree_loads(tmp_path):
    make_jpeg_tree(tmp_path / "cifar10-jpeg" / "test")
    data = load_dataset("cifar10", "test", data_root=tmp_path)
    assert data.images.shape == (20, 3, 32, 32) and torch.bincount(data.labels).tolist() == [2] * 10


def test_cifar10_download_keeps_nothing_when_it_fails(tmp_path, monkeypatch):
    from torchvision.datasets import utils as tv_utils

    def offline(url, download_root, filename, md5):
        assert (url, md5) == (cifar10.ARCHIVE_URL, cifar10.ARCHIVE_MD5)
        (pathlib.Path(download_root) / filename).write_bytes(b"partial")
        raise OSError("network is unreachable")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DataNotFoundError, match="downloading CIFAR-10 .* failed .*network is unreachable") as info:
        load_dataset("cifar10", "test", data_root=tmp_path, download=True)
    one_line_error(info)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- published digests

def test_published_digests_match_the_libraries():
    """The SHA-256 / MD5 values trustkit pins are the ones scikit-learn and torchvision publish."""
    from sklearn.datasets._olivetti_faces import FACES
    from torchvision.datasets import CIFAR10, MNIST

    assert (olivetti.MAT_FILE, olivetti.MAT_URL, olivetti.MAT_SHA256) == (FACES.filename, FACES.url, FACES.checksum)
    assert cifar10.TRAIN_MD5 == dict(CIFAR10.train_list) and cifar10.TEST_MD5 == dict(CIFAR10.test_list)
    assert cifar10.META_MD5 == {CIFAR10.meta["filename"]: CIFAR10.meta["md5"]}
    assert (cifar10.ARCHIVE_URL, cifar10.ARCHIVE_FILE, cifar10.ARCHIVE_MD5) == (CIFAR10.url, CIFAR10.filename,
                                                                                CIFAR10.tgz_md5)
    assert list(mnist.MIRRORS) == MNIST.mirrors and [tuple(r) for r in MNIST.resources] == list(mnist.RESOURCES)
