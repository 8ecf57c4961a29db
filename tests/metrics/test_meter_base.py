import pytest
import torch

import mtlzoo.metrics.base as base
from mtlzoo.metrics import create_meter
from mtlzoo.tasks import task_preset


def _batch():
    g = torch.Generator().manual_seed(1)
    b, h, w = 3, 20, 24
    semseg = torch.randint(0, 8, (b, h, w), generator=g)
    semseg[:, 0] = 255
    parts = torch.randint(0, 7, (b, h, w), generator=g)
    normals = torch.nn.functional.normalize(torch.randn(b, 3, h, w, generator=g), dim=1)
    depth = torch.rand(b, 1, h, w, generator=g) * 5
    edge = (torch.rand(b, 1, h, w, generator=g) < 0.2).float()
    return {
        "semseg": (torch.randint(0, 8, (b, h, w), generator=g), semseg),
        "parts": (torch.randint(0, 7, (b, h, w), generator=g), parts),
        "depth": (depth + torch.randn(b, 1, h, w, generator=g), depth * (depth > 1)),
        "normals": (torch.randn(b, 3, h, w, generator=g), normals),
        "edge": (torch.rand(b, 1, h, w, generator=g), edge),
        "saliency": (torch.rand(b, 1, h, w, generator=g), edge),
    }


def test_chunking_changes_no_result(monkeypatch):
    batch = _batch()
    tasks = task_preset("synthscenes")

    def run():
        out = {}
        for task in tasks:
            meter = create_meter(task, "synthscenes")
            meter.update(*batch[task.name])
            out[task.name] = meter.compute()
        return out

    whole = run()
    monkeypatch.setattr(base, "CPU_CHUNK", 600)  # several chunks, the last one shorter
    chunked = run()
    for task in whole:
        assert chunked[task] == pytest.approx(whole[task], rel=1e-5, abs=1e-6)


def test_counts_by_index_and_safe_div():
    counts = base.counts_by_index(torch.tensor([0, 2, 2, 3]), 4)
    assert counts.tolist() == [1, 0, 2, 1]
    out = base.safe_div(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]), empty=-1.0)
    assert out.tolist() == [-1.0, 0.5]
