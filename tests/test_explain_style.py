"""Neural style transfer (trustkit.explain.style, the style study, its report and ``trustkit explain style``):
the Gram matrix against a hand computation, the losses' zeros, a short transfer that moves towards the style,
layer naming, one-line errors, colour conversion and the command writing its report."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from trustkit.errors import DataNotFoundError, InvalidArgumentError, TrustkitError, UnknownNameError
from trustkit.explain.image_files import read_image
from trustkit.explain.style import content_loss, gram_matrix, style_distance, style_loss, transfer_style
from trustkit.explain.style_layers import LayerFeatures, block_names, choose_layers, model_layers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_convnet(channels: int = 3, seed: int = 0) -> nn.Module:
    """A random two-block convnet classifier (blocks of 16×16 and 8×8 on 16×16 inputs)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()


def pictures(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A smooth content picture (a disc on a gradient) and a striped style picture, uint8 H×W×3."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    content = np.stack([(xx**2 + yy**2 < 0.4) * 0.8 + 0.1, (yy + 1) / 2, (xx + 1) / 4], -1)
    style = np.stack([np.sin(xx * 12) > 0, (np.sin(yy * 9) > 0) * 0.5, np.sin((xx + yy) * 6) > 0], -1)
    return (content * 255).round().astype(np.uint8), (style * 255).astype(np.uint8)


@pytest.fixture()
def image_files(tmp_path: Path) -> tuple[Path, Path]:
    content, style = pictures(16)
    Image.fromarray(content).save(tmp_path / "content.png")
    Image.fromarray(style).save(tmp_path / "style.png")
    return tmp_path / "content.png", tmp_path / "style.png"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, text
    return text


# --- the formulas ------------------------------------------------------------------------------------

def test_gram_matrix_is_f_ft_over_chw_by_hand():
    features = torch.arange(8.0).reshape(1, 2, 2, 2)  # channel 0: 0 1 2 3, channel 1: 4 5 6 7; C·H·W = 8
    expected = torch.tensor([[[(0 + 1 + 4 + 9) / 8, (0 * 4 + 1 * 5 + 2 * 6 + 3 * 7) / 8],
                              [(0 * 4 + 1 * 5 + 2 * 6 + 3 * 7) / 8, (16 + 25 + 36 + 49) / 8]]])
    assert torch.equal(gram_matrix(features), expected)  # 1.75, 4.75 / 4.75, 15.75
    batch = torch.randn(3, 4, 5, 6)
    gram = gram_matrix(batch)
    assert gram.shape == (3, 4, 4)
    for n in range(3):  # every image on its own, entry by entry
        for i in range(4):
            for j in range(4):
                assert gram[n, i, j].item() == pytest.approx((batch[n, i] * batch[n, j]).sum().item() / (4 * 5 * 6),
                                                             rel=1e-5, abs=1e-6)
    with pytest.raises(TrustkitError) as error:
        gram_matrix(torch.randn(2, 7))  # a fully connected layer's output has no positions
    one_line(error.value)


def test_losses_of_an_image_with_itself_are_zero_and_positive_otherwise():
    model = tiny_convnet()
    content, style = (torch.from_numpy(p).permute(2, 0, 1).float().div(255).unsqueeze(0) for p in pictures(16))
    names = ["1", "3", "6"]
    features = LayerFeatures(model, names)
    with torch.no_grad():
        mine, theirs = features(content), features(style)
    grams = {n: gram_matrix(mine[n]) for n in names}
    assert style_loss(mine, grams).item() == 0.0
    assert content_loss(mine, mine).item() == 0.0
    assert content_loss(mine["6"], mine["6"]).item() == 0.0  # single tensors work too
    assert style_loss(theirs, grams).item() > 0
    assert content_loss(theirs, mine).item() > 0
    weighted = style_loss(theirs, grams, {"1": 2.0, "3": 0.0, "6": 0.0})  # weights: sum over layers
    assert weighted.item() == pytest.approx(2.0 * style_loss(theirs["1"], grams["1"]).item(), rel=1e-5)
    assert style_distance(model, content[0], content[0], names) == 0.0


def test_layer_features_capture_several_layers_in_one_pass_that_stops_early():
    model = tiny_convnet()
    calls = []
    model[-1].register_forward_hook(lambda *args: calls.append("head"))
    out = LayerFeatures(model, ["3", "1"])(torch.rand(1, 3, 24, 20))  # not the model's size: the head never runs
    assert set(out) == {"1", "3"} and out["1"].shape == (1, 8, 24, 20) and not calls


def test_block_names_and_default_layers_follow_gatys():
    layers = model_layers(tiny_convnet(), (3, 16, 16))
    blocks = block_names(layers)
    assert blocks["relu1_1"].name == "1" and blocks["relu1_2"].name == "3" and blocks["relu2_1"].name == "6"
    assert blocks["conv1_2"].name == "3"  # a convolution is read after its activation, as in Gatys et al.
    chosen = choose_layers(layers)
    assert [layer.name for layer in chosen.style] == ["1", "6"]  # the first activation of each block
    assert [layer.name for layer in chosen.content] == ["6"]  # fewer than four blocks: the last block
    named = choose_layers(layers, ["RELU1_2"], ["conv1", "relu2_1"])  # aliases and block names, any case
    assert [layer.name for layer in named.content] == ["3"] and [layer.name for layer in named.style] == ["0", "6"]
    with pytest.raises(UnknownNameError) as error:
        choose_layers(layers, ["relu9_1"])
    assert "relu9_1" in one_line(error.value) and "relu1_1" in str(error.value)
    with pytest.raises(InvalidArgumentError) as error:
        choose_layers(layers, None, ["fc1"])  # no spatial map
    assert "fc1" in one_line(error.value)


# --- the optimisation --------------------------------------------------------------------------------

def test_a_short_transfer_lowers_the_loss_and_moves_the_gram_matrices_to_the_style(image_files):
    model = tiny_convnet()
    content = read_image(image_files[0], channels=3).image[0]
    style = read_image(image_files[1], channels=3, size=(16, 16)).image[0]
    layers = choose_layers(model_layers(model, (3, 16, 16)))
    result = transfer_style(model, content, style, steps=15, style_weight=10.0, seed=0, input_shape=(3, 16, 16))
    trace = result.trace
    assert result.image.shape == (1, 3, 16, 16) and 0 <= result.image.min() and result.image.max() <= 1
    assert all(len(values) == 16 for values in trace.values())
    assert trace["content"][0] == 0.0  # started from the content image
    assert trace["total"][-1] < 0.5 * trace["total"][0]
    assert trace["style"][-1] < trace["style"][0]
    before = style_distance(model, content, style, layers.style)
    after = style_distance(model, result.image[0], style, layers.style)
    assert after < 0.5 * before  # the image's Gram matrices moved towards the style's
    assert after == pytest.approx(trace["style"][-1], rel=1e-4)  # the trace's style loss is that distance
    noise = [transfer_style(model, content, style, steps=5, optimizer="adam", init="noise", seed=3,
                            input_shape=(3, 16, 16)) for _ in range(2)]
    assert torch.equal(noise[0].image, noise[1].image)  # deterministic for a seed
    assert noise[0].trace["total"][-1] < noise[0].trace["total"][0]


@pytest.mark.parametrize("settings, fragment", [({"steps": 0}, "steps"), ({"style_weight": -1.0}, "style_weight"),
                                                ({"optimizer": "sgd"}, "optimizer"), ({"init": "style"}, "init"),
                                                ({"content_weight": 0.0, "style_weight": 0.0}, "both 0")])
def test_impossible_settings_are_one_line_errors(settings, fragment):
    image = torch.rand(3, 16, 16)
    with pytest.raises(InvalidArgumentError) as error:
        transfer_style(tiny_convnet(), image, image, **settings)
    assert fragment in one_line(error.value)


# --- the user's files --------------------------------------------------------------------------------

def test_missing_and_undecodable_files_are_one_line_errors(tmp_path, image_files):
    with pytest.raises(DataNotFoundError) as error:
        read_image(tmp_path / "nowhere.png")
    assert "nowhere.png" in one_line(error.value)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataNotFoundError) as error:
        read_image(broken)
    assert "broken.png" in one_line(error.value)
    from trustkit.studies.style import StyleConfig, style_study

    with pytest.raises(DataNotFoundError):  # the study refuses before any model is trained or loaded
        style_study(StyleConfig(content=(str(image_files[0]),), style=(str(tmp_path / "nowhere.png"),)))
    for config, fragment in [({"steps": 0}, "steps"), ({"style_weights": ()}, "style weight"),
                             ({"model": "vgg-nineteen"}, "vgg-nineteen"), ({"content": ()}, "--content")]:
        with pytest.raises(TrustkitError) as error:
            style_study(StyleConfig(**{"content": (str(image_files[0]),), "style": (str(image_files[1]),),
                                       **config}))
        assert fragment in one_line(error.value)


