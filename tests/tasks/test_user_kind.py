"""docs/examples/user_kind.py, a task kind defined in one user file, end to end with no edit to mtlzoo:
train, evaluate (delta_m included), save, reload and fine-tune a model with it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mtlzoo
from mtlzoo import Task

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE = DOCS / "examples" / "user_kind.py"
SIZE = 32


@pytest.fixture
def density(restore_registries):
    """Import the example file as a user would import their own module (fresh each test)."""
    spec = importlib.util.spec_from_file_location("user_kind_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scene(generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
    """Images with 1-4 bright squares; semseg marks the squares, the density map puts a unit blob on each."""
    images = torch.randn(batch, 3, SIZE, SIZE, generator=generator) * 0.1
    semseg = torch.zeros(batch, SIZE, SIZE, dtype=torch.int64)
    density = torch.zeros(batch, 1, SIZE, SIZE)
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    for b in range(batch):
        for _ in range(int(torch.randint(1, 5, (), generator=generator))):
            y, x = (int(v) for v in torch.randint(3, SIZE - 3, (2,), generator=generator))
            images[b, :, y - 2:y + 3, x - 2:x + 3] += 2.0
            semseg[b, y - 2:y + 3, x - 2:x + 3] = 1
            blob = torch.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4.0)
            density[b, 0] += blob / blob.sum()
    return {"image": images, "semseg": semseg, "crowd": density}


def _train(model, batches, task_names, steps):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    balancer = mtlzoo.create_balancer("ew")
    model.train()
    history = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        optimizer.zero_grad()
        outputs = model(batch["image"])
        losses = model.losses({t: outputs[t] for t in task_names}, {t: batch[t] for t in task_names})
        balancer.backward(losses, model)
        optimizer.step()
        history.append({t: float(v.detach()) for t, v in losses.items()})
    return history


def test_the_docs_page_shows_the_example_file_verbatim():
    assert EXAMPLE.read_text(encoding="utf-8").strip() in (DOCS / "extending.md").read_text(encoding="utf-8")


def test_a_user_kind_trains_evaluates_saves_reloads_and_finetunes(density, tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    train = [_scene(g, 8) for _ in range(4)]
    val = [_scene(g, 8) for _ in range(2)]
    model = mtlzoo.create_model("hps_tiny", tasks=[Task("semseg", "segmentation", 2), Task("crowd", "density")])
    assert isinstance(model.heads["crowd"], density.DensityHead)

    history = _train(model, train, ["semseg", "crowd"], steps=40)
    first, last = np.mean([h["crowd"] for h in history[:4]]), np.mean([h["crowd"] for h in history[-4:]])
    assert last < 0.5 * first

    baseline = {"semseg": {"miou": 0.4}, "crowd": {"count_mae": 3.0}}
    result = mtlzoo.evaluate(model, val, protocol="synthscenes", baseline=baseline, progress=False)
    with torch.no_grad():
        counts = torch.cat([model.eval()(b["image"])["crowd"].clamp_min(0).sum(dim=(1, 2, 3)) for b in val])
    truth = torch.cat([b["crowd"].sum(dim=(1, 2, 3)) for b in val])
    count_mae = float((counts - truth).abs().mean())
    assert result["crowd"]["count_mae"] == pytest.approx(count_mae, rel=1e-5)
    assert result["crowd"]["within_1"] == pytest.approx(float(((counts - truth).abs() <= 1).float().mean()))
    # Vandenhende: mean of signed relative changes; count_mae is lower-is-better, miou higher-is-better
    expected = (100 * (result["semseg"]["miou"] - 0.4) / 0.4 - 100 * (count_mae - 3.0) / 3.0) / 2
    assert result.delta_m == pytest.approx(expected, rel=1e-5)

    folder = model.save_pretrained(tmp_path / "crowd-model", results=result, protocol="synthscenes")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert {"name": "crowd", "kind": "density"}.items() <= config["tasks"][1].items()
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "image-to-image" in card and "count_mae" in card
    reloaded = mtlzoo.from_pretrained(folder).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(val[0]["image"])["crowd"], model.eval()(val[0]["image"])["crowd"])

    reloaded.add_task(Task("cars", "density"))
    reloaded.freeze_encoder()
    reloaded.freeze_tasks(["semseg", "crowd"])
    with torch.no_grad():
        before = reloaded.eval()(val[0]["image"])
    tune = [{"image": b["image"], "cars": b["crowd"]} for b in train]
    _train(reloaded, tune, ["cars"], steps=6)
    with torch.no_grad():
        after = reloaded.eval()(val[0]["image"])
    assert torch.equal(before["crowd"], after["crowd"]) and torch.equal(before["semseg"], after["semseg"])
    assert not torch.equal(before["cars"], after["cars"])
    scored = mtlzoo.evaluate(reloaded, [{"image": b["image"], "cars": b["crowd"]} for b in val], progress=False)
    assert set(scored["cars"]) == {"count_mae", "within_1"}


def test_a_user_kind_moves_with_joint_transforms(density):
    from mtlzoo.data.transforms import RandomHorizontalFlip, RandomScaleCrop

    # a uniform density of 0.01 objects per pixel: a 2x zoom spreads each object over 4x the pixels
    sample = {"image": torch.randn(3, SIZE, SIZE), "crowd": torch.full((1, SIZE, SIZE), 0.01)}
    zoomed = RandomScaleCrop(scales=(2.0,), kinds={"crowd": "density"})(sample)
    assert torch.allclose(zoomed["crowd"], torch.full((1, SIZE, SIZE), 0.0025))
    ramp = {"image": sample["image"], "crowd": torch.linspace(0, 1, SIZE).expand(1, SIZE, SIZE).clone()}
    flipped = RandomHorizontalFlip(p=1.0, kinds={"crowd": "density"})(ramp)
    assert torch.equal(flipped["crowd"], ramp["crowd"].flip(-1))


def test_a_bad_density_target_names_the_task(density):
    model = mtlzoo.create_model("hps_tiny", tasks=[Task("crowd", "density")])
    out = model(torch.randn(2, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match="crowd.*>= 0"):
        model.losses(out, {"crowd": -torch.ones(2, 1, SIZE, SIZE)})
    with pytest.raises(ValueError, match="crowd.*float density map"):
        model.losses(out, {"crowd": torch.ones(2, 1, SIZE, SIZE, dtype=torch.int64)})
