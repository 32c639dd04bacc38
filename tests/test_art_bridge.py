"""Parity with the Adversarial Robustness Toolbox and the --engine art / art:ClassName paths."""
import pandas as pd
import pytest
import torch

from trustkit.attacks import FGSM, PGD
from trustkit.attacks.art_bridge import ArtAttack, art_equivalent, is_black_box
from trustkit.cli import run
from trustkit.errors import InvalidArgumentError, UnknownNameError

import art  # noqa: E402,F401 - a required dependency: a broken install must fail these tests, not skip them


def robust(model, x_adv, y):
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.2])
def test_fgsm_parity_within_half_a_point(digits_cnn, digits_test, eps):
    x, y = digits_test
    ours = robust(digits_cnn, FGSM(eps)(digits_cnn, x, y), y)
    theirs = robust(digits_cnn, art_equivalent("fgsm", FGSM(eps))(digits_cnn, x, y), y)
    assert abs(ours - theirs) <= 0.005, (ours, theirs)


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.2])
def test_pgd_parity_within_two_points(digits_cnn, digits_test, eps):
    x, y = digits_test
    native = PGD(eps, steps=10)
    torch.manual_seed(0)
    ours = robust(digits_cnn, native(digits_cnn, x, y), y)
    torch.manual_seed(0)
    theirs = robust(digits_cnn, art_equivalent("pgd", native)(digits_cnn, x, y), y)
    assert abs(ours - theirs) <= 0.02, (ours, theirs)


def test_art_class_parameters_pass_through_and_are_checked():
    attack = ArtAttack(0.2, norm="linf", class_name="HopSkipJump", max_iter=3, max_eval=50)
    assert attack.kwargs["max_iter"] == 3 and attack.access == "black-box" and "eps" not in attack.kwargs
    assert not is_black_box(ArtAttack(0.1, class_name="FastGradientMethod").cls)
    with pytest.raises(InvalidArgumentError, match="takes no parameter nonsense"):
        ArtAttack(0.1, class_name="FastGradientMethod", nonsense=1)
    with pytest.raises(UnknownNameError, match="did you mean 'HopSkipJump'"):
        ArtAttack(0.1, class_name="HopSkipJmp")
    with pytest.raises(InvalidArgumentError, match="no ART equivalent"):
        art_equivalent("apgd-t", PGD(0.1))


def test_engine_art_and_art_classes_land_in_the_same_rows(tmp_path, capsys, digits_cnn):
    code = run(["-q", "bench", "fgsm,pgd", "--engine", "art", "--n", "40", "--eps", "0.1", "--steps", "5",
                "--out", str(tmp_path / "a"), "--no-probes"])
    assert code == 0, capsys.readouterr().err
    code = run(["-q", "bench", "--attack", "fgsm", "--attack", "art:HopSkipJump", "-p", "max_iter=2", "-p",
                "max_eval=30", "-p", "init_eval=5", "--n", "20", "--eps", "0.3", "--out", str(tmp_path / "b")])
    assert code == 0, capsys.readouterr().err
    art_rows = pd.read_csv(next((tmp_path / "a").iterdir()) / "results.csv")
    assert set(art_rows["engine"]) == {"art"} and set(art_rows["attack"]) == {"fgsm", "pgd"}
    mixed = pd.read_csv(next((tmp_path / "b").iterdir()) / "results.csv")
    assert list(mixed["attack"]) == ["fgsm", "art:HopSkipJump"]
    assert list(mixed["access"]) == ["white-box", "black-box"]
    assert mixed["robust_accuracy"].between(0, 1).all()
