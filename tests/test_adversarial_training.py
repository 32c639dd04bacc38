"""Adversarial training recipes, the catastrophic-overfitting guard, data-parallel training under torchrun."""
import json
import os
import subprocess
import sys

import pytest
import torch

from trustkit.attacks import PGD
from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.models import build_model
from trustkit.train import RECIPES, TrainConfig, fit, store_name, train_model
from trustkit.train.fit import validation_split


def robust_accuracy(model, eps, n=200):
    x, y = load_dataset("digits").tensors(torch.arange(n))
    torch.manual_seed(0)
    x_adv = PGD(eps, steps=20)(model, x, y)
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item()


def test_recipes_are_registered_and_validate():
    assert {"clean", "fgsm-rs", "pgd", "trades"} <= set(RECIPES)
    with pytest.raises(InvalidArgumentError, match="needs --eps"):
        RECIPES.get("fgsm-rs")(TrainConfig(recipe="fgsm-rs", eps=0.0))
    with pytest.raises(InvalidArgumentError, match="alpha"):
        RECIPES.get("pgd")(TrainConfig(recipe="pgd", eps=0.1, alpha=-1))
    assert store_name("cnn", "mnist", "fgsm-rs", 0.3) == "cnn-mnist-fgsm-rs-eps0.3"
    assert store_name("cnn", "cifar10", "pgd", 8 / 255) == "cnn-cifar10-pgd-eps8-255"


def test_validation_split_is_disjoint_and_seeded():
    train, held = validation_split(1000, 512, 0)
    assert len(held) == 100 and len(train) == 900 and not set(train.tolist()) & set(held.tolist())
    assert torch.equal(held, validation_split(1000, 512, 0)[1])


@pytest.mark.parametrize("recipe", ["fgsm-rs", "pgd", "trades"])
def test_adversarial_training_buys_robustness(tmp_path, digits_cnn, recipe):
    eps = 0.15
    result = train_model("cnn", "digits", recipe=recipe, eps=eps, epochs=12, attack_steps=3,
                         out=tmp_path / f"{recipe}.safetensors")
    meta = json.loads((tmp_path / f"{recipe}.json").read_text())
    assert meta["recipe"]["recipe"] == recipe and meta["recipe"]["eps"] == eps
    assert result.history.best_epoch is not None and all("val_pgd_accuracy" in e for e in result.history.epochs)
    assert result.history.final_accuracy > 0.85
    assert robust_accuracy(result.model, eps) > robust_accuracy(digits_cnn, eps) + 0.2
    assert not result.history.never_robust and meta["metrics"]["never_robust"] is False


def test_training_that_never_becomes_robust_is_called_out(tmp_path, capsys):
    """A linear model cannot resist eps 0.5 on digits: the result is saved, but flagged, not passed off."""
    from trustkit.runtime import set_quiet

    set_quiet(False)
    result = train_model("softmax", "digits", recipe="fgsm-rs", eps=0.5, epochs=2, out=tmp_path / "m.safetensors")
    meta = json.loads((tmp_path / "m.json").read_text())
    assert result.history.never_robust and meta["metrics"]["never_robust"] is True
    assert meta["metrics"]["best_val_pgd_accuracy"] < 0.2
    assert "adversarial training did not take" in capsys.readouterr().err


def test_fgsm_rs_reads_the_gradient_at_an_unclipped_random_start():
    """On saturated pixels (MNIST's black background) a start clipped to [0, 1] loses half its noise and FGSM
    training overfits catastrophically; the start may leave [0, 1], the training example may not."""
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(64, 10)

        def forward(self, x):
            seen.append(x.detach().clone())
            return self.linear(x.flatten(1))

    torch.manual_seed(0)
    x = torch.zeros(32, 1, 8, 8)  # every pixel saturated at 0
    x[:, :, 2:6, 2:6] = 1.0  # ... or at 1
    y = torch.randint(0, 10, (32,))
    loss = RECIPES.get("fgsm-rs")(TrainConfig(recipe="fgsm-rs", eps=0.3))(Recorder(), x, y)
    start, trained = seen
    noise = start - x
    assert noise.abs().max() <= 0.3 + 1e-6 and (noise < -0.05).float().mean() > 0.4  # both signs, everywhere
    assert start.min() < -0.2 and start.max() > 1.2
    assert trained.min() >= 0 and trained.max() <= 1 and (trained - x).abs().max() <= 0.3 + 1e-6
    assert torch.isfinite(loss)


def test_collapse_rule():
    from trustkit.train.fit import is_collapse

    assert is_collapse(0.48, 0.854)  # the drop measured with FGSM-RS on MNIST (epoch 7 -> 9)
    assert not is_collapse(0.80, 0.854)  # epoch-to-epoch wobble
    assert not is_collapse(0.02, 0.15)  # robustness was never established: nothing collapsed


def test_guard_keeps_the_best_epoch():
    """A schedule that collapses robustness late must end with the weights of the best validation epoch."""
    spec = get_spec("digits")
    torch.manual_seed(0)
    model = build_model("cnn", spec)
    config = TrainConfig(recipe="fgsm-rs", eps=0.3, alpha=0.6, epochs=6, batch_size=64, lr=0.05)
    history = fit(model, load_dataset("digits", "train"), config, device=torch.device("cpu"), seed=0)
    scores = [e["val_pgd_accuracy"] for e in history.epochs]
    assert history.best_epoch == 1 + scores.index(max(scores))
    _, held = validation_split(1437, 512, 0)
    x, y = load_dataset("digits", "train").tensors(held)
    from trustkit.train.fit import _pgd_accuracy

    assert _pgd_accuracy(model, x, y, 0.3, torch.device("cpu")) == pytest.approx(max(scores))


def test_train_cli_needs_eps_for_adversarial(capsys):
    from trustkit.cli import run

    assert run(["train", "--model", "cnn", "--adv", "fgsm-rs"]) == 2
    assert "needs a budget" in capsys.readouterr().err
    assert run(["train", "--model", "cnn", "--adv", "madness", "--eps", "0.1"]) == 2
    assert "unknown training recipe" in capsys.readouterr().err


GLOO_PROBE = """
import torch, torch.distributed as dist
dist.init_process_group("gloo")
value = torch.ones(1)
dist.all_reduce(value)
assert value.item() == dist.get_world_size()
dist.destroy_process_group()
"""


def _skip_unless_gloo_group_works(tmp_path, processes, env):
    """Tell a machine that cannot host a multi-process gloo group at all apart from a trustkit bug."""
    probe = tmp_path / "gloo_probe.py"
    probe.write_text(GLOO_PROBE)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", str(probe)], capture_output=True, text=True,
                          timeout=300, env={**env, "GLOO_SOCKET_IFNAME": env.get("GLOO_SOCKET_IFNAME", "lo")})
    if done.returncode != 0:
        pytest.skip(f"this machine cannot run a {processes}-process gloo group even without trustkit: "
                    + done.stderr[:500])


@pytest.mark.parametrize("processes", [1, 2])
def test_torchrun_data_parallel_training(tmp_path, processes):
    """The DistributedDataParallel path under torchrun (gloo on CPU): one process, and two sharing the data."""
    target = tmp_path / "ddp.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes > 1:
        _skip_unless_gloo_group_works(tmp_path, processes, env)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", "-m", "trustkit", "-q", "train", "--model", "softmax",
                           "--epochs", "5", "--out", str(target)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[:3000] + "\n...\n" + done.stderr[-1500:]
    meta = json.loads(target.with_suffix(".json").read_text())
    assert meta["metrics"]["processes"] == processes
    assert meta["metrics"]["clean_accuracy"] > 0.85
