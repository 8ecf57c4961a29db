"""SquadNet: sizes, head inputs, fused experts == per-task loop, expert isolation, options."""

import pytest
import torch

import mtlzoo
from mtlzoo.models import create_model, create_model_from_config
from mtlzoo.models.squadnet import FusedExperts, LoopExperts, SquadNet, channel_shuffle


def _randomise_norms(module):
    for m in module.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.5, 0.5)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)


def _dense_target(task, shape):
    b, _, h, w = shape
    if task.kind in ("segmentation", "parts"):
        return torch.randint(0, task.channels, (b, h, w))
    if task.kind == "normals":
        return torch.nn.functional.normalize(torch.randn(b, 3, h, w), dim=1)
    if task.kind == "depth":
        return torch.rand(b, 1, h, w) * 5
    return (torch.rand(b, 1, h, w) > 0.8).float()


SIZES = ["squadnet_tiny", "squadnet_small", pytest.param("squadnet_base", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.parametrize("preset", ["nyud", "pascal_context"])
def test_shapes_and_gradients(name, preset):
    """Narrow (width 8, light heads) so every size runs in a second; tests/models/test_zoo.py runs the defaults."""
    torch.manual_seed(0)
    model = create_model(name, tasks=preset, width=8, head="light")
    tasks = mtlzoo.task_preset(preset)
    parts = len(tasks) + 2
    x = torch.randn(2, 3, 64, 64)
    rep = model.encode(x)
    assert [f.shape[1] for f in rep.features] == [parts * 8, parts * 16, parts * 32]
    assert [f.shape[-1] for f in rep.features] == [32, 16, 8]
    outputs = model.decode(rep)
    for task in tasks:
        assert outputs[task.name].shape == (2, task.channels, 64, 64)
    losses = model.losses(outputs, {t.name: _dense_target(t, x.shape) for t in tasks})
    sum(losses.values()).backward()
    for task in tasks:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.task_parameters(task.name))
    first_expert = model.encoder.stages[0][0].experts.body[0][0].weight
    assert all(chunk.abs().sum() > 0 for chunk in first_expert.grad.chunk(len(tasks)))
    assert all(p.grad is not None for p in model.shared_parameters())


def test_default_width_and_heads():
    model = create_model("squadnet_tiny", tasks="pascal_context")
    assert model.encoder.out_channels == [7 * 32, 7 * 64, 7 * 128]
    assert model.head_in_channels(model.task("parts")) == [96, 192, 384]
    assert type(model.heads["parts"]).__name__ == "ASPPHead"


def test_depths_per_size():
    for name, depth in [("squadnet_tiny", 2), ("squadnet_small", 4), ("squadnet_base", 8)]:
        model = create_model(name, tasks="nyud")
        assert [len(stage) for stage in model.encoder.stages] == [depth] * 3


def test_head_reads_own_chunk_and_shared_chunks():
    model = create_model("squadnet_tiny", tasks="nyud", head="light")
    task = model.task("depth")  # index 1 of 4 tasks, 2 shared chunks -> 6 chunks
    assert model.head_in_channels(task) == [96, 192, 384]
    feature = torch.arange(6, dtype=torch.float32).repeat_interleave(2).view(1, 12, 1, 1)
    rep = mtlzoo.models.Representation((feature,), (1, 1))
    (selected,) = model.head_features(rep, task)
    assert selected.flatten().tolist() == [1, 1, 4, 4, 5, 5]


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("train", [True, False])
def test_fused_experts_equal_per_task_loop(norm, train):
    torch.manual_seed(0)
    fused = FusedExperts(num_experts=3, width=8, norm=norm)
    _randomise_norms(fused)
    loop = LoopExperts.from_fused(fused, norm=norm)
    fused.train(train)
    loop.train(train)
    x = torch.randn(4, 24, 10, 10)
    torch.testing.assert_close(fused(x), loop(x), rtol=1e-5, atol=1e-5)


def test_loop_experts_model_matches_fused_model():
    torch.manual_seed(0)
    fused = create_model("squadnet_tiny", tasks="nyud", head="light", width=8).eval()
    _randomise_norms(fused)
    loop = create_model("squadnet_tiny", tasks="nyud", head="light", width=8, experts="loop").eval()
    state = fused.state_dict()
    for name, module in fused.named_modules():
        if isinstance(module, FusedExperts):
            converted = LoopExperts.from_fused(module).state_dict()
            state = {k: v for k, v in state.items() if not k.startswith(name + ".")}
            state.update({f"{name}.{k}": v for k, v in converted.items()})
    loop.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    for task, out in fused(x).items():
        torch.testing.assert_close(out, loop(x)[task], rtol=1e-4, atol=1e-4)


def test_first_block_experts_are_isolated_per_task():
    """A loss on task u's expert output gives task t's expert slice (t != u) exactly zero gradient."""
    torch.manual_seed(0)
    model = create_model("squadnet_tiny", tasks="nyud")
    block = model.encoder.stages[0][0]
    num_tasks, width = block.num_tasks, block.width
    stem = model.encoder.stem(torch.randn(2, 3, 32, 32))
    params = list(block.experts.parameters())
    for u in range(num_tasks):
        out = block.experts(stem[:, :num_tasks * width])
        grads = torch.autograd.grad(out.split(width, dim=1)[u].square().sum(), params)
        for grad in grads:
            chunks = grad.chunk(num_tasks)
            for t in range(num_tasks):
                assert (chunks[t].abs().sum() > 0) == (t == u)


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6, dtype=torch.float32).view(1, 6, 1, 1)
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("norm", ["gn", "syncbn"])
def test_norm_options_and_no_shared_chunks(norm):
    model = create_model("squadnet_tiny", tasks="nyud", norm=norm, num_shared=0, width=8, head="light",
                         shuffle=False)
    outputs = model(torch.randn(2, 3, 32, 32))
    assert outputs["normals"].shape == (2, 3, 32, 32)
    assert model.head_in_channels(model.task("semseg")) == [8, 16, 32]


def test_config_round_trip_and_errors():
    model = create_model("squadnet_tiny", tasks="nyud", width=8, head="light")
    rebuilt = create_model_from_config(model.config)
    assert isinstance(rebuilt, SquadNet)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match="partitions its channels"):
        model.add_task(mtlzoo.Task("saliency", "saliency"))
    with pytest.raises(ValueError, match="partitions its channels"):
        model.remove_task("depth")
    with pytest.raises(ValueError, match="Did you mean: gn"):
        create_model("squadnet_tiny", tasks="nyud", norm="gnn")
    with pytest.raises(ValueError, match="Did you mean: loop"):
        create_model("squadnet_tiny", tasks="nyud", experts="lop")
    with pytest.raises(ValueError, match="depths"):
        create_model("squadnet_tiny", tasks="nyud", depths=(2, 2))
