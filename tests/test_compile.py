"""--compile keeps torch.compile only where it is measured faster; on the CPU it stays eager and says why."""
from __future__ import annotations

import json
import time

import torch
from torch import nn

from tests.helpers import run_cli
from trustkit.models.compiled import CPU_REASON, compile_if_faster


class Slow(nn.Module):
    """``inner`` with a fixed delay per forward pass: a stand-in for a slow eager model."""

    def __init__(self, inner: nn.Module, delay: float) -> None:
        super().__init__()
        self.inner, self.delay = inner, delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return self.inner(x)


def _batch():
    torch.manual_seed(0)
    return torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))


def test_cpu_stays_eager_with_the_measured_reason():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x, y = _batch()
    kept, decision = compile_if_faster(model, x, y)
    assert kept is model and decision == {"compile": "off", "reason": CPU_REASON}


def test_the_faster_of_eager_and_compiled_is_kept():
    inner = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x, y = _batch()
    slow_eager = Slow(inner, 0.02)
    kept, decision = compile_if_faster(slow_eager, x, y, compiler=lambda m: m.inner)  # "compiled" is faster
    assert kept is inner and decision["compile"] == "on" and decision["eager_ms"] > decision["compiled_ms"]
    kept, decision = compile_if_faster(inner, x, y, compiler=lambda m: Slow(m, 0.02))  # "compiled" is slower
    assert kept is inner and decision["compile"] == "off" and "eager kept" in decision["reason"]
    assert all(p.requires_grad for p in inner.parameters())  # weights' flags restored


def test_bench_compile_on_cpu_records_the_decision(tmp_path, capsys, digits_cnn):
    code, _, err = run_cli(capsys, "bench", "fgsm", "-n", "20", "--eps", "0.1", "--no-probes", "--compile",
                           "--out", str(tmp_path))
    assert code == 0, err
    run = json.loads(next(tmp_path.glob("*/run.json")).read_text())
    assert "torch.compile is not used on the CPU" in err
    assert json.dumps(CPU_REASON) in json.dumps(run)
