"""Feature inversion: metrics against analytic values and a direct reference, layer hooks, the three attacks,
re-identification and split-layer mitigations (digits / random tensors, seconds each)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trustkit.errors import InvalidArgumentError, UnknownNameError
from trustkit.privacy.inverse_net import InverseNetworkAttack, model_fingerprint
from trustkit.privacy.inversion import (GenerativePriorInversion, InversionTarget, WhiteBoxInversion,
                                        feature_distance, total_variation)
from trustkit.models.features import FeatureExtractor, describe_layers, resolve_layers, transformed_layer
from trustkit.privacy.metrics import (SSIM_K1, SSIM_K2, chance_significant, gaussian_window, psnr, ssim,
                                      ssim_window_for, topk_hits)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- metrics --------------------------------------------------------------------------------------------------
def test_psnr_matches_known_mse():
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8
    shifted = x + 0.1  # MSE 0.01 -> 20 dB exactly
    assert torch.allclose(psnr(shifted, x), torch.full((3,), 20.0), atol=1e-4)
    assert torch.allclose(psnr(x + 0.01, x), torch.full((3,), 40.0), atol=1e-3)
    assert psnr(x, x).tolist() == [100.0] * 3  # capped, not inf


def test_ssim_of_identical_images_is_one_and_falls_with_noise():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(4), atol=1e-6)
    small = ssim((x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1), x)
    large = ssim((x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1), x)
    assert (small < 1).all() and (large < small).all()


def test_ssim_of_constant_images_is_the_luminance_term():
    # constant images have zero variance and covariance: SSIM = (2ab + C1) / (a² + b² + C1)
    a, b = 0.3, 0.7
    x, y = torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b)
    c1 = SSIM_K1 ** 2
    assert ssim(x, y).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-6)


def _reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 written out window by window (independent of the convolution in trustkit)."""
    size, sigma = ssim_window_for(*x.shape)
    w = gaussian_window(size, sigma).numpy()
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i:i + size, j:j + size], y[i:i + size, j:j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


@pytest.mark.parametrize("side", [8, 20])
def test_ssim_matches_a_window_by_window_reference(side):
    g = torch.Generator().manual_seed(side)
    x = torch.rand(1, 1, side, side, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert ssim(y, x).item() == pytest.approx(_reference_ssim(y[0, 0].numpy(), x[0, 0].numpy()), abs=1e-5)


def test_ssim_matches_scikit_image():
    from skimage import metrics
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 1, 32, 32, generator=g, dtype=torch.float64)
    y = (x + 0.15 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    expected = metrics.structural_similarity(y[0, 0].numpy(), x[0, 0].numpy(), data_range=1.0, gaussian_weights=True,
                                             sigma=1.5, use_sample_covariance=False)
    assert ssim(y, x).item() == pytest.approx(expected, abs=1e-4)


def test_topk_hits_and_chance_test():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])
    assert topk_hits(logits, labels, 1).tolist() == [1.0, 0.0, 0.0]
    assert topk_hits(logits, labels, 2).tolist() == [1.0, 1.0, 0.0]
    assert topk_hits(logits, labels, 9).tolist() == [1.0, 1.0, 1.0]  # k beyond the classes: everything hits
    # 40 victims at chance 2.5%: sd = 2.47%, so 3 sd above chance is 9.9%
    assert not chance_significant(0.075, 40, 0.025) and chance_significant(0.125, 40, 0.025)


def test_total_variation_analytic_and_feature_distance():
    assert total_variation(torch.full((2, 1, 8, 8), 0.4)).tolist() == [0.0, 0.0]
    ramp = (torch.arange(8.0) * 0.1).expand(1, 1, 8, 8)  # horizontal steps of 0.1, no vertical change
    assert total_variation(ramp).item() == pytest.approx(7 * 7 * 0.01 / 64, rel=1e-5)
    assert total_variation(ramp, beta=1.0).item() == pytest.approx(7 * 7 * 0.1 / 64, rel=1e-3)
    phi = torch.randn(3, 5)
    assert torch.allclose(feature_distance(torch.zeros_like(phi), phi), torch.ones(3))
    assert torch.allclose(feature_distance(phi, phi), torch.zeros(3))


