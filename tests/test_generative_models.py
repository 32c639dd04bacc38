"""Generative architectures: shapes and [0, 1] outputs at every supported size, the lab's parameter count,
losses that fall over a few steps, the gradient penalty's closed form, and checkpoint round trips."""
import json

import pytest
import torch
from torch import nn

from trustkit.data import get_spec, load_dataset
from trustkit.errors import CheckpointError, InvalidArgumentError, ShapeMismatchError, UnknownNameError
from trustkit.generative import GENERATIVE_MODELS, AdversarialModel, ReconstructionModel, build_generative
from trustkit.generative.base import to_signed
from trustkit.generative.nets import down_levels
from trustkit.generative.store import load_generator, resolve_generator, save_generator
from trustkit.generative.train import GenTrainConfig, fit_generative, frozen
from trustkit.generative.wgan_gp import gradient_penalty

ALL = GENERATIVE_MODELS.names()
SIZES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "cifar10": (3, 32, 32), "faces": (3, 64, 64)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_family_is_registered():
    assert set(ALL) == {"ae", "conv-ae", "vae", "conv-vae", "beta-vae", "cvae", "dcgan", "dcgan-resize", "cgan", "acgan", "wgan-gp",
                        "acgan-cifar", "wgan-gp-cifar"}
    with pytest.raises(UnknownNameError, match="did you mean 'dcgan'"):
        GENERATIVE_MODELS.get("dcgna")


@pytest.mark.parametrize("dataset", list(SIZES))
@pytest.mark.parametrize("name", ALL)
def test_samples_have_the_data_shape_and_lie_in_unit_range(name, dataset):
    if name in {"acgan-cifar", "wgan-gp-cifar"} and SIZES[dataset][1:] != (32, 32):
        pytest.skip("the CIFAR-10 GAN lab's networks take 32×32 images only (tests/test_gan_lab.py checks the refusal)")
    torch.manual_seed(0)
    model = build_generative(name, get_spec(dataset))
    images = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, *SIZES[dataset]) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert model.training  # sample() switches to eval mode and back
    z = model.sample_latent(2)
    assert z.shape == (2, model.latent_dim)


def test_down_levels_follow_the_image_sizes():
    assert [down_levels(s) for s in (8, 28, 32, 64)] == [1, 2, 3, 4]


def test_mlp_autoencoder_matches_the_lab_parameter_count():
    model = build_generative("ae", get_spec("mnist"))
    assert model.latent_dim == 3 and sum(p.numel() for p in model.parameters()) == 218_643
    assert isinstance(model.decoder[1], nn.Tanh)


def test_conv_autoencoder_code_is_64x2x2_on_digits():
    model = build_generative("conv-ae", get_spec("digits"))
    codes = model.encode(torch.rand(5, 1, 8, 8))
    assert codes.shape == (5, 64 * 2 * 2)


def test_dcgan_follows_the_guidelines():
    model = build_generative("dcgan", get_spec("mnist"))
    g_layers = list(model.generator.modules())
    d_layers = list(model.discriminator.modules())
    assert isinstance(g_layers[-1], nn.Tanh) and any(isinstance(m, nn.ReLU) for m in g_layers)
    assert not any(isinstance(m, nn.LeakyReLU) for m in g_layers)
    assert any(isinstance(m, nn.LeakyReLU) for m in d_layers) and not any(isinstance(m, nn.MaxPool2d) for m in d_layers)
    convs = [m for m in d_layers if isinstance(m, nn.Conv2d)]
    assert all(c.stride == (2, 2) for c in convs)
    # no batch norm right after D's input layer: the first module after the first conv is the activation
    trunk = model.discriminator[0].net
    assert isinstance(trunk[0], nn.Conv2d) and isinstance(trunk[1], nn.LeakyReLU)
    assert any(isinstance(m, nn.BatchNorm2d) for m in d_layers) and any(isinstance(m, nn.BatchNorm2d) for m in g_layers)


