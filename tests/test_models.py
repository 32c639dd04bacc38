"""Zoo shapes, checkpoint round trip, refusal of pickles, TorchScript and factory specs (with consent), shape checks.

Refusal of code without consent, old two-file checkpoints, locks and read-only stores: tests/test_untrusted_models.py.
"""
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from trustkit import load_model
from trustkit.data import get_spec
from trustkit.errors import CheckpointError, ShapeMismatchError, UnknownNameError
from trustkit.models import MODELS, build_model
from trustkit.models.loading import load_checkpoint, resolve_model
from trustkit.models.store import read_metadata, save_checkpoint


@pytest.mark.parametrize("arch", ["softmax", "mlp", "cnn", "cnn-small", "resnet"])
@pytest.mark.parametrize("dataset", ["digits", "mnist", "cifar10"])
def test_zoo_shapes(arch, dataset):
    spec = get_spec(dataset)
    model = build_model(arch, spec).eval()
    with torch.no_grad():
        out = model(torch.rand(2, *spec.shape))
    assert out.shape == (2, spec.num_classes)


def test_cnn_has_the_documented_size_on_mnist():
    assert sum(p.numel() for p in build_model("cnn", get_spec("mnist")).parameters()) == 421_642


def test_cnn_small_is_the_fast_at_mnist_network():
    """Wong et al. 2020's MNIST model: 4×4 stride-2 convolutions 16 and 32 wide, then 100 units (166,406)."""
    net = build_model("cnn-small", get_spec("mnist")).net
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(16, (4, 4), (2, 2)), (32, (4, 4), (2, 2))]
    assert sum(p.numel() for p in net.parameters()) == 166_406


def test_normalisation_is_inside_the_model():
    spec = get_spec("cifar10")
    model = build_model("softmax", spec).eval()
    x = torch.rand(3, *spec.shape)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), model.net((x - mean) / std), atol=1e-6)


def test_checkpoint_round_trip(tmp_path):
    spec = get_spec("digits")
    torch.manual_seed(0)
    model = build_model("cnn", spec).eval()
    path = save_checkpoint(model, {"arch": "cnn", "dataset": "digits", "input_shape": [1, 8, 8], "seed": 0}, tmp_path / "m")
    assert path.suffix == ".safetensors" and not path.with_suffix(".json").exists()  # one file: metadata in header
    loaded, meta = load_checkpoint(path)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert meta["arch"] == "cnn" and meta["format"] == "trustkit-checkpoint" and "created" in meta
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def _pickle_marker_payload(marker: Path):
    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    return Exploit()


def test_pickled_torch_save_is_refused_without_executing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(1), "payload": _pickle_marker_payload(marker)}, path)
    with pytest.raises(CheckpointError, match="pickled PyTorch file"):
        load_model(str(path), "digits")
    assert not marker.exists()


def test_legacy_pickle_is_refused_without_executing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth"
    path.write_bytes(pickle.dumps(_pickle_marker_payload(marker), protocol=2))
    with pytest.raises(CheckpointError, match="pickled"):
        load_model(str(path), "digits")
    assert not marker.exists()


def test_torchscript_model_loads(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", get_spec("digits")).eval()
    path = tmp_path / "scripted.pt"
    torch.jit.script(model).save(str(path))
    loaded = load_model(str(path), "digits", device="cpu", trust_code=True)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))


def test_factory_spec_loads(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "def tiny():\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = resolve_model("my_models:tiny", "digits", device="cpu", trust_code=True)
    assert loaded.name == "tiny" and not loaded.module.training


def test_factory_with_wrong_output_is_refused():
    with pytest.raises(ShapeMismatchError, match="expected logits"):
        load_model("torch.nn:Identity", "digits", device="cpu", trust_code=True)


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(str(tmp_path / "absent.safetensors"), "digits")
    spec = get_spec("digits")
    path = save_checkpoint(build_model("softmax", spec), {"arch": "softmax", "dataset": "digits",
                                                          "input_shape": [1, 8, 8]}, tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(str(path), "digits")
    from safetensors.torch import save_file

    other = tmp_path / "n.safetensors"  # plain safetensors: weights, no trustkit metadata in header or beside it
    save_file(build_model("softmax", spec).state_dict(), str(other))
    with pytest.raises(CheckpointError, match="no trustkit metadata"):
        load_model(str(other), "digits")
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"hello world")
    with pytest.raises(CheckpointError, match="neither"):
        load_model(str(garbage), "digits")


def test_metadata_that_does_not_match_weights(tmp_path):
    spec = get_spec("digits")
    path = save_checkpoint(build_model("softmax", spec), {"arch": "mlp", "dataset": "digits"}, tmp_path / "m")
    with pytest.raises(CheckpointError, match="does not match architecture 'mlp'"):
        load_model(str(path), "digits")


def test_checkpoint_used_with_wrong_dataset(tmp_path):
    spec = get_spec("digits")
    path = save_checkpoint(build_model("softmax", spec), {"arch": "softmax", "dataset": "digits",
                                                          "input_shape": [1, 8, 8]}, tmp_path / "m")
    with pytest.raises(ShapeMismatchError, match="use --dataset digits"):
        load_model(str(path), "mnist")


def test_unknown_model_suggests(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'resnet'"):
        load_model("resnt", "digits")


def test_zoo_model_is_trained_once_then_cached(trustkit_home, digits_cnn):
    weights = trustkit_home / "checkpoints" / "cnn-digits.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = load_model("cnn", "digits", device="cpu")
    assert weights.stat().st_mtime_ns == stamp
    meta = read_metadata(weights)
    assert meta["metrics"]["clean_accuracy"] > 0.95
    assert meta["recipe"]["epochs"] == 30 and meta["input_shape"] == [1, 8, 8]
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(again(x), digits_cnn(x))
    assert set(MODELS) >= {"cnn"}


def test_torchscript_detection_does_not_depend_on_suffix(tmp_path):
    model = build_model("softmax", get_spec("digits")).eval()
    path = tmp_path / "weird.bin"
    torch.jit.script(model).save(str(path))
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="TorchScript file"):  # found by its bytes, refused without consent
        load_model(str(path), "digits", device="cpu")
    assert isinstance(load_model(str(path), "digits", device="cpu", trust_code=True), torch.nn.Module)
