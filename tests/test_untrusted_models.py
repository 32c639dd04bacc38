"""Safe with untrusted files and bad input: code runs only with consent, a checkpoint is one file, store writes are
locked (a zoo model is trained once however many processes ask), crashes leave nothing behind for long, and a
read-only TRUSTKIT_HOME still runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import run_cli
from trustkit import load_model
from trustkit.atomic import atomic_path, sweep_stale
from trustkit.data import get_spec
from trustkit.errors import CheckpointError
from trustkit.models import build_model
from trustkit.models.loading import PICKLE_REFUSAL, load_checkpoint, resolve_model
from trustkit.models.store import (METADATA_KEY, checkpoint_exists, list_checkpoints, read_checkpoint, read_metadata,
                                   save_checkpoint, save_tensors, store_dir)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread, no spin-waiting on 2 busy cores

MARKER = "TRUSTKIT-MARKER: TorchScript code ran while loading"
ROOT = Path(__file__).resolve().parents[1]
OLD = time.time() - 2 * 3600  # an mtime older than the stale-temporary threshold (1 hour)


class _LoudOnLoad(torch.nn.Module):
    """A TorchScript model whose ``__setstate__`` runs when the file is loaded and prints a marker: proof that
    loading a TorchScript file runs code the file carries."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.linspace(-1, 1, 640).reshape(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        print("TRUSTKIT-MARKER: TorchScript code ran while loading")
        self.weight = state[0]
        self.training = state[1]


