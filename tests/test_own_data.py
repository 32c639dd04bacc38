"""Your own images and models: folder:/csv: data sets (lazy, stratified, one line per bad file), torchvision /
timm architectures with safetensors weights, trustkit.evaluate for notebooks, and robustbench.json."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import run_cli
from trustkit.data import get_spec, load_dataset
from trustkit.errors import DataNotFoundError, InvalidArgumentError

CLASSES = ("cat", "dog", "eel")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """3 classes × 10 colour JPEGs of varying sizes (one class has 12)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir()
        for i in range(10 + 2 * (label == 1)):
            w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / name / f"{i}.jpg")
    return root


def test_folder_resizes_like_torchvisions_eval_transform(image_folder):
    import torchvision.transforms as T

    spec = get_spec(f"folder:{image_folder}@32")
    assert spec.shape == (3, 32, 32) and spec.class_names == CLASSES
    data = load_dataset(spec.name, "test")
    x, y = data.tensors(torch.tensor([0, 11, 25]))
    reference = T.Compose([T.Resize(math.ceil(32 / 0.875)), T.CenterCrop(32), T.PILToTensor()])
    for image, index in zip(x, [0, 11, 25]):
        with Image.open(data.files[index]) as pil:
            expected = reference(pil.convert("RGB")).float() / 255
        assert torch.equal(image, expected)
    assert y.tolist() == [0, 1, 2]


def test_only_the_sampled_files_are_decoded_and_the_sample_is_stratified(image_folder, monkeypatch):
    import trustkit.data.folder as folder

    decoded = []
    original = folder._decode
    monkeypatch.setattr(folder, "_decode", lambda path, *a: decoded.append(path) or original(path, *a))
    data = load_dataset(f"folder:{image_folder}@16", "test")
    index = data.sample(6, 1000, seed=0)
    decoded.clear()
    x, y = data.tensors(index)
    assert len(decoded) == 6 and x.shape == (6, 3, 16, 16)
    assert sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]  # every class, in turn
    assert torch.equal(data.sample(6, 1000, seed=0), index) and not torch.equal(data.sample(6, 1000, seed=1), index)


def test_bad_files_are_one_line_or_skipped_with_a_count(image_folder, tmp_path, capsys):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(image_folder, root)
    (root / "dog" / "broken.png").write_bytes(b"")
    with pytest.raises(DataNotFoundError, match="broken.png.*empty file.*skip_bad"):
        load_dataset(f"folder:{root}@16", "test").tensors()
    x, y = load_dataset(f"folder:{root}@16?skip_bad=1", "test").tensors()
    assert len(x) == len(y) == 32 and "skipped 1 unreadable file" in capsys.readouterr().err
    with pytest.raises(DataNotFoundError, match="pixels, the first image .*@SIZE"):
        load_dataset(f"folder:{image_folder}", "test").tensors()  # mixed sizes need @SIZE
    for bad, message in ((f"folder:{tmp_path}/none", "no folder"), (f"folder:{image_folder}@3", "from 8 to 4096"),
                         (f"folder:{image_folder}?colour=1", "unknown option")):
        with pytest.raises((DataNotFoundError, InvalidArgumentError), match=message):
            get_spec(bad)


def test_csv_lists_paths_and_labels(image_folder, tmp_path):
    rows = ["path,label"] + [f"{p},{p.parent.name}" for p in sorted(image_folder.glob("*/*.jpg"))[:9]]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    spec = get_spec(f"csv:{tmp_path / 'list.csv'}@16")
    x, y = load_dataset(spec.name, "test").tensors()
    assert spec.class_names == ("cat",) and len(x) == 9 and set(y.tolist()) == {0}


def test_offline_copies_read_as_folders(shared_data):
    cifar, olivetti = shared_data / "cifar10-jpeg", shared_data / "olivetti"
    if not (cifar / "test").is_dir() or not olivetti.is_dir():
        pytest.skip("cifar10-jpeg/ or olivetti/ not found in the offline data folder")
    spec = get_spec(f"folder:{cifar}")
    assert spec.shape == (3, 32, 32) and spec.class_names[:3] == ("airplane", "automobile", "bird")
    test = load_dataset(spec.name, "test")
    assert len(test) == 10_000 and len(load_dataset(spec.name, "train")) == 50_000
    faces = get_spec(f"folder:{olivetti}")
    assert faces.shape == (1, 64, 64) and len(faces.class_names) == 40


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    import safetensors.torch
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.get_model("resnet18", weights=None, num_classes=3)
    folder = tmp_path_factory.mktemp("weights")
    safetensors.torch.save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "r18.safetensors")
    torch.save(net.state_dict(), folder / "r18.pt")
    return folder


