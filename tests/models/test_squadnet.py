"""SquadNet: sizes, head inputs, fused experts == per-task loop, expert isolation, options, and the released
structure (methods.md section 1.2) transcribed from torch.nn primitives, loaded with the package model's weights."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

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
    parts = len(tasks) + (1 if name == "squadnet_tiny" else 2)
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
    """squadnet_tiny has one shared chunk (the release's tiny ablation configs), small and base two."""
    model = create_model("squadnet_tiny", tasks="pascal_context")
    assert model.encoder.out_channels == [6 * 32, 6 * 64, 6 * 128]
    assert model.head_in_channels(model.task("parts")) == [64, 128, 256]
    assert type(model.heads["parts"]).__name__ == "ASPPHead"
    assert create_model("squadnet_small", tasks="pascal_context", width=8, head="light").num_shared == 2


def test_depths_per_size():
    for name, depth in [("squadnet_tiny", 2), ("squadnet_small", 4), ("squadnet_base", 8)]:
        model = create_model(name, tasks="nyud")
        assert [len(stage) for stage in model.encoder.stages] == [depth] * 3


def test_head_reads_own_chunk_and_shared_chunks():
    model = create_model("squadnet_tiny", tasks="nyud", head="light", num_shared=2)
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


def test_channel_shuffle_keeps_channels_last():
    x = torch.randn(2, 12, 5, 7).contiguous(memory_format=torch.channels_last)
    out = channel_shuffle(x, 3)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, channel_shuffle(x.contiguous(), 3))


def test_channels_last_model_computes_the_same_and_stays_channels_last():
    """``model.to(memory_format=torch.channels_last)``: the same outputs (float64), every stage channels-last."""
    torch.manual_seed(0)
    model = create_model("squadnet_tiny", tasks="nyud", width=8, head_width=32).double().eval()
    _randomise_norms(model)
    x = torch.randn(2, 3, 32, 40, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        features = model.encode(x).features
        outputs = model(x)
    assert all(f.is_contiguous(memory_format=torch.channels_last) and not f.is_contiguous() for f in features)
    for task, out in expected.items():
        assert _max_diff(outputs[task], out) < 1e-10, task


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


# --- the released SquadNet structure (methods.md section 1.2), transcribed from torch.nn primitives ---------------


def _ffn(c):
    """Released point-wise FFN (mlp_ratio 1): 1x1, BN, GELU -> depthwise 3x3, BN -> 1x1, BN, GELU."""
    return nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.GELU(),
                         nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.GELU())


def _shuffle(x, groups):
    """ShuffleNet shuffle as an index permutation: output channel j*groups+g is input channel g*(C/groups)+j."""
    c = x.shape[1]
    return x[:, torch.arange(c).reshape(groups, c // groups).t().reshape(-1)]


class _RefDownsample(nn.Module):
    def __init__(self, c, groups, shuffle, residual=False):
        super().__init__()
        self.groups, self.shuffle, self.residual = groups, shuffle, residual
        self.branch_a = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1, groups=c, bias=False), nn.BatchNorm2d(c),
                                      nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.GELU())
        self.branch_b = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.GELU(),
                                      nn.Conv2d(c, c, 3, 2, 1, groups=c, bias=False), nn.BatchNorm2d(c),
                                      nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.GELU())
        self.ffn = _ffn(2 * c)

    def forward(self, x):
        y = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        if self.shuffle:
            y = _shuffle(y, self.groups)
        return y + self.ffn(y) if self.residual else self.ffn(y)


