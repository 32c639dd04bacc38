"""The CIFAR-10 GAN lab: the 196-channel discriminator (layers, sizes, parameter count, heads), its generator,
one training step of acgan-cifar and wgan-gp-cifar, the gradient penalty through the lab critic, the
discriminator alone as a zoo classifier, shapes it refuses, and ``trustkit gen train`` end to end on a synthetic
32×32 data set. Batches are tiny: one 196-channel step costs ~0.3 s per image on 2 CPU cores."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trustkit.data import get_spec, load_dataset
from trustkit.data.memory import register_tensors
from trustkit.errors import InvalidArgumentError, ShapeMismatchError
from trustkit.generative import GENERATIVE_MODELS, build_generative
from trustkit.generative.gan_lab import LabACGAN, LabGenerator, LabWGANGP
from trustkit.generative.store import load_generator
from trustkit.generative.train import GenTrainConfig, fit_generative
from trustkit.generative.wgan_gp import gradient_penalty
from trustkit.models import MODELS, build_model
from trustkit.models.disc196 import Disc196, Disc196Classifier, Disc196Critic, build
from trustkit.train.defaults import default_config

from tests.helpers import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CIFAR = (3, 32, 32)
STRIDES = [1, 2, 1, 2, 1, 1, 1, 2]
SIDES = [32, 16, 16, 8, 8, 8, 8, 4]  # output side of conv1 .. conv8 on a 32×32 image


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_output_sides(module: nn.Module, x: torch.Tensor, kinds: tuple[type, ...]) -> list[int]:
    """Spatial side of every ``kinds`` layer's output, in call order, recorded by forward hooks."""
    sides: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sides.append(out.shape[-1]))
             for m in module.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for hook in hooks:
            hook.remove()
    return sides


