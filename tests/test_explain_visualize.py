"""Class-score maximisation and feature visualisation (trustkit.explain.visualize, the maximize study, its report
and ``trustkit explain maximize``) on the digits cnn and a tiny ACGAN, fixed seeds."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from trustkit.errors import InvalidArgumentError, TrustkitError, UnknownNameError
from trustkit.explain.discriminator import DiscriminatorView, discriminator_heads
from trustkit.explain.priors import l2_penalty, total_variation
from trustkit.explain.visualize import maximize_class, maximize_feature, real_statistics
from trustkit.models.features import FeatureExtractor, describe_layers

SHAPE = (1, 8, 8)
NO_PRIORS = dict(l2=0.0, tv=0.0, blur_every=0, jitter=0)


@pytest.fixture(scope="module", autouse=True)
def _threads(one_torch_thread):  # noqa: ANN001, ANN202 - tiny models: one intra-op thread (see conftest)
    yield


@pytest.fixture(scope="module")
def tiny_acgan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ACGAN trained for one epoch at width 16 (~1 s): a checkpoint file, as ``gan:FILE`` reads it."""
    from trustkit.generative.run import train_generator

    path = tmp_path_factory.mktemp("gan") / "acgan-tiny.safetensors"
    train_generator("acgan", "digits", epochs=1, device="cpu", checkpoint=path,
                    options={"width": 16, "d_width": 16, "latent_dim": 16})
    return path


def test_class_maximisation_raises_the_class_logit(digits_cnn: torch.nn.Module) -> None:
    classes = [0, 3, 7]
    result = maximize_class(digits_cnn, classes, SHAPE, steps=120, seed=0)
    assert result.images.shape == (3, *SHAPE) and result.trace.shape == (3, 121)
    assert 0 <= float(result.images.min()) and float(result.images.max()) <= 1
    with torch.no_grad():
        logits = digits_cnn(result.images)
    # the trace ends at the final image's logit, and that logit rose substantially
    assert torch.allclose(result.end, logits[torch.arange(3), classes], atol=1e-4)
    assert (result.end - result.start > 8).all(), (result.start, result.end)
    assert logits.argmax(1).tolist() == classes
    assert (torch.softmax(logits, 1)[torch.arange(3), classes] > 0.9).all()
    # the same seed gives the same images
    again = maximize_class(digits_cnn, classes, SHAPE, steps=120, seed=0)
    assert torch.equal(again.images, result.images)


def test_tv_and_l2_priors_do_what_they_say(digits_cnn: torch.nn.Module) -> None:
    plain = maximize_class(digits_cnn, [1, 5], SHAPE, steps=80, **NO_PRIORS)
    smooth = maximize_class(digits_cnn, [1, 5], SHAPE, steps=80, **{**NO_PRIORS, "tv": 20.0})
    assert (total_variation(smooth.images) < 0.6 * total_variation(plain.images)).all()
    centre = 0.3
    decayed = maximize_class(digits_cnn, [1, 5], SHAPE, steps=80, **{**NO_PRIORS, "l2": 100.0, "l2_center": centre})
    assert (l2_penalty(decayed.images, centre) < 0.5 * l2_penalty(plain.images, centre)).all()
    # blur smooths too (every 2 steps, σ = 1 pixel), and the objective still rises under all priors
    blurred = maximize_class(digits_cnn, [1, 5], SHAPE, steps=80, **{**NO_PRIORS, "blur_every": 2, "blur_sigma": 1.0})
    assert (total_variation(blurred.images) < total_variation(plain.images)).all()
    assert (decayed.end > decayed.start).all() and (smooth.end > smooth.start).all()
    # a TV of a constant image is zero, of a checkerboard large
    board = (torch.arange(64).reshape(1, 1, 8, 8) + torch.arange(8).reshape(1, 1, 8, 1)) % 2
    assert float(total_variation(torch.full((1, *SHAPE), 0.4))) == 0 and float(total_variation(board.float())) > 1