def test_lecture_mnist_generator_channels_at_width_64():
    model = build_generative("dcgan", get_spec("mnist"), width=64)
    transposed = [m for m in model.generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in transposed] == [(256, 128), (128, 64), (64, 1)]
    assert transposed[0].stride == (1, 1) and transposed[0].kernel_size == (5, 5)
    dense = model.generator[0].net[0]
    assert dense.in_features == 100 and dense.out_features == 7 * 7 * 256 and dense.bias is None


def test_wgan_gp_critic_has_layer_norm_and_no_sigmoid():
    model = build_generative("wgan-gp", get_spec("mnist"))
    critic = list(model.discriminator.modules())
    assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in critic)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Sigmoid)) for m in critic)
    assert model.critic_steps == 5 and model.default_betas == (0.0, 0.9)


def test_acgan_discriminator_has_two_heads():
    model = build_generative("acgan", get_spec("digits"))
    source, classes = model.discriminator(torch.zeros(4, 1, 8, 8))
    assert source.shape == (4,) and classes.shape == (4, 10)


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    # D(x) = w·x has gradient w everywhere: penalty = (‖w‖ − 1)², whatever the interpolates.
    w = torch.tensor([3.0, 4.0])
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    assert float(gradient_penalty(critic, real, fake)) == pytest.approx((5.0 - 1.0) ** 2)


def test_conditional_labels_are_checked():
    cgan = build_generative("cgan", get_spec("digits"))
    images = cgan.sample(4, torch.tensor([3, 3, 3, 3]))
    assert images.shape == (4, 1, 8, 8)
    with pytest.raises(InvalidArgumentError, match="0..9"):
        cgan.sample(2, torch.tensor([1, 10]))
    with pytest.raises(ShapeMismatchError, match="3 class labels for 2"):
        cgan.sample(2, torch.tensor([1, 2, 3]))
    with pytest.raises(InvalidArgumentError, match="not class-conditional"):
        build_generative("dcgan", get_spec("digits")).sample(2, torch.tensor([1, 2]))


def test_unknown_option_is_one_clear_error():
    with pytest.raises(InvalidArgumentError, match="takes no option beta"):
        build_generative("dcgan", get_spec("digits"), beta=2.0)


@pytest.fixture(scope="module")
def digits_batch():
    x, y = load_dataset("digits", "train").tensors(torch.arange(64))
    return x, y


@pytest.mark.parametrize("name", ["ae", "conv-ae", "vae", "conv-vae", "cvae"])
def test_reconstruction_losses_fall_over_a_few_steps(name, digits_batch):
    torch.manual_seed(0)
    x, y = digits_batch
    model = build_generative(name, get_spec("digits"))
    assert isinstance(model, ReconstructionModel)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(1)
    before = model.loss(x, y)[0].item()
    for _ in range(30):
        loss, _ = model.loss(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.manual_seed(1)
    after = model.loss(x, y)[0].item()
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("name", ["dcgan", "cgan", "acgan", "wgan-gp"])
def test_each_gan_player_lowers_its_own_loss(name, digits_batch):
    """With the other player fixed, a few Adam steps lower D's loss on a fixed batch, then G's."""
    torch.manual_seed(0)
    x, y = digits_batch
    model = build_generative(name, get_spec("digits"))
    assert isinstance(model, AdversarialModel)
    model.eval()  # fixed batch-norm statistics: the loss is then a fixed function of the weights
    real = to_signed(x)
    z = model.sample_latent(len(x), torch.Generator().manual_seed(2))
    fake_labels = y.roll(1) if model.conditional else None

    def d_loss():
        torch.manual_seed(3)  # the gradient penalty's interpolation weights
        return model.discriminator_loss(real, y, z, fake_labels)[0]

    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=1e-3)
    before = d_loss().item()
    for _ in range(10):
        loss = d_loss()
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
    assert d_loss().item() < before

    opt_g = torch.optim.Adam(model.generator.parameters(), lr=1e-3)
    before = model.generator_loss(z, fake_labels)[0].item()
    for _ in range(10):
        with frozen(model.discriminator):
            loss = model.generator_loss(z, fake_labels)[0]
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
    assert model.generator_loss(z, fake_labels)[0].item() < before
    assert all(p.requires_grad for p in model.discriminator.parameters())  # frozen() restores the flags