def test_colours_are_converted_for_the_model_and_said_so(tmp_path, image_files):
    grey = read_image(image_files[0], channels=1)
    assert grey.image.shape == (1, 1, 16, 16) and "grey" in grey.note
    Image.fromarray(pictures(16)[0][:, :, 0]).save(tmp_path / "grey.png")
    rgb = read_image(tmp_path / "grey.png", channels=3)
    assert rgb.image.shape == (1, 3, 16, 16) and torch.equal(rgb.image[:, 0], rgb.image[:, 2]) and "repeated" in rgb.note
    Image.fromarray(pictures(40)[1]).crop((0, 0, 40, 20)).save(tmp_path / "wide.png")
    assert read_image(tmp_path / "wide.png", size=20).image.shape == (1, 3, 10, 20)  # longer side, aspect kept
    assert read_image(tmp_path / "wide.png", size=(16, 12)).image.shape == (1, 3, 16, 12)  # cover + centre crop
    assert read_image(image_files[0]).note == ""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, to be turned 90° (how phones save portrait photos)
    Image.fromarray(pictures(40)[1]).crop((0, 0, 40, 20)).save(tmp_path / "phone.jpg", exif=exif)
    assert read_image(tmp_path / "phone.jpg").image.shape == (1, 3, 40, 20)  # upright: 20 wide, 40 high