@pytest.fixture
def scripted(tmp_path: Path) -> Path:
    path = tmp_path / "loud.pt"
    torch.jit.script(_LoudOnLoad()).save(str(path))
    return path


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An importable module whose import leaves a marker file, and whose factory builds a digits model."""
    name = "trustkit_test_untrusted_factory"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
        import pathlib
        import torch
        pathlib.Path({str(marker)!r}).touch()  # import-time code: must not run without consent
        def build():
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    yield name, marker
    sys.modules.pop(name, None)


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("TRUSTKIT_HOME", str(home))
    return home


def _forbid_jit_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("torch.jit.load was called without trust_code")

    monkeypatch.setattr(torch.jit, "load", refuse)


# --- code runs only with consent --------------------------------------------------------------------------------

def test_torchscript_is_refused_before_jit_load(scripted, monkeypatch, capsys):
    _forbid_jit_load(monkeypatch)
    with pytest.raises(CheckpointError) as refused:
        load_model(str(scripted), "digits", device="cpu")
    message = str(refused.value)
    assert "\n" not in message and "TorchScript" in message and "runs its code" in message
    assert "--trust-code" in message and "trust_code=True" in message and "safetensors" in message
    assert MARKER not in capsys.readouterr().out  # nothing of the file ran, not even a shape probe
    monkeypatch.undo()
    model = load_model(str(scripted), "digits", device="cpu", trust_code=True)
    assert MARKER in capsys.readouterr().out  # with consent it loads, and loading did run its code
    with torch.no_grad():
        assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_factory_is_refused_and_never_imported(factory_module):
    name, marker = factory_module
    with pytest.raises(CheckpointError) as refused:
        resolve_model(f"{name}:build", "digits", device="cpu")
    message = str(refused.value)
    assert "\n" not in message and "did not import it" in message and "--trust-code" in message
    assert name not in sys.modules and not marker.exists()
    loaded = resolve_model(f"{name}:build", "digits", device="cpu", trust_code=True)
    assert marker.exists() and loaded.name == "build" and loaded.metadata == {"format": "factory"}


def test_pickle_refusal_points_to_the_safe_route_not_torchscript():
    assert "TorchScript" not in PICKLE_REFUSAL and "jit" not in PICKLE_REFUSAL
    assert "safetensors" in PICKLE_REFUSAL and "save_checkpoint" in PICKLE_REFUSAL


def test_cli_refuses_code_in_one_line(scripted, factory_module, tmp_path, capsys, monkeypatch):
    name, marker = factory_module
    _forbid_jit_load(monkeypatch)
    out = tmp_path / "reports"
    commands = [
        ("bench", "fgsm", "--model", str(scripted), "--out", str(out)),
        ("bench", "fgsm", "--model", f"{name}:build", "--out", str(out)),
        ("bench", "transfer", "--source", f"{name}:build", "--target", f"{name}:build", "--out", str(out)),
        ("bench", "substitute", "--target", str(scripted), "--out", str(out)),
        ("privacy", "audit", "--model", f"{name}:build", "--out", str(out)),
    ]
    for command in commands:
        code, stdout, err = run_cli(capsys, *command)
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), (command, err)
        assert "--trust-code" in err and "safetensors" in err, err
        assert MARKER not in stdout
    assert name not in sys.modules and not marker.exists()
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_cli_trust_code_loads_torchscript(scripted, tmp_path, capsys):
    code, stdout, err = run_cli(capsys, "bench", "fgsm", "--model", str(scripted), "--trust-code", "--n", "20",
                                "--eps", "0.1", "--no-probes", "--no-cache", "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert MARKER in stdout
    run = json.loads(next((tmp_path / "r").iterdir()).joinpath("run.json").read_text())
    assert run["config"]["trust_code"] is True  # the consent is on record


def test_a_suite_file_cannot_grant_trust_code():
    from trustkit.studies.suite import parse_suite
    from trustkit.yamlspec import SpecError

    text = ("name: s\nmodels: [softmax]\ndatasets: [digits]\ntrust_code: true\n"
            "threat_models:\n  - {norm: linf, eps: [0.1]}\nattacks: [fgsm]\n")
    with pytest.raises(SpecError, match="line 4: a suite file cannot grant 'trust_code'; pass --trust-code"):
        parse_suite(text, "s.yaml")


# --- a checkpoint is one file -----------------------------------------------------------------------------------

def _softmax(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("softmax", get_spec("digits")).eval()


def test_checkpoint_is_one_file_with_metadata_in_its_header(tmp_path):
    from safetensors import safe_open

    model = _softmax()
    path = save_checkpoint(model, {"arch": "softmax", "dataset": "digits", "input_shape": [1, 8, 8]}, tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["m.safetensors"]
    assert not list(tmp_path.glob(".*.tmp"))
    with safe_open(str(path), "pt") as opened:
        meta = json.loads(opened.metadata()[METADATA_KEY])
    assert meta["arch"] == "softmax" and meta["format"] == "trustkit-checkpoint" and meta["format_version"] == 2
    loaded, read_back = load_checkpoint(path)
    assert read_back == meta and read_metadata(path) == meta and checkpoint_exists(path)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def _legacy_checkpoint(folder: Path, name: str, model: torch.nn.Module, **extra) -> Path:
    """A checkpoint as trustkit wrote them before: plain safetensors plus NAME.json beside it."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    meta = {"format": "trustkit-checkpoint", "format_version": 1, "arch": "softmax", "dataset": "digits",
            "input_shape": [1, 8, 8], "created": "2024-01-01T00:00:00+00:00", **extra}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def test_old_two_file_checkpoints_still_load(fresh_home, capsys):
    model = _softmax(1)
    path = _legacy_checkpoint(store_dir(), "legacy-softmax", model, metrics={"clean_accuracy": 0.5})
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(load_model(str(path), "digits", device="cpu")(x), model(x))
        assert torch.equal(load_model(str(path.with_suffix(".json")), "digits", device="cpu")(x), model(x))
        assert torch.equal(load_model("legacy-softmax", "digits", device="cpu")(x), model(x))  # store entry
    assert list_checkpoints() == [path]
    code, out, err = run_cli(capsys, "list", "checkpoints")
    assert code == 0 and "legacy-softmax" in out and "50.00% (test)" in out and "classifier" in out, err
    # re-saving writes the single file and drops the JSON that described the old weights
    save_checkpoint(_softmax(2), {"arch": "softmax", "dataset": "digits", "input_shape": [1, 8, 8]}, path)
    assert not path.with_suffix(".json").exists() and read_metadata(path)["format_version"] == 2


def test_header_wins_over_a_stale_json(tmp_path):
    model = _softmax()
    path = save_checkpoint(model, {"arch": "softmax", "dataset": "digits"}, tmp_path / "m")
    path.with_suffix(".json").write_text(json.dumps({"format": "trustkit-checkpoint", "arch": "mlp",
                                                     "dataset": "digits"}))
    loaded, meta = load_checkpoint(path)
    assert meta["arch"] == "softmax"


def test_weights_without_metadata_are_not_a_store_entry(fresh_home):
    """An old-format write killed between its weights and its JSON left weights only: that is no checkpoint."""
    from safetensors.torch import save_file

    store_dir().mkdir(parents=True)
    save_file({"w": torch.zeros(1)}, str(store_dir() / "half.safetensors"))
    assert not checkpoint_exists(store_dir() / "half.safetensors") and list_checkpoints() == []


