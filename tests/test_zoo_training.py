"""Zoo models are trained by trustkit.train.zoo.ensure_trained, never by the models layer's resolve_model."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import trustkit
from trustkit.errors import CheckpointError
from trustkit.models import loading, store
from trustkit.models.loading import resolve_model
from trustkit.models.store import checkpoint_exists, store_name, store_path
from trustkit.train.zoo import ensure_trained

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "trustkit" / "models"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TRUSTKIT_HOME of its own and no models trained in memory by earlier tests of this process."""
    home = tmp_path / "home"
    monkeypatch.setenv("TRUSTKIT_HOME", str(home))
    monkeypatch.setattr(loading, "_IN_MEMORY", {})
    return home


def test_resolve_model_does_not_train_a_missing_zoo_model(empty_store):
    with pytest.raises(CheckpointError) as info:
        resolve_model("softmax", "digits", device="cpu")
    message = str(info.value)
    assert "\n" not in message
    assert "trustkit train --model softmax --dataset digits" in message and "ensure_trained" in message
    assert str(store_path("softmax-digits").parent) in message
    assert not checkpoint_exists(store_path("softmax-digits"))


def test_ensure_trained_then_resolve_and_no_retraining(empty_store, capsys):
    ensure_trained("logreg", "digits", device="cpu")  # an alias names the same store entry
    weights = store_path(store_name("softmax", "digits"))
    assert checkpoint_exists(weights) and "training it now" in capsys.readouterr().err
    stamp = weights.stat().st_mtime_ns
    loaded = resolve_model("softmax", "digits", device="cpu")
    assert loaded.source == str(weights) and loaded.metadata["arch"] == "softmax"
    assert loaded.module(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    ensure_trained("softmax", "digits", device="cpu")
    assert weights.stat().st_mtime_ns == stamp
    assert "training it now" not in capsys.readouterr().err


def test_ensure_trained_ignores_everything_but_a_missing_zoo_model(empty_store, tmp_path):
    for spec in (str(tmp_path / "absent.safetensors"), "softmax-digits", "torch.nn:Identity",
                 torch.nn.Linear(64, 10)):
        ensure_trained(spec, "digits", device="cpu")
    assert not (empty_store / "checkpoints").exists()


def test_read_only_store_trains_in_memory_once(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")  # a home below a regular file cannot be created (works as root too)
    monkeypatch.setenv("TRUSTKIT_HOME", str(blocker / "home"))
    monkeypatch.setattr(loading, "_IN_MEMORY", {})
    monkeypatch.setattr(store, "_warned_read_only", set())
    with pytest.raises(CheckpointError, match="trustkit train --model softmax"):
        resolve_model("softmax", "digits", device="cpu")
    ensure_trained("softmax", "digits", device="cpu")
    ensure_trained("softmax", "digits", device="cpu")
    err = capsys.readouterr().err
    assert err.count("training it now") == 1 and "kept in memory only" in err
    assert sum(line.startswith("warning:") for line in err.splitlines()) == 1, err
    first = resolve_model("softmax", "digits", device="cpu")
    second = resolve_model("softmax", "digits", device="cpu")
    assert first.source == "softmax trained in memory" and first.module is not second.module  # copies
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(first.module(x), second.module(x))
    assert not (blocker / "home").exists()


def test_public_load_model_still_trains_a_missing_zoo_model(empty_store):
    model = trustkit.load_model("softmax", "digits", device="cpu")
    assert isinstance(model, torch.nn.Module) and not model.training
    assert checkpoint_exists(store_path("softmax-digits"))


def _absolute(node: ast.ImportFrom, package: str = "trustkit.models") -> str:
    """The absolute module of ``from <node.module> import ...`` written in a module of ``package``."""
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")[:len(package.split(".")) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _is_train(module: str) -> bool:
    return module == "trustkit.train" or module.startswith("trustkit.train.")


def _train_imports(path: Path) -> list[str]:
    """Every import of trustkit.train in ``path``, at any depth (module level, in functions, in branches), and
    any string naming it (an ``importlib.import_module`` in disguise)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names if _is_train(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module, names = _absolute(node), [a.name for a in node.names]
            if _is_train(module) or any(_is_train(f"{module}.{name}") for name in names):
                found.append(f"{path.name}:{node.lineno} from {'.' * node.level}{node.module or ''} import "
                             f"{', '.join(names)}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _is_train(node.value.split(":")[0]):
            found.append(f"{path.name}:{node.lineno} {node.value!r}")
    return found


def test_the_import_scan_sees_every_form(tmp_path):
    probe = tmp_path / "probe.py"  # scanned as if it were a module of trustkit.models
    probe.write_text("import trustkit.train.zoo\n"
                     "from trustkit import train\n"
                     "from ..train import fit\n"
                     "def f():\n"
                     "    from trustkit.train.zoo import ensure_trained\n"
                     "    importlib.import_module('trustkit.train')\n"
                     "from trustkit.training_notes import x\n"
                     "from . import store\n", encoding="utf-8")
    assert [hit.split()[0] for hit in _train_imports(probe)] == [f"probe.py:{n}" for n in (1, 2, 3, 5, 6)]


def test_models_layer_never_imports_train():
    files = sorted(MODELS_DIR.glob("*.py"))
    assert files
    offending = [hit for path in files for hit in _train_imports(path)]
    assert not offending, offending


def test_resolving_a_stored_model_does_not_load_train(trustkit_home, digits_softmax):
    # digits_softmax is in the session store; a fresh interpreter resolves it with the models layer alone
    code = ("import sys; from trustkit.models.loading import resolve_model; "
            "resolve_model('softmax', 'digits', device='cpu'); "
            "print(sorted(m for m in sys.modules if m.startswith('trustkit.train')))")
    env = {**os.environ, "TRUSTKIT_HOME": str(trustkit_home), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