def test_a_library_model_without_weights_is_random_and_the_report_says_so(tmp_path, image_files):
    from trustkit.engine import run
    from trustkit.studies.style import StyleConfig, style_study

    config = StyleConfig(content=(str(image_files[0]),), style=(str(image_files[1]),),
                         model="torchvision:squeezenet1_0", style_weights=(10.0,), steps=2, size=32, device="cpu")
    result = run(style_study(config), out=tmp_path / "reports", device="cpu", use_cache=False)
    group = next(iter(result.output.groups.values()))
    assert group["random_weights"] is True and result.run_info["random_weights"] is True
    assert "random weights" in result.report.read_text(encoding="utf-8")
    assert result.results.loc[0, "height"] == 32


# --- the command -------------------------------------------------------------------------------------

def test_the_command_writes_report_and_tables_and_reuses_its_cells(tmp_path, image_files, monkeypatch):
    from click.testing import CliRunner

    from trustkit.cli.explain_style import style

    monkeypatch.setenv("TRUSTKIT_HOME", str(tmp_path / "home"))
    args = ["--content", str(image_files[0]), "--style", str(image_files[1]), "--style-weight", "1",
            "--style-weight", "100", "--steps", "4", "--size", "16", "--device", "cpu", "-o", str(tmp_path / "out")]
    first = CliRunner().invoke(style, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "content.png × style.png, style weight 100" in first.output and "report: " in first.output
    run_dir = Path(first.output.split("report: ")[1].strip()).parent
    for name in ("report.html", "results.csv", "losses.csv", "run.json"):
        assert (run_dir / name).is_file()
    import pandas as pd

    results = pd.read_csv(run_dir / "results.csv")
    assert list(results["style_weight"]) == [1.0, 100.0] and (results["steps"] == 4).all()
    assert (results["style_loss"] < results["start_style_loss"]).all()
    assert len(pd.read_csv(run_dir / "losses.csv")) == 2 * 5
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    from tests.helpers import HtmlCollector

    collector = HtmlCollector()
    collector.feed(html)
    assert collector.sources and all(s.startswith(("data:", "#")) for s in collector.sources)  # self-contained
    assert "relu1_1" in html and "small model" in html and "grey" in html  # layers and notes (digits cnn)
    again = CliRunner().invoke(style, args, catch_exceptions=False)
    assert again.exit_code == 0
    info = json.loads((Path(again.output.split("report: ")[1].strip()).parent / "run.json").read_text())
    assert info["cells"]["from_cache"] == 2  # the same cells come from the cache
    missing = CliRunner().invoke(style, [*args[:2], "--style", str(tmp_path / "nowhere.png")])
    assert isinstance(missing.exception, DataNotFoundError) and "nowhere.png" in one_line(missing.exception)


def test_mounted_command_errors_are_one_line_with_exit_code_2(tmp_path, image_files, capsys):
    from trustkit.cli.explain import explain

    if "style" not in explain.commands:
        pytest.skip("trustkit explain style is not mounted yet (trustkit/cli/explain.py mounts it)")
    from tests.helpers import run_cli

    code, _, err = run_cli(capsys, "explain", "style", "--content", str(image_files[0]), "--style",
                           str(tmp_path / "nowhere.png"))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_help_does_not_import_torch_and_defaults_agree_with_the_library():
    script = ("import sys, contextlib, io\nfrom trustkit.cli.explain_style import style\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n"
              "    try:\n        style(['--help'])\n    except SystemExit:\n        pass\n"
              "assert not [m for m in ('torch', 'numpy', 'pandas') if m in sys.modules]\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    from trustkit.cli import explain_style as cli
    from trustkit.explain import style as library
    from trustkit.studies.style import DEFAULT_STYLE_WEIGHTS

    assert (cli.STEPS, cli.SIZE, cli.CONTENT_WEIGHT, cli.TV_WEIGHT) == (library.STEPS, library.SIZE,
                                                                        library.CONTENT_WEIGHT, library.TV_WEIGHT)
    assert cli.STYLE_WEIGHTS == DEFAULT_STYLE_WEIGHTS and library.STYLE_WEIGHT in DEFAULT_STYLE_WEIGHTS
