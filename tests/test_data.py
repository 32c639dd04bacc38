import pytest
import torch

from trustkit import load_dataset
from trustkit.data import get_spec
from trustkit.errors import DataNotFoundError, InvalidArgumentError, UnknownNameError


def test_digits_split_is_fixed_disjoint_and_in_unit_range():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    x, y = test.tensors()
    assert x.shape == (360, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    train_rows = {tuple(r.tolist()) for r in train.tensors()[0].flatten(1)}
    overlap = sum(tuple(r.tolist()) in train_rows for r in x.flatten(1))
    assert overlap < 10  # only genuine duplicate images in load_digits, no leak of the split
    assert torch.equal(load_dataset("digits").tensors()[0], x)  # deterministic
    sample, label = test[0]
    assert sample.shape == (1, 8, 8) and isinstance(label, int)


def test_digits_read_without_sklearn_equal_load_digits(monkeypatch):
    """The shipped CSV is read directly (no ``import sklearn.datasets``); it must be scikit-learn's data exactly,
    and the fallback through ``load_digits`` (file not found) must give the same arrays."""
    import importlib.util
    import subprocess
    import sys

    import numpy as np
    from sklearn.datasets import load_digits

    from trustkit.data import digits

    reference = load_digits()
    images, labels = digits.digits_arrays()
    assert np.array_equal(images, reference.images) and np.array_equal(labels, reference.target)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    fallback_images, fallback_labels = digits.digits_arrays()
    assert np.array_equal(fallback_images, reference.images) and np.array_equal(fallback_labels, reference.target)
    probe = ("import sys; from trustkit import load_dataset; load_dataset('digits', 'test'); "
             "print('sklearn' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() \
        == "False"


def test_specs_know_their_shapes_and_grids():
    assert get_spec("cifar10").shape == (3, 32, 32) and get_spec("cifar10").eps_linf[-1] == pytest.approx(8 / 255)
    assert get_spec("mnist").num_classes == 10
    assert get_spec("cifar").name == "cifar10"


def test_unknown_dataset_and_split():
    with pytest.raises(UnknownNameError, match="did you mean 'mnist'"):
        load_dataset("mnsit")
    with pytest.raises(InvalidArgumentError, match="split"):
        load_dataset("digits", "validation")


@pytest.mark.parametrize("name", ["mnist", "cifar10", "olivetti"])
def test_missing_data_names_searched_folders(tmp_path, name):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset(name, "test", data_root=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "--data-root" in message and "\n" not in message


def test_mnist_from_shared_data(shared_data):
    test = load_dataset("mnist", "test", data_root=shared_data)
    assert len(test) == 10_000 and test.images.dtype == torch.uint8 and test.shape == (1, 28, 28)
    # the MNIST folder itself is accepted as a root too
    assert len(load_dataset("mnist", "test", data_root=shared_data / "MNIST")) == 10_000


def test_cifar10_jpeg_folders_from_shared_data(shared_data):
    if not (shared_data / "cifar10-jpeg").is_dir():
        pytest.skip("cifar10-jpeg not in the offline data")
    test = load_dataset("cifar10", "test", data_root=shared_data)
    x, y = test.tensors(torch.arange(0, 10_000, 1000))
    assert len(test) == 10_000 and x.shape == (10, 3, 32, 32)
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def test_failed_download_is_one_clean_error(tmp_path, monkeypatch):
    from torchvision.datasets import utils as tv_utils

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)  # what trustkit's MNIST download calls
    with pytest.raises(DataNotFoundError, match="downloading MNIST .* failed .*network is unreachable"):
        load_dataset("mnist", "test", data_root=tmp_path, download=True)