def test_torchvision_model_with_weights_on_a_folder(image_folder, resnet_weights, tmp_path, capsys):
    from trustkit.models.loading import resolve_model

    code, out, err = run_cli(capsys, "bench", "fgsm,pgd", "--model", "torchvision:resnet18", "--weights",
                             str(resnet_weights / "r18.safetensors"), "--dataset", f"folder:{image_folder}",
                             "--image-size", "32", "--n", "9", "--eps", "1/255,8/255", "--no-probes",
                             "--out", str(tmp_path))
    assert code == 0, err
    run_dir = next(tmp_path.iterdir())
    entries = json.loads((run_dir / "robustbench.json").read_text())
    assert [(e["eps"], e["threat_model"], e["n"]) for e in entries] == [("1/255", "Linf", 9), ("8/255", "Linf", 9)]
    assert all(e["robust_acc"] <= e["clean_acc"] and e["evaluation"] == "iterative" for e in entries)
    assert "Model card: robustness" in (run_dir / "report.html").read_text()
    loaded = resolve_model(f"torchvision:resnet18?weights={resnet_weights / 'r18.safetensors'}",
                           f"folder:{image_folder}@32", device="cpu")
    expected = torch.load(resnet_weights / "r18.pt", weights_only=True)  # the test's own file, not trustkit's way
    assert torch.equal(loaded.module.net.fc.weight, expected["fc.weight"])
    x = torch.rand(2, 3, 32, 32)  # the ImageNet normalisation is inside the model: inputs stay in [0, 1]
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), loaded.module.net((x - mean) / std), atol=1e-5)