def test_feature_maximisation_raises_the_chosen_channel(digits_cnn: torch.nn.Module,
                                                        digits_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = digits_test
    _, spread = real_statistics(digits_cnn, x[:200], layer="relu2")
    channels = [0, 5, 9]
    result = maximize_feature(digits_cnn, "relu2", channels, SHAPE, steps=80, scale=spread[channels])
    layer = next(layer for layer in describe_layers(digits_cnn, SHAPE) if layer.alias == "relu2")
    with torch.no_grad():
        features = FeatureExtractor(digits_cnn, layer)(result.images)
    measured = features[torch.arange(3), channels].flatten(1).mean(1)
    assert torch.allclose(measured, result.end, atol=1e-4)  # the trace is the channel's mean activation
    assert (result.end > result.start + 2 * spread[channels]).all(), (result.start, result.end)
    # the chosen channel rose more than the channels not chosen did on the same image
    others = features.flatten(2).mean(2)
    assert all(float(others[i, c]) > float(others[i].median()) for i, c in enumerate(channels))


def test_gan_discriminator_targets(tiny_acgan: Path) -> None:
    from trustkit.data import get_spec
    from trustkit.generative import build_generative
    from trustkit.generative.store import load_generator

    acgan = load_generator(tiny_acgan).model
    assert discriminator_heads(acgan) == ["class", "source"]
    view = DiscriminatorView(acgan)  # the auxiliary class head, on [0, 1] images
    result = maximize_class(view, [2, 4], SHAPE, steps=60)
    assert (result.end > result.start + 0.3).all()
    with torch.no_grad():
        assert torch.allclose(view(result.images), acgan.classify(result.images * 2 - 1))
    source = maximize_class(DiscriminatorView(acgan, "source"), 0, SHAPE, steps=40)
    assert float(source.end[0]) > float(source.start[0])
    spec = get_spec("digits")
    for name, heads in (("dcgan", ["source"]), ("wgan-gp", ["source"]), ("cgan", ["class"])):
        torch.manual_seed(0)
        gan = build_generative(name, spec, width=8, d_width=8, latent_dim=8)
        assert discriminator_heads(gan) == heads
        view = DiscriminatorView(gan)
        assert view(torch.rand(2, *SHAPE)).shape == (2, view.num_outputs)
        done = maximize_class(view, 0, SHAPE, steps=15)
        assert float(done.end[0]) > float(done.start[0])
    with pytest.raises(InvalidArgumentError, match="no discriminator"):
        DiscriminatorView(build_generative("vae", spec))
    with pytest.raises(InvalidArgumentError, match="no 'class' head"):
        DiscriminatorView(build_generative("dcgan", spec, width=8, d_width=8), "class")


def test_bad_input_is_one_line(digits_cnn: torch.nn.Module) -> None:
    from trustkit.studies.visualize import MaximizeConfig, maximize_study

    with pytest.raises(UnknownNameError, match="unknown layer 'relu9'.*this model has"):
        maximize_feature(digits_cnn, "relu9", 0, SHAPE, steps=5)
    with pytest.raises(InvalidArgumentError, match="out of range.*0..9"):
        maximize_class(digits_cnn, 10, SHAPE, steps=5)
    with pytest.raises(InvalidArgumentError, match="out of range.*0..31"):
        maximize_feature(digits_cnn, "relu1", 32, SHAPE, steps=5)
    with pytest.raises(InvalidArgumentError, match="steps must be at least 1"):
        maximize_class(digits_cnn, 0, SHAPE, steps=0)
    for options in ({"lr": 0.0}, {"tv": -1.0}, {"l2": float("nan")}, {"blur_every": 2, "blur_sigma": 0.0},
                    {"jitter": -1}):
        with pytest.raises(InvalidArgumentError):
            maximize_class(digits_cnn, 0, SHAPE, steps=5, **options)
    bad = [({"models": ["cnnn"]}, UnknownNameError, "did you mean"), ({"steps": 0}, InvalidArgumentError, "steps"),
           ({"classes": [10]}, InvalidArgumentError, "class index 10"), ({"targets": ["pixel"]}, InvalidArgumentError,
                                                                        "unknown target"),
           ({"targets": ["feature"]}, InvalidArgumentError, "need a layer"),
           ({"models": ["gan:vae"]}, InvalidArgumentError, "no discriminator"),
           ({"models": ["gan:dcgan:class"]}, InvalidArgumentError, "no 'class' head"),
           ({"models": ["cnn", "standard=cnn"]}, InvalidArgumentError, "given twice"),
           ({"models": ["cnn-mnist-pgd-eps0.3"]}, InvalidArgumentError, "trained on mnist"),
           ({"l2_center": "grey"}, InvalidArgumentError, "centre"), ({"models": []}, InvalidArgumentError, "no model")]
    for options, error, message in bad:
        with pytest.raises(error, match=message):
            maximize_study(MaximizeConfig(**options))
    for options, _, _ in bad:
        try:
            maximize_study(MaximizeConfig(**options))
        except TrustkitError as exc:
            assert "\n" not in str(exc) and ";" in str(exc), str(exc)  # problem; fix


def test_model_specs_and_the_lab() -> None:
    from trustkit.studies.visualize_models import lab_models, parse_model
    from trustkit.train import adversarial_entry

    assert adversarial_entry("cnn-digits-pgd-eps0.2", "digits") == ("cnn", "pgd", 0.2)
    assert adversarial_entry("cnn-mnist-fgsm-rs-eps0.3", "mnist") == ("cnn", "fgsm-rs", 0.3)
    assert adversarial_entry("cnn-small-cifar10-trades-eps8-255", "cifar10") == ("cnn-small", "trades", 8 / 255)
    assert adversarial_entry("cnn-digits", "digits") is None and adversarial_entry("cnn-digits-pgd-eps0.2", "mnist") is None
    assert lab_models("digits") == ["standard=cnn", "adversarially trained=cnn-digits-pgd-eps0.2",
                                    "GAN discriminator=gan:acgan"]
    choice = parse_model("robust = gan:gen-acgan-digits:source")
    assert (choice.role, choice.gan, choice.head, choice.is_gan) == ("robust", "gen-acgan-digits", "source", True)
    assert parse_model("cnn").role is None and not parse_model("cnn").is_gan


def test_cli_writes_report_and_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trustkit_home: Path,
                                       digits_cnn: torch.nn.Module, tiny_acgan: Path) -> None:
    import pandas as pd
    from click.testing import CliRunner

    from trustkit.cli.explain_visualize import maximize

    home = tmp_path / "home"
    (home / "checkpoints").mkdir(parents=True)
    # the session store's trained cnn, so this test's own store need not train it again
    shutil.copy(trustkit_home / "checkpoints" / "cnn-digits.safetensors", home / "checkpoints")
    monkeypatch.setenv("TRUSTKIT_HOME", str(home))
    out = tmp_path / "reports"
    args = ["--model", f"cnn,GAN D=gan:{tiny_acgan}", "--class-ids", "0,1", "--objective", "both", "--feature",
            "relu1", "--channels", "0-1", "--steps", "40", "--device", "cpu", "-o", str(out)]
    done = CliRunner().invoke(maximize, args, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    folder = next(out.iterdir())
    assert f"report: {folder / 'report.html'}" in done.output
    results = pd.read_csv(folder / "results.csv")
    assert len(results) == 8 and set(results["role"]) == {"standard", "GAN D"}
    assert set(results["target"]) == {"class", "feature"}
    classes = results[results["target"] == "class"]
    assert (classes["end"] > classes["start"]).all() and (classes["probability"] > 0).all()
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "Class-score maximisation" in html and "Feature visualisation" in html and "GAN D" in html
    assert html.count("data:image/png;base64,") >= 8 + 2  # 8 maximised images and the two step plots
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html
    info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert info["kind"] == "maximize" and info["cells"]["computed"] == 8
    again = CliRunner().invoke(maximize, args, catch_exceptions=False)  # finished cells come from the cache
    assert again.exit_code == 0, again.output
    second = max(out.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert json.loads((second / "run.json").read_text(encoding="utf-8"))["cells"]["from_cache"] == 8
    with pytest.raises(InvalidArgumentError, match="class index 12"):
        CliRunner().invoke(maximize, ["--class-ids", "12", "-o", str(out)], catch_exceptions=False)
