"""map_batches: the one batched loop, checked against the unbatched computation."""
from __future__ import annotations

import pytest
import torch

from trustkit.batches import map_batches
from trustkit.models.inference import predict_labels, predict_logits


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_batches_equal_the_whole_computation_and_report_progress(batch_size):
    x, y = torch.randn(10, 4), torch.arange(10)
    seen: list[int] = []
    out = map_batches(lambda a, b: a.sum(1) + b, x, y, batch_size=batch_size, progress=seen.append)
    assert torch.equal(out, x.sum(1) + y)
    assert sum(seen) == 10 and all(0 < s <= batch_size for s in seen)


def test_none_passes_through_and_empty_input_gives_the_given_empty():
    x = torch.randn(5, 2)
    assert torch.equal(map_batches(lambda a, b: a * 2 if b is None else a, x, None, batch_size=2), x * 2)
    empty = map_batches(lambda a: a, torch.empty(0, 2), batch_size=4, empty=torch.empty(0, dtype=torch.long))
    assert empty.dtype == torch.long and len(empty) == 0
    with pytest.raises(ValueError, match="batch_size"):
        map_batches(lambda a: a, x, batch_size=0)


def test_predictions_match_one_forward_pass():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5)).eval()
    x = torch.rand(11, 3, 2, 2)
    with torch.no_grad():
        whole = model(x)
    assert torch.allclose(predict_logits(model, x, batch_size=4), whole, atol=1e-6)
    assert torch.equal(predict_labels(model, x, batch_size=4), whole.argmax(1))
    assert predict_labels(model, x[:0], batch_size=4).dtype == torch.long
