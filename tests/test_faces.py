"""The faces data set: file-name parsing, the fixed split, attributes, errors; the real copy when present."""
import numpy as np
import pytest
import torch
from PIL import Image

from trustkit import load_dataset
from trustkit.data import get_spec
from trustkit.data.faces import FaceLabels, parse_name, split_of
from trustkit.errors import DataNotFoundError


def _make_faces(folder, names):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / name)


NAMES = [f"{age}_{age % 2}_{age % 5}_2017011{age % 10}.png" for age in range(1, 61)]


def test_parse_names():
    assert parse_name("25_1_2_20170116174525125.png") == FaceLabels(25, 1, 2)
    assert parse_name("100_0_4_2017.jpg.chip.png") == FaceLabels(100, 0, 4)
    for bad in ("39_1_20170116.png", "x_1_2_3.png", "25_2_0_1.png", "25_1_9_1.png", "readme.png"):
        assert parse_name(bad) is None, bad


def test_split_is_a_fixed_function_of_the_file_name():
    assert split_of("1_0_0_a.png") == split_of("/elsewhere/1_0_0_a.png")
    splits = [split_of(f"{i}_0_0_{i}.png") for i in range(2000)]
    assert 0.17 < splits.count("test") / len(splits) < 0.23


def test_synthetic_folder_loads_with_attributes(tmp_path):
    _make_faces(tmp_path / "faces-utk64", [*NAMES, "broken_name.png"])
    train, test = load_dataset("faces", "train", tmp_path), load_dataset("faces", "test", tmp_path)
    assert len(train) + len(test) == len(NAMES)  # the unparsable file is skipped
    assert not set(train.files) & set(test.files)
    assert set(test.files) == {n for n in NAMES if split_of(n) == "test"}
    x, y = test.tensors()
    assert x.shape[1:] == (3, 64, 64) and 0 <= x.min() and x.max() <= 1 and test.images.dtype == torch.uint8
    for i, name in enumerate(test.files):
        labels = parse_name(name)
        assert int(test.attributes["age"][i]) == labels.age and int(test.attributes["race"][i]) == labels.race
        assert int(y[i]) == labels.gender == int(test.attributes["gender"][i])
    sub = test.subset(torch.tensor([1, 0]))
    assert sub.files == (test.files[1], test.files[0]) and torch.equal(sub.attributes["age"], test.attributes["age"][[1, 0]])
    # the folder itself is accepted as a root too
    assert len(load_dataset("faces", "test", tmp_path / "faces-utk64")) == len(test)


def test_spec_and_missing_folder_error(tmp_path):
    spec = get_spec("faces")
    assert spec.shape == (3, 64, 64) and spec.class_names == ("male", "female")
    assert get_spec("utkface") is spec
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("faces", "test", data_root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "faces-utk64") in message and "--data-root" in message and "\n" not in message


@pytest.mark.data
def test_utkface_from_shared_data(shared_data):
    if not (shared_data / "faces-utk64").is_dir():
        pytest.skip("faces-utk64 not in the offline data")
    train, test = load_dataset("faces", "train", shared_data), load_dataset("faces", "test", shared_data)
    assert len(train) + len(test) == 8000 and (len(train), len(test)) == (6464, 1536)
    assert test.shape == (3, 64, 64) and set(test.labels.tolist()) == {0, 1}
    assert set(test.attributes["race"].tolist()) == {0, 1, 2, 3, 4}
    assert 0 < test.attributes["age"].min() and test.attributes["age"].max() <= 116
    assert torch.equal(load_dataset("faces", "test", shared_data).images[:5], test.images[:5])  # deterministic