@pytest.mark.parametrize("extra, message", [
    (["--weights", "{w}/r18.pt"], "pickled PyTorch file.*safetensors"),
    (["--weights", "{w}/r18.safetensors", "--num-classes", "5"], "does not fit torchvision:resnet18 with 5 classes"),
    (["--num-classes", "5"], "returns .*expected logits of shape .2, 3."),
])
def test_library_model_mistakes_are_one_line(image_folder, resnet_weights, tmp_path, capsys, extra, message):
    args = [a.replace("{w}", str(resnet_weights)) for a in extra]
    code, _, err = run_cli(capsys, "bench", "fgsm", "--model", "torchvision:resnet18", *args, "--dataset",
                           f"folder:{image_folder}", "--image-size", "32", "--n", "3", "--out", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    import re

    assert re.search(message, err), err
    assert not any(tmp_path.iterdir())


def test_own_data_options_need_the_matching_spec(capsys, tmp_path):
    code, _, err = run_cli(capsys, "bench", "fgsm", "--model", "cnn", "--weights", "w.safetensors")
    assert code == 2 and "torchvision:NAME or timm:NAME" in err
    code, _, err = run_cli(capsys, "bench", "fgsm", "--image-size", "224")
    assert code == 2 and "folder:PATH or csv:FILE" in err
    code, _, err = run_cli(capsys, "bench", "fgsm", "--model", "torchvision:resnett18")
    assert code == 2 and "no classification model 'resnett18'" in err


def test_timm_model_builds_with_its_preprocessing_inside():
    pytest.importorskip("timm", reason="timm is the optional extra trustkit[timm]")
    from trustkit.models.library import load_library_model

    model, meta = load_library_model("timm:resnet18", num_classes=4)
    assert meta["library"] == "timm" and model(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_evaluate_takes_a_module_and_tensors_a_dataset_or_a_dataloader(tmp_path):
    import trustkit

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    x, y = torch.rand(24, 3, 8, 8), torch.randint(0, 4, (24,))
    run = trustkit.evaluate(model, (x, y), attacks="fgsm,pgd", eps=[0.01, 0.1], out=str(tmp_path), probes=False)
    assert run.report.is_file() and len(run.results) == 4
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    assert run.results["clean_accuracy"].iloc[0] == pytest.approx(clean)
    assert (run.results.groupby("attack")["robust_accuracy"].apply(lambda r: r.is_monotonic_decreasing)).all()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=5)
    again = trustkit.evaluate(model, loader, attacks=["fgsm"], eps=[0.1], n=12, out=str(tmp_path), probes=False)
    assert int(again.results["n"].iloc[0]) == 12
    from_dataset = trustkit.evaluate(model, torch.utils.data.TensorDataset(x, y), attacks=["fgsm"], eps=[0.1],
                                     out=str(tmp_path), probes=False)
    fgsm = run.results[(run.results["attack"] == "fgsm") & (run.results["eps"] == 0.1)]
    assert from_dataset.results["robust_accuracy"].iloc[0] == fgsm["robust_accuracy"].iloc[0]
    with pytest.raises(InvalidArgumentError, match=r"\[0, 1\]"):
        trustkit.evaluate(model, (x * 255, y), attacks="fgsm", out=str(tmp_path))


def test_the_suggested_strong_command_can_be_pasted_into_a_shell():
    import shlex

    import pandas as pd

    from trustkit.sanity import evaluation_strength

    model, dataset = "torchvision:resnet18?weights=/my models/r18.safetensors", "folder:/data/val set@224"
    frame = pd.DataFrame([{"model": model, "dataset": dataset, "attack": "fgsm", "norm": "linf", "eps": 2 / 255,
                           "robust_accuracy": 0.5, "access": "white-box", "targets": None}])
    strength = evaluation_strength(frame)
    words = shlex.split(strength["command"])
    assert strength["level"] == "weak" and words[words.index("--model") + 1] == model
    assert words[words.index("--dataset") + 1] == dataset


def test_torch_export_programs_load_only_with_consent(tmp_path):
    from trustkit.errors import CheckpointError
    from trustkit.models.loading import resolve_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    program = torch.export.export(net, (torch.rand(3, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    torch.export.save(program, tmp_path / "net.pt2")
    with pytest.raises(CheckpointError, match="torch.export program .* --trust-code"):
        resolve_model(str(tmp_path / "net.pt2"), "digits", device="cpu")
    loaded = resolve_model(str(tmp_path / "net.pt2"), "digits", device="cpu", trust_code=True)
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(x), atol=1e-6)
    from trustkit.attacks import PGD

    x_adv = PGD(0.1, steps=3)(loaded.module, x, net(x).argmax(1))  # attacks switch eval() and take gradients
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6


def test_specs_keep_odd_characters_in_paths(image_folder, tmp_path):
    import shutil

    from trustkit.models.library import library_spec, parse_library_spec

    odd = tmp_path / "me@home & co"
    shutil.copytree(image_folder, odd / "images")
    spec = get_spec(f"folder:{odd / 'images'}@16")
    assert spec.shape == (3, 16, 16) and len(load_dataset(spec.name, "test")) == 32
    weights = odd / "w?v=1.safetensors"
    assert parse_library_spec(library_spec("torchvision:resnet18", weights=weights, num_classes=3)).weights == weights


def test_a_zoo_model_trained_on_a_folder_is_one_store_file(image_folder, tmp_path, monkeypatch, capsys):
    """Store entries of user data sets hold a path; the store keeps each as one safe file name, and a second
    run finds it (no retraining)."""
    import shutil

    monkeypatch.setenv("TRUSTKIT_HOME", str(tmp_path / "home"))
    root = tmp_path / "data"
    shutil.copytree(image_folder, root)
    (root / "dog" / "broken.png").write_bytes(b"")
    args = ["bench", "fgsm", "--model", "cnn", "--dataset", f"folder:{root}", "--image-size", "16", "--skip-bad",
            "--n", "6", "--eps", "0.1", "--no-probes", "--out", str(tmp_path / "out")]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    stored = list((tmp_path / "home" / "checkpoints").iterdir())
    assert len(stored) == 1 and stored[0].is_file() and stored[0].name.startswith("cnn-folder-")
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and "training it now" not in err


def test_a_class_file_names_the_classes(image_folder, tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("tabby cat\nterrier\nmoray eel\n")
    spec = get_spec(f"folder:{image_folder}@16?classes={names}")
    assert spec.class_names == ("tabby cat", "terrier", "moray eel")
    names.write_text("only one\n")
    get_spec.__globals__["user_spec"].cache_clear()
    with pytest.raises(DataNotFoundError, match="names 1 classes but the data has 3"):
        get_spec(f"folder:{image_folder}@16?classes={names}")
    code, _, err = run_cli(capsys, "bench", "fgsm", "--classes", str(names))
    assert code == 2 and "folder:PATH or csv:FILE" in err


def test_worker_processes_decode_the_same_images(image_folder):
    """--workers: the DataLoader's worker processes give exactly what decoding in this process gives."""
    from trustkit.data.folder import with_options

    here = load_dataset(with_options(f"folder:{image_folder}@16", workers=0), "test").tensors()
    spec = with_options(f"folder:{image_folder}@16", workers=2)
    assert "workers=2" in spec and get_spec(spec).name == get_spec(f"folder:{image_folder}@16").name
    there = load_dataset(spec, "test").tensors()
    assert torch.equal(here[0], there[0]) and torch.equal(here[1], there[1])


def test_safetensors_whose_header_length_starts_like_a_pickle_are_read(tmp_path):
    """A safetensors file begins with its header's length, little-endian: one in 256 begins with byte 0x80, the
    pickle protocol marker. Such a file is still safetensors and is read, not refused as pickled."""
    import safetensors.torch

    from trustkit.errors import CheckpointError
    from trustkit.models.library import _read_weights

    tensors = {"fc.weight": torch.arange(6.0).view(2, 3)}
    path = tmp_path / "w.safetensors"
    for padding in range(600):
        safetensors.torch.save_file(tensors, str(path), metadata={"pad": "x" * padding})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    assert torch.equal(_read_weights(path)["fc.weight"], tensors["fc.weight"])
    pickled = tmp_path / "w.pt"
    torch.save(tensors, pickled, _use_new_zipfile_serialization=False)  # the legacy format: starts with 0x80
    assert pickled.read_bytes()[:1] == b"\x80"
    renamed = tmp_path / "pickle.safetensors"
    renamed.write_bytes(pickled.read_bytes())
    for refused in (pickled, renamed):
        with pytest.raises(CheckpointError, match="pickled PyTorch file"):
            _read_weights(refused)