class _RefBlock(nn.Module):
    def __init__(self, num_tasks, num_shared, c, shuffle):
        super().__init__()
        self.num_tasks, self.num_shared, self.c, self.shuffle = num_tasks, num_shared, c, shuffle
        self.experts = nn.ModuleList([_ffn(c) for _ in range(num_tasks)])
        self.ffn = _ffn((num_tasks + num_shared) * c)

    def forward(self, x):
        parts = list(torch.split(x, self.c, dim=1))
        tasks, shared = parts[:self.num_tasks], parts[self.num_tasks:]
        y = torch.cat([expert(part) for expert, part in zip(self.experts, tasks, strict=True)] + shared, dim=1)
        if self.shuffle:
            y = _shuffle(y, self.num_tasks + self.num_shared)
        return x + self.ffn(y)


class _RefDeepLabHead(nn.Module):
    """torchvision-style DeepLabHead: ASPP (1x1, three atrous 3x3, pooling with BN), dropout 0.5, 3x3, 1x1."""

    def __init__(self, cin, cout, width=256, rates=(12, 24, 36)):
        super().__init__()
        self.aspp = nn.ModuleList([nn.Sequential(nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width),
                                                 nn.ReLU())])
        for r in rates:
            self.aspp.append(nn.Sequential(nn.Conv2d(cin, width, 3, padding=r, dilation=r, bias=False),
                                           nn.BatchNorm2d(width), nn.ReLU()))
        self.pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, width, 1, bias=False),
                                     nn.BatchNorm2d(width), nn.ReLU())
        self.project = nn.Sequential(nn.Conv2d(width * (len(rates) + 2), width, 1, bias=False),
                                     nn.BatchNorm2d(width), nn.ReLU(), nn.Dropout(0.5))
        self.conv = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.out = nn.Conv2d(width, cout, 1)

    def forward(self, x, size):
        pooled = F.interpolate(self.pooling(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        y = self.project(torch.cat([branch(x) for branch in self.aspp] + [pooled], dim=1))
        return F.interpolate(self.out(self.conv(y)), size=size, mode="bilinear", align_corners=False)


class _RefSquadNet(nn.Module):
    """Stem, stages of blocks with a downsampling layer after stages 0 and 1, DeepLab heads on chunk t + shared."""

    def __init__(self, channels, num_shared, width, depths, shuffle, head_width):
        super().__init__()
        num_tasks, parts = len(channels), len(channels) + num_shared
        self.num_tasks, self.parts = num_tasks, parts
        c = parts * width
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.GELU(),
                                  nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c), nn.GELU(),
                                  nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.GELU())
        self.stages, self.downsamples = nn.ModuleList(), nn.ModuleList()
        for i, depth in enumerate(depths):
            self.stages.append(nn.Sequential(*[_RefBlock(num_tasks, num_shared, width * 2**i, shuffle[i])
                                               for _ in range(depth)]))
            if i < len(depths) - 1:
                self.downsamples.append(_RefDownsample(parts * width * 2**i, 2 * parts, shuffle[i]))
        cin = (1 + num_shared) * width * 2 ** (len(depths) - 1)
        self.heads = nn.ModuleList([_RefDeepLabHead(cin, cout, head_width) for cout in channels])

    def forward(self, x):
        size = x.shape[-2:]
        y = self.stem(x)
        for i, stage in enumerate(self.stages):
            y = stage(y)
            if i < len(self.downsamples):
                y = self.downsamples[i](y)
        chunks = torch.chunk(y, self.parts, dim=1)
        return [head(torch.cat([chunks[t], *chunks[self.num_tasks:]], dim=1), size)
                for t, head in enumerate(self.heads)]


def _load_in_order(module, tensors):
    """Copy ``tensors`` into ``module``'s state in registration order (shapes must agree one to one)."""
    keys = list(module.state_dict())
    assert len(keys) == len(tensors), (len(keys), len(tensors))
    assert all(module.state_dict()[k].shape == v.shape for k, v in zip(keys, tensors, strict=True))
    module.load_state_dict(dict(zip(keys, tensors, strict=True)))


def _values(module):
    return list(module.state_dict().values())