def test_concurrent_overwrites_never_mix_weights_and_metadata(tmp_path):
    """A writer flips one checkpoint between two versions while readers read it: every read pairs a version's
    weights with that same version's metadata (with a separate JSON, a read between the two renames mixed them)."""
    path = tmp_path / "flip.safetensors"
    size = 200_000
    save_tensors({"w": torch.zeros(size)}, {"version": 0}, path)
    done, problems, reads = threading.Event(), [], [0]

    def writer() -> None:
        try:
            for i in range(1, 41):
                save_tensors({"w": torch.full((size,), float(i % 2))}, {"version": i % 2}, path)
        except Exception as exc:  # pragma: no cover - reported below
            problems.append(repr(exc))
        finally:
            done.set()

    def reader() -> None:
        while not done.is_set():
            try:
                tensors, meta = read_checkpoint(path)
            except Exception as exc:  # pragma: no cover - reported below
                problems.append(repr(exc))
                return
            values = tensors["w"].unique().tolist()
            if values != [float(meta["version"])]:
                problems.append(f"weights {values} with metadata version {meta['version']}")
            reads[0] += 1

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not problems, problems[:3]
    assert reads[0] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flip.safetensors"]  # no JSON, no temp, no lock



def test_a_rename_right_after_the_open_does_not_mix_versions(tmp_path, monkeypatch):
    """The race the test above samples, forced: a new version is renamed over the path the moment the reader
    has opened it. The reader gets the version it opened, weights and metadata alike (safetensors' safe_open
    opens the path twice, so a rename between its two opens paired new weights with old metadata)."""
    import builtins

    import trustkit.models.store as store

    path = tmp_path / "flip.safetensors"
    save_tensors({"w": torch.zeros(1000)}, {"version": 0}, path)
    newer = tmp_path / "newer.safetensors"
    save_tensors({"w": torch.ones(1000)}, {"version": 1}, newer)
    renamed = []

    def open_then_rename(file, *args, **kwargs):
        handle = builtins.open(file, *args, **kwargs)
        if Path(file) == path and not renamed:
            os.replace(newer, path)
            renamed.append(True)
        return handle

    monkeypatch.setattr(store, "open", open_then_rename, raising=False)
    tensors, meta = read_checkpoint(path)
    assert renamed, "read_checkpoint did not read through one open file"
    assert tensors["w"].unique().tolist() == [0.0] and meta["version"] == 0
    assert read_metadata(path)["version"] == 1 and read_checkpoint(path)[0]["w"].unique().tolist() == [1.0]

TRAIN_ONCE = textwrap.dedent("""
    import hashlib, pathlib, sys, time
    import torch
    torch.set_num_threads(1)
    from trustkit import load_model
    from trustkit.models.store import read_metadata, store_path
    ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    ready.touch()
    while not go.exists():  # both processes ask at the same moment
        time.sleep(0.01)
    model = load_model("softmax", "digits", device="cpu")
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest()
    print("digest", digest, read_metadata(store_path("softmax-digits"))["created"], flush=True)
""")