# --- layers -----------------------------------------------------------------------------------------------------
def test_layers_are_named_in_forward_order_and_extracted_exactly(digits_cnn, digits_test):
    layers = describe_layers(digits_cnn, (1, 8, 8))
    assert [layer.alias for layer in layers] == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten1",
                                                 "fc1", "relu3", "fc2"]
    assert [layer.alias for layer in resolve_layers(layers, None)] == ["relu1", "pool1", "relu2", "pool2", "relu3"]
    assert [layer.name for layer in resolve_layers(layers, ["RELU2", "net.1"])] == ["net.1", "net.4"]
    with pytest.raises(UnknownNameError, match="did you mean 'relu2'"):
        resolve_layers(layers, ["relu22"])
    x = digits_test[0][:5]
    expected = digits_cnn.net[:5](digits_cnn.normalize(x))
    assert torch.allclose(FeatureExtractor(digits_cnn, layers[4])(x), expected)
    with transformed_layer(digits_cnn, layers[8], torch.zeros_like):  # zeroed relu3: logits = the last bias
        logits = digits_cnn(x)
    assert torch.allclose(logits, digits_cnn.net[9].bias.expand(5, -1))


# --- attacks ----------------------------------------------------------------------------------------------------
def _target(model, layer_alias, aux=None, shape=(1, 8, 8)):
    layer = resolve_layers(describe_layers(model, shape), [layer_alias])[0]
    return InversionTarget(model, "cnn", "digits", layer, shape, aux, model_fingerprint(model))


def test_white_box_recovers_early_layers_and_deeper_layers_leak_less(digits_cnn, digits_test):
    x = digits_test[0][:12]
    attack = WhiteBoxInversion(steps=150, restarts=1, tv_weight=0.0)
    scores = {}
    for alias in ("conv1", "relu3"):
        target = _target(digits_cnn, alias)
        features = target.extractor()(x).detach()
        reconstruction = attack.reconstruct(target, features, seed=0)
        assert reconstruction.shape == x.shape and 0 <= reconstruction.min() and reconstruction.max() <= 1
        scores[alias] = psnr(reconstruction, x).mean().item()
    assert scores["conv1"] > 30  # conv1 of 32 channels is injective: the optimum is the image itself
    assert scores["relu3"] < scores["conv1"] - 10


def test_white_box_on_an_identity_layer_is_exact():
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Flatten(), torch.nn.Linear(64, 3))
    layer = describe_layers(model, (1, 8, 8))[0]
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    target = InversionTarget(model, "id", "digits", layer, (1, 8, 8))
    reconstruction = WhiteBoxInversion(steps=200, restarts=1, tv_weight=0.0, lr=0.05).reconstruct(target, x)
    assert psnr(reconstruction, x).min() > 40


def test_tv_weight_smooths_the_reconstruction(digits_cnn, digits_test):
    x = digits_test[0][:8]
    target = _target(digits_cnn, "relu3")
    features = target.extractor()(x).detach()
    rough = WhiteBoxInversion(steps=100, restarts=1, tv_weight=0.0).reconstruct(target, features)
    smooth = WhiteBoxInversion(steps=100, restarts=1, tv_weight=1.0).reconstruct(target, features)
    assert total_variation(smooth).mean() < 0.5 * total_variation(rough).mean()
    with pytest.raises(InvalidArgumentError):
        WhiteBoxInversion(tv_weight=-1)


def test_restarts_keep_the_best_objective(digits_cnn, digits_test):
    x = digits_test[0][:6]
    target = _target(digits_cnn, "pool2")
    features = target.extractor()(x).detach()
    one = WhiteBoxInversion(steps=40, restarts=1).reconstruct(target, features, seed=0)
    three = WhiteBoxInversion(steps=40, restarts=3).reconstruct(target, features, seed=0)
    objective = WhiteBoxInversion(steps=1)._objective  # same λ, β as the attacks above

    def value(images):
        with torch.no_grad():
            return objective(target.extractor(), images, features)

    # restart 0 of the 3-restart run starts from the same noise as the 1-restart run: the best of 3 is no worse
    assert (value(three) <= value(one) + 1e-6).all()