def _load_squadnet(ref, model):
    """Package SquadNet weights -> the transcription; the fused experts' tensors are cut into per-task slices."""
    _load_in_order(ref.stem, _values(model.encoder.stem))
    for ref_stage, stage in zip(ref.stages, model.encoder.stages, strict=True):
        for ref_block, block in zip(ref_stage, stage, strict=True):
            fused = _values(block.experts)
            for t, expert in enumerate(ref_block.experts):
                _load_in_order(expert, [v.chunk(ref.num_tasks)[t] if v.dim() else v for v in fused])
            _load_in_order(ref_block.ffn, _values(block.aggregate))
    for ref_down, down in zip(ref.downsamples, model.encoder.downsamples, strict=True):
        _load_in_order(ref_down, _values(down))
    for ref_head, task in zip(ref.heads, model.task_names, strict=True):
        _load_in_order(ref_head, _values(model.heads[task]))


def _max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("shuffle", [None, False, True])
@pytest.mark.parametrize("residual", [False, True])
def test_downsample_matches_release_transcription(shuffle, residual):
    """The layer after stage i shuffles iff stage i does, and returns the aggregation (no residual unless asked)."""
    torch.manual_seed(0)
    kwargs = {} if shuffle is None else {"shuffle": shuffle}
    model = create_model("squadnet_tiny", tasks="nyud", width=8, head="light", downsample_residual=residual,
                         **kwargs).double().eval()
    _randomise_norms(model)
    flags = (True, True, False) if shuffle is None else (shuffle,) * 3
    parts = model.num_parts
    for i, down in enumerate(model.encoder.downsamples):
        ref = _RefDownsample(parts * 8 * 2**i, 2 * parts, flags[i], residual).double().eval()
        _load_in_order(ref, _values(down))
        x = torch.randn(2, parts * 8 * 2**i, 12, 16, dtype=torch.float64)
        assert _max_diff(down(x), ref(x)) < 1e-10


@pytest.mark.parametrize("shuffle", [None, False])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("checkpoint_experts", [False, True])
def test_squadnet_tiny_forward_matches_release_transcription(shuffle, train, checkpoint_experts):
    """Whole squadnet_tiny with its default (release DeepLab-v3) heads, BN and dropout in both modes (and with the
    expert blocks checkpointed, which must not change what is computed)."""
    torch.manual_seed(0)
    kwargs = {} if shuffle is None else {"shuffle": shuffle}
    kwargs["checkpoint_experts"] = checkpoint_experts
    model = create_model("squadnet_tiny", tasks="nyud", width=8, head_width=32, **kwargs).double()
    _randomise_norms(model)
    flags = (True, True, False) if shuffle is None else (shuffle,) * 3
    ref = _RefSquadNet([t.channels for t in model.tasks], 1, 8, (2, 2, 2), flags, 32).double()
    _load_squadnet(ref, model)
    model.train(train)
    ref.train(train)
    x = torch.randn(2, 3, 64, 80, dtype=torch.float64)
    torch.manual_seed(1)
    outputs = model(x)
    torch.manual_seed(1)
    expected = ref(x)
    for task, out in zip(model.task_names, expected, strict=True):
        assert _max_diff(outputs[task], out) < 1e-10, task


@pytest.mark.parametrize("train", [False, True])
def test_default_head_is_release_deeplab_v3(train):
    """Rates 12/24/36 (a 40x40 map, so every rate reaches inside), pooling BN, dropout 0.5, width 256."""
    torch.manual_seed(0)
    model = create_model("squadnet_tiny", tasks="nyud", width=8).double()
    head = model.heads["semseg"]
    _randomise_norms(head)
    ref = _RefDeepLabHead(64, model.task("semseg").channels).double()
    _load_in_order(ref, _values(head))
    head.train(train)
    ref.train(train)
    x = torch.randn(2, 64, 40, 40, dtype=torch.float64)
    torch.manual_seed(1)
    out = head([x], (60, 60))
    torch.manual_seed(1)
    assert _max_diff(out, ref(x, (60, 60))) < 1e-10