def test_two_processes_train_a_zoo_model_once(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "TRUSTKIT_HOME": str(home), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    go = tmp_path / "go"
    readies = [tmp_path / f"ready{i}" for i in range(2)]
    processes = [subprocess.Popen([sys.executable, "-c", TRAIN_ONCE, str(ready), str(go)], env=env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for ready in readies]
    try:
        deadline = time.time() + 240
        while not all(r.exists() for r in readies):
            assert time.time() < deadline and all(p.poll() is None for p in processes), "workers did not start"
            time.sleep(0.05)
        go.touch()
        outputs = [p.communicate(timeout=300) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err
    stderr = "".join(err for _, err in outputs)
    assert stderr.count("training it now") == 1, stderr
    assert stderr.count("trained softmax (clean) on digits") == 1, stderr
    digests = [line.split() for out, _ in outputs for line in out.splitlines() if line.startswith("digest")]
    assert len(digests) == 2 and digests[0] == digests[1]  # identical weights, and one checkpoint creation time


# --- crashes leave nothing behind for long ----------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from trustkit.atomic import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_text("half-written")
        print(tmp, flush=True)
        time.sleep(300)  # killed here
""")


def test_a_killed_writers_temporary_is_removed_only_once_stale_and_unlocked(tmp_path):
    target = tmp_path / "out" / "result.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        temp = Path(writer.stdout.readline().strip())
        assert temp.is_file() and temp.parent == target.parent
        os.utime(temp, (OLD, OLD))
        assert sweep_stale(target.parent) == [] and temp.exists()  # old, but its writer is alive and holds it
    finally:
        writer.kill()
        writer.wait(timeout=60)
    assert sweep_stale(target.parent) == [temp] and not temp.exists() and not target.exists()


def test_next_start_sweeps_stale_temporaries(fresh_home, capsys):
    fcntl = pytest.importorskip("fcntl")
    store = store_dir()
    stale_dir = fresh_home / "cells" / ".ab.abcd_123.tmp"
    stale_dir.mkdir(parents=True)
    (stale_dir / "partial.json").write_text("{")
    stale_cell = fresh_home / "cells" / "3f" / ".3f00.json.q1w2e3r4.tmp"  # a cell a killed --jobs worker left
    stale_cell.parent.mkdir()
    stale_cell.write_text("{")
    store.mkdir(parents=True)
    stale_file = store / ".cnn-digits.safetensors.k3j_x9q2.tmp"
    stale_file.write_bytes(b"half")
    fresh = store / ".mlp-digits.safetensors.a1b2c3d4.tmp"
    fresh.write_bytes(b"being written")
    locked = store / ".resnet-digits.safetensors.zz99yy88.tmp"
    locked.write_bytes(b"long write")
    unrelated = store / ".notes.tmp"
    unrelated.write_text("a user's file")
    for path in (stale_dir, stale_cell, stale_file, locked, unrelated):
        os.utime(path, (OLD, OLD))
    with open(locked, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)  # a live writer in another process would hold this
        code, _, err = run_cli(capsys, "list", "models")
    assert code == 0, err
    assert not stale_file.exists() and not stale_dir.exists() and not stale_cell.exists()
    assert fresh.exists() and locked.exists() and unrelated.exists()


def test_an_interrupted_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "m.safetensors"
    save_tensors({"w": torch.zeros(3)}, {"v": 1}, target)
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert read_metadata(target)["v"] == 1 and not list(tmp_path.glob(".*.tmp"))


# --- read-only TRUSTKIT_HOME ------------------------------------------------------------------------------------

def _unwritable_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TRUSTKIT_HOME that cannot be created: a path below a regular file (works as root, unlike chmod)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    home = blocker / "trustkit-home"
    monkeypatch.setenv("TRUSTKIT_HOME", str(home))
    return home


def test_read_only_home_runs_bench_with_one_warning(tmp_path, monkeypatch, capsys):
    home = _unwritable_home(tmp_path, monkeypatch)
    code, out, err = run_cli(capsys, "bench", "fgsm", "--model", "softmax", "--n", "20", "--eps", "0.1",
                             "--jobs", "2", "--out", str(tmp_path / "r"))  # --jobs: the in-memory model stays here
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert f"TRUSTKIT_HOME {home}" in warnings[0] and "writable" in warnings[0] and "cache off" in warnings[0]
    assert err.count("training it now") == 1 and "kept in memory only" in err
    assert (next((tmp_path / "r").iterdir()) / "report.html").is_file()
    again = load_model("softmax", "digits", device="cpu")  # the same process does not train it again
    assert not home.exists() and isinstance(again, torch.nn.Module)
    assert "training it now" not in capsys.readouterr().err


def test_read_only_home_by_permissions(tmp_path, monkeypatch, capsys):
    if os.geteuid() == 0:
        pytest.skip("running as root, where chmod 0o555 does not stop writes; "
                    "test_read_only_home_runs_bench_with_one_warning covers a home that cannot be written")
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    monkeypatch.setenv("TRUSTKIT_HOME", str(home))
    try:
        code, _, err = run_cli(capsys, "bench", "fgsm", "--model", "softmax", "--n", "20", "--eps", "0.1",
                               "--out", str(tmp_path / "r"))
    finally:
        home.chmod(0o755)
    assert code == 0, err
    assert len([line for line in err.splitlines() if line.startswith("warning:")]) == 1, err


def test_train_into_a_read_only_home_fails_in_one_line(tmp_path, monkeypatch, capsys):
    _unwritable_home(tmp_path, monkeypatch)
    code, _, err = run_cli(capsys, "-q", "train", "--model", "softmax", "--epochs", "1")
    assert code == 2 and err.count("\n") == 1 and "cannot write checkpoint" in err and "TRUSTKIT_HOME" in err, err