def test_inverse_network_beats_the_mean_image_and_round_trips_through_the_store(digits_cnn, digits_test):
    from trustkit import load_dataset

    aux = load_dataset("digits", "train").tensors()[0]
    x = digits_test[0][:64]
    target = _target(digits_cnn, "relu2", aux)
    features = target.extractor()(x).detach()
    attack = InverseNetworkAttack(steps=300, batch_size=64)
    notes = attack.prepare(target, seed=0)
    assert notes["cached"] is False and notes["final_train_mse"] < 0.05
    reconstruction = attack.reconstruct(target, features, seed=0)
    baseline = psnr(aux.mean(0, keepdim=True).expand_as(x), x).mean()
    assert psnr(reconstruction, x).mean() > baseline + 3
    again = InverseNetworkAttack(steps=300, batch_size=64)  # a new attacker loads the stored decoder
    assert again.prepare(target, seed=0)["cached"] is True
    assert torch.allclose(again.reconstruct(target, features, seed=0), reconstruction, atol=1e-6)
    retrained = InverseNetworkAttack(steps=301, batch_size=64)  # other settings: the stale entry is not reused
    assert retrained.prepare(target, seed=0)["cached"] is False


def test_generative_prior_reconstruction_lies_in_the_generators_range(digits_cnn, digits_test, tmp_path):
    from trustkit.generative.run import train_generator
    from trustkit.generative.store import load_generator

    path = tmp_path / "vae-digits.safetensors"
    train_generator("vae", "digits", epochs=3, device="cpu", checkpoint=path)
    x = digits_test[0][:8]
    target = _target(digits_cnn, "pool1")
    features = target.extractor()(x).detach()
    attack = GenerativePriorInversion(generator=str(path), steps=60, restarts=2)
    reconstruction = attack.reconstruct(target, features, seed=0)
    decoder = load_generator(path).model
    with torch.no_grad():
        regenerated = decoder.decode(decoder.latent_from_noise(attack.last_noise)).clamp(0, 1)
        start = decoder.decode(decoder.latent_from_noise(torch.randn(8, decoder.latent_dim,
                                                                     generator=torch.Generator().manual_seed(5))))
        before = feature_distance(target.extractor()(start), features)
        after = feature_distance(target.extractor()(reconstruction), features)
    assert torch.allclose(regenerated, reconstruction, atol=1e-5)  # exactly G(z*): a picture G can make
    # the latent search moved G(z) towards the victims' features (a 3-epoch VAE is blurry: it cannot reach them)
    assert (after < before).all() and after.mean() < 0.9 * before.mean()


# --- re-identification and mitigations -------------------------------------------------------------------------
def test_reid_classifier_recognises_held_out_digits_and_not_noise():
    from trustkit import load_dataset
    from trustkit.privacy.reid import load_reid

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    reid = load_reid(train, test, steps=250, seed=0, cache=False)
    assert reid.chance == pytest.approx(0.1) and reid.what == "class"
    assert reid.test_accuracy > 0.85
    x, y = test.tensors()
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    top1, top5 = reid.hits(noise, y)
    assert top1.mean() < 0.3 and top5.mean() >= top1.mean()


def test_mitigations_parse_and_trade_utility(digits_cnn, digits_test):
    from trustkit import load_dataset
    from trustkit.privacy.mitigations import feature_stats, make_transform, parse_mitigation, utility

    for bad in ("blur:1", "noise:-1", "dropout:1", "quant:2.5", "noise:x"):
        with pytest.raises(InvalidArgumentError):
            parse_mitigation(bad)
    aux = load_dataset("digits", "train").tensors()[0]
    layer = resolve_layers(describe_layers(digits_cnn, (1, 8, 8)), ["relu2"])[0]
    stats = feature_stats(digits_cnn, layer, aux, torch.device("cpu"))
    x, y = digits_test
    device = torch.device("cpu")
    clean = utility(digits_cnn, layer, None, x, y, device)
    assert utility(digits_cnn, layer, make_transform(parse_mitigation("noise:0"), stats), x, y, device) == clean
    accuracies = [utility(digits_cnn, layer, make_transform(parse_mitigation(f"noise:{s}"), stats), x, y, device)
                  for s in (0.5, 4, 16)]
    assert accuracies[0] > accuracies[2] and accuracies[2] < 0.6
    fine = utility(digits_cnn, layer, make_transform(parse_mitigation("quant:8"), stats), x, y, device)
    assert abs(fine - clean) < 0.02
    features = torch.rand(20000) + 0.5
    dropped = make_transform(parse_mitigation("dropout:0.5"), stats, seed=1)(features)
    assert (dropped == 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert dropped.mean().item() == pytest.approx(features.mean().item(), rel=0.03)  # inverted dropout keeps E[x]
    levels = make_transform(parse_mitigation("quant:2"), stats)(torch.linspace(stats.low, stats.high, 100))
    assert len(levels.unique()) == 4
    assert math.isclose(levels.min().item(), stats.low, rel_tol=1e-5, abs_tol=1e-6)