@pytest.fixture(scope="module")
def synthetic_cifar() -> str:
    """A registered in-memory data set of 10 random 32×32 colour images, one per class of 10."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(10, *CIFAR, generator=generator)
    labels = torch.arange(10)
    return register_tensors((images, labels), class_names=[str(i) for i in range(10)], name="synthetic 32×32")


def test_discriminator_has_the_lab_layers_and_sizes():
    disc = Disc196(CIFAR, 10)
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8
    assert [c.stride[0] for c in convs] == STRIDES and all(c.stride[0] == c.stride[1] for c in convs)
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.out_channels == 196 for c in convs)
    assert [c.in_channels for c in convs] == [3] + [196] * 7
    assert conv_output_sides(disc, torch.zeros(2, *CIFAR), (nn.Conv2d,)) == SIDES
    norms = [m for m in disc.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 8 and all(n.num_groups == 1 and n.num_channels == 196 for n in norms)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Sigmoid)) for m in disc.modules())
    assert sum(isinstance(m, nn.LeakyReLU) for m in disc.modules()) == 8
    pools = [m for m in disc.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 1 and pools[0].kernel_size == 4 and pools[0].stride == 4
    assert [name for name, _ in disc.trunk.named_children()][:8] == [f"conv{i}" for i in range(1, 9)]


def test_literal_layer_norm_follows_the_feature_map_sizes():
    disc = Disc196(CIFAR, 10, norm="layer")
    shapes = [tuple(m.normalized_shape) for m in disc.modules() if isinstance(m, nn.LayerNorm)]
    assert shapes == [(196, s, s) for s in SIDES]
    with pytest.raises(InvalidArgumentError, match="group, layer"):
        Disc196(CIFAR, 10, norm="batch")


def test_parameter_counts_match_a_hand_computation():
    first = 3 * 196 * 9 + 196  # conv1: 3 input channels, 3×3 kernel, bias
    rest = 7 * (196 * 196 * 9 + 196)  # conv2 .. conv8
    norms = 8 * 2 * 196  # one scale and shift per channel (GroupNorm(1, 196))
    fc1, fc10 = 196 + 1, 196 * 10 + 10
    assert count(Disc196(CIFAR, 10)) == first + rest + norms + fc1 + fc10 == 2_432_371
    assert count(Disc196Classifier(CIFAR, 10)) == first + rest + norms + fc10 == 2_432_174
    assert count(Disc196Critic(CIFAR)) == first + rest + norms + fc1 == 2_430_401
    # the lab's literal nn.LayerNorm([196, h, w]): a scale and shift per (channel, row, column)
    literal = 2 * 196 * sum(s * s for s in SIDES)
    assert count(Disc196Classifier(CIFAR, 10, norm="layer")) == first + rest + literal + fc10
    mnist_first = 1 * 196 * 9 + 196
    assert count(build((1, 28, 28), 10)) == mnist_first + rest + norms + fc10 == 2_428_646


def test_both_heads_and_every_form_have_the_right_shapes():
    x = torch.rand(3, *CIFAR)
    source, classes = Disc196(CIFAR, 10)(x)
    assert source.shape == (3,) and classes.shape == (3, 10)
    assert Disc196Critic(CIFAR)(x).shape == (3,)
    assert Disc196Classifier(CIFAR, 7)(x).shape == (3, 7)
    # MNIST's 28×28 also ends at 4×4 (28 -> 14 -> 7 -> 4), so the zoo form takes it
    assert build_model("disc196", get_spec("mnist"))(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_generator_maps_latents_to_32x32_images_in_signed_range():
    generator = LabGenerator()
    transposed = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(transposed) == 3 and all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m in transposed)
    assert conv_output_sides(generator, torch.randn(2, 100), (nn.ConvTranspose2d,)) == [8, 16, 32]
    convs = [m for m in generator.modules() if type(m) is nn.Conv2d]
    assert len(convs) == 5 and convs[-1].out_channels == 3  # 3 at 8×8, 1 at 16×16, the output conv at 32×32
    assert generator.fc1[0].in_features == 100 and generator.fc1[0].out_features == 196 * 4 * 4
    assert isinstance(list(generator.modules())[-1], nn.Tanh)
    assert count(generator) == 3_559_363
    torch.manual_seed(0)
    images = generator(torch.randn(5, 100) * 3)  # large latents push Tanh towards its bounds
    assert images.shape == (5, 3, 32, 32) and images.min() >= -1 and images.max() <= 1


def test_acgan_writes_the_class_into_the_first_latent_entries():
    model = build_generative("acgan-cifar", get_spec("cifar10")).eval()
    assert isinstance(model.discriminator, Disc196) and model.conditional and model.latent_dim == 100
    z = torch.randn(2, 100)
    other = z.clone()
    other[:, :10] = torch.randn(2, 10)  # these entries are overwritten by the one-hot label
    labels = torch.tensor([3, 7])
    with torch.no_grad():
        assert torch.equal(model.generate(z, labels), model.generate(other, labels))
        assert not torch.allclose(model.generate(z, labels), model.generate(z, torch.tensor([4, 8])))
    images = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    with pytest.raises(InvalidArgumentError, match="must exceed the 10 classes"):
        build_generative("acgan-cifar", get_spec("cifar10"), latent_dim=10)


def test_wgan_gp_cifar_keeps_the_paper_settings():
    model = build_generative("wgan-gp-cifar", get_spec("cifar10"))
    assert isinstance(model.discriminator, Disc196Critic) and not model.conditional
    assert (model.critic_steps, model.default_lr, model.default_betas, model.gp_weight) == (5, 1e-4, (0.0, 0.9), 10.0)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Sigmoid)) for m in model.discriminator.modules())


@pytest.mark.parametrize("name", ["acgan-cifar", "wgan-gp-cifar"])
def test_one_training_step_changes_both_networks_with_finite_losses(name, synthetic_cifar):
    torch.manual_seed(0)
    model = build_generative(name, get_spec(synthetic_cifar))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # one generator step: after critic_steps discriminator steps (1 for ACGAN, 5 for WGAN-GP), batches of 2
    config = GenTrainConfig(epochs=1, batch_size=2, max_steps=model.critic_steps, grid_size=10)
    history = fit_generative(model, load_dataset(synthetic_cifar, "train"), config, device=torch.device("cpu"))
    record = history.epochs[0]
    assert {"d_loss", "g_loss"} <= set(record)
    assert all(torch.isfinite(torch.tensor(v)) for v in record.values())
    if name == "wgan-gp-cifar":
        assert record["gradient_penalty"] > 0
    else:
        assert 0 <= record["aux_accuracy"] <= 1
    after = model.state_dict()
    for part in ("generator", "discriminator"):
        changed = [k for k in before if k.startswith(part) and before[k].is_floating_point()
                   and not torch.equal(before[k], after[k])]
        assert changed, f"{part} weights did not change"
    assert history.grids[0].shape[1:] == CIFAR


def test_gradient_penalty_goes_through_the_lab_critic():
    torch.manual_seed(0)
    model = LabWGANGP(CIFAR, 10)
    real, fake = torch.rand(3, *CIFAR) * 2 - 1, torch.rand(3, *CIFAR) * 2 - 1
    penalty = gradient_penalty(model.critic, real, fake, torch.Generator().manual_seed(1))
    # the same interpolates by hand: ‖∇ₓ critic(x̂)‖₂ per image
    eps = torch.rand(3, 1, 1, 1, generator=torch.Generator().manual_seed(1))
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.critic(mixed).sum(), mixed)
    expected = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
    assert torch.isfinite(penalty) and float(penalty.detach()) == pytest.approx(float(expected), rel=1e-4)
    # the penalty alone reaches the critic's weights (double backward through all eight layers)
    penalty.backward()
    convs = [m for m in model.discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8 and all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in convs)
    assert model.generator.fc1[0].weight.grad is None  # the generator is not involved


def test_zoo_classifier_is_registered_and_its_loss_falls():
    assert "disc196" in MODELS and "GAN lab" in MODELS.entry("disc196").summary
    recipe = default_config("disc196", "cifar10")
    assert recipe.optimizer == "adam" and recipe.batch_size == 128
    torch.manual_seed(0)
    model = build_model("disc196", get_spec("cifar10"))  # [0, 1] pixels in, CIFAR-10 normalisation inside
    x, y = torch.rand(8, *CIFAR), torch.arange(8) % 10
    # lr 1e-4: at 1e-3 the loss on 8 images zig-zags, and its path changes with the CPU thread count
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(10):
        loss = nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < 0.1 * losses[0], losses


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 64, 64), (3, 24, 24), (3, 32, 40)])
def test_zoo_classifier_refuses_shapes_it_cannot_take(shape):
    with pytest.raises(ShapeMismatchError) as error:
        build(shape, 10)
    message = str(error.value)
    assert "\n" not in message and "25 to 32 pixels" in message and "resize" in message


@pytest.mark.parametrize("dataset", ["digits", "mnist", "faces"])
@pytest.mark.parametrize("name", ["acgan-cifar", "wgan-gp-cifar"])
def test_lab_gans_refuse_other_sizes(name, dataset):
    with pytest.raises(ShapeMismatchError) as error:
        build_generative(name, get_spec(dataset))
    message = str(error.value)
    assert "\n" not in message and "32×32 images only" in message and "--dataset cifar10" in message


def test_registered_with_summaries():
    assert {"acgan-cifar", "wgan-gp-cifar"} <= set(GENERATIVE_MODELS.names())
    assert GENERATIVE_MODELS.get("acgan-cifar") is LabACGAN and GENERATIVE_MODELS.get("wgan-gp-cifar") is LabWGANGP


def test_gen_train_cli_end_to_end(synthetic_cifar, tmp_path, capsys):
    checkpoint = tmp_path / "acgan-cifar.safetensors"
    code, out, err = run_cli(capsys, "-q", "gen", "train", "--model", "acgan-cifar", "--dataset", synthetic_cifar,
                             "--epochs", "1", "--batch-size", "4", "--no-eval", "--checkpoint", str(checkpoint),
                             "--out", str(tmp_path / "reports"))
    assert code == 0, err
    assert "trained 1 epochs" in out and checkpoint.is_file()
    loaded = load_generator(checkpoint)
    assert isinstance(loaded.model, LabACGAN) and loaded.metadata["options"]["norm"] == "group"
    assert loaded.metadata["recipe"]["batch_size"] == 4 and loaded.metadata["recipe"]["lr"] == 2e-4
    assert loaded.model.sample(2).shape == (2, *CIFAR)
    code, _, err = run_cli(capsys, "gen", "train", "--model", "wgan-gp-cifar", "--dataset", synthetic_cifar,
                           "--width", "64", "--no-eval", "--out", str(tmp_path / "reports"))
    assert code == 2 and "takes no option width" in err and len(err.strip().splitlines()) == 1