def test_fit_records_losses_grids_and_is_reproducible():
    train_set = load_dataset("digits", "train")
    config = GenTrainConfig(epochs=2, batch_size=64, max_steps=5, grid_size=20)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_generative("cgan", get_spec("digits"))
        history = fit_generative(model, train_set, config, device=torch.device("cpu"), seed=0)
        runs.append((model, history))
    (model, history), (other, _) = runs
    assert [e["epoch"] for e in history.epochs] == [1, 2]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "seconds"} <= set(history.epochs[0])
    assert len(history.grids) == 2 and history.grids[0].shape == (20, 1, 8, 8)  # 2 per class × 10 classes
    assert history.grid_labels.tolist() == [c for c in range(10) for _ in range(2)]
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_autoencoder_samples_use_fitted_code_statistics():
    train_set = load_dataset("digits", "train")
    torch.manual_seed(0)
    model = build_generative("ae", get_spec("digits"), latent_dim=4)
    fit_generative(model, train_set, GenTrainConfig(epochs=1, batch_size=64), device=torch.device("cpu"))
    codes = model.encode(train_set.tensors()[0]).detach()
    assert torch.allclose(model.code_mean, codes.mean(0), atol=1e-5)
    assert torch.allclose(model.code_std, codes.std(0), atol=1e-5)


def test_checkpoint_round_trip_gives_identical_samples(tmp_path):
    torch.manual_seed(0)
    model = build_generative("acgan", get_spec("digits"), latent_dim=16)
    path = save_generator(model, {"arch": "acgan", "dataset": "digits", "options": model.options}, tmp_path / "g")
    from trustkit.models.store import read_metadata

    assert path.suffix == ".safetensors" and read_metadata(path)["kind"] == "generative"
    loaded = load_generator(path)
    assert loaded.model.latent_dim == 16
    labels = torch.arange(6) % 10
    first = model.sample(6, labels, generator=torch.Generator().manual_seed(1))
    again = loaded.model.sample(6, labels, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    assert resolve_generator(str(path)).arch == "acgan"
    with pytest.raises(ShapeMismatchError, match="trained on digits"):
        resolve_generator(str(path), "mnist")


def test_bad_checkpoints_are_refused(tmp_path, digits_cnn, trustkit_home):
    with pytest.raises(CheckpointError, match="not a generative model"):
        load_generator(trustkit_home / "checkpoints" / "cnn-digits.safetensors")
    with pytest.raises(CheckpointError, match="no trained 'wgan-gp' for digits"):
        resolve_generator("wgan-gp", "digits")
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"garbage")
    (tmp_path / "bad.json").write_text(json.dumps({"format": "trustkit-checkpoint", "kind": "generative"}))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_generator(corrupt)
    model = build_generative("dcgan", get_spec("digits"))
    path = save_generator(model, {"arch": "dcgan", "dataset": "digits", "options": {"width": 8}}, tmp_path / "m")
    with pytest.raises(CheckpointError, match="does not match"):
        load_generator(path)


def test_resize_dcgan_replaces_the_last_transposed_conv():
    from trustkit.data import get_spec
    from trustkit.generative import build_generative

    plain = build_generative("dcgan", get_spec("faces")).generator
    resized = build_generative("dcgan-resize", get_spec("faces")).generator
    kinds = lambda net: [type(m).__name__ for m in net.modules() if len(list(m.children())) == 0]  # noqa: E731
    assert kinds(plain)[-2] == "ConvTranspose2d"
    assert kinds(resized)[-3:] == ["Upsample", "Conv2d", "Tanh"]
    assert kinds(resized).count("ConvTranspose2d") == kinds(plain).count("ConvTranspose2d") - 1
