"""Gated-expert families (MMoE, CGC, PLE, DSelect-k) on images and vectors: contract, ownership, gates by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import mtlzoo
from mtlzoo.models import create_model, create_model_from_config
from mtlzoo.models.experts import DSelectKSelector, binary_codes, smooth_step

REPO = Path(__file__).resolve().parents[2]
FAMILIES = ["mmoe", "cgc", "ple", "dselectk"]
VECTOR_TASKS = [{"name": "a", "kind": "regression"}, {"name": "b", "kind": "classification", "channels": 3},
                {"name": "c", "kind": "regression", "loss": "mse"}]
IMAGE_TASKS = [{"name": "semseg", "kind": "segmentation", "channels": 5}, {"name": "depth", "kind": "depth"},
               {"name": "edge", "kind": "edge"}]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(name: str, **kwargs):
    torch.manual_seed(0)
    tasks = VECTOR_TASKS if name.endswith("_mlp") else IMAGE_TASKS
    return create_model(name, tasks=tasks, **kwargs)


def _input(model, batch: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if hasattr(model, "input_dim"):
        return torch.randn(batch, model.input_dim, generator=g)
    return torch.randn(batch, 3, 32, 32, generator=g)


def _targets(model, batch: int = 4, seed: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if hasattr(model, "input_dim"):
        return {"a": torch.randn(batch, generator=g), "b": torch.randint(0, 3, (batch,), generator=g),
                "c": torch.randn(batch, generator=g)}
    return {"semseg": torch.randint(0, 5, (batch, 32, 32), generator=g),
            "depth": torch.rand(batch, 1, 32, 32, generator=g) + 0.5,
            "edge": (torch.rand(batch, 1, 32, 32, generator=g) > 0.8).float()}


ALL = [f"{f}_{s}" for f in FAMILIES for s in ("tiny", "mlp")]
# a third PLE level exercises the intermediate shared gates and the ownership rule below the top
VARIANTS = [(n, {}) for n in ALL] + [("ple_mlp", {"num_levels": 3}), ("ple_tiny", {"num_levels": 3})]


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
def test_parameters_partition_and_private_parameters_get_only_their_task_gradient(name, kwargs):
    model = _build(name, **kwargs)
    owned = {t: {id(p) for p in model.task_parameters(t)} for t in model.task_names}
    shared = {id(p) for p in model.shared_parameters()}
    all_owned = [i for ids in owned.values() for i in ids]
    assert len(all_owned) == len(set(all_owned)) and not shared & set(all_owned)
    assert len(shared) + len(all_owned) == len(list(model.parameters()))
    x, y = _input(model), _targets(model)
    reached = {}
    for task in model.task_names:
        model.zero_grad(set_to_none=True)
        loss = model.losses(model(x), y)[task]
        loss.backward()
        reached[task] = {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        others = set().union(*(owned[t] for t in model.task_names if t != task))
        assert not reached[task] & others, f"{task}'s loss reaches another task's private parameters"
        assert reached[task] & owned[task]
    # nothing is called shared that only one task's loss reaches (the split is as fine as the graph allows)
    single = [pid for pid in shared if sum(pid in reached[t] for t in model.task_names) == 1]
    assert not single, f"{len(single)} shared parameter tensors are reached by one task only"


@pytest.mark.parametrize("name", ALL)
def test_config_save_load_and_torch_hub_round_trips_give_identical_outputs(name, tmp_path):
    model = _build(name).eval()
    x = _input(model)
    with torch.no_grad():
        expected = model(x)
    rebuilt = create_model_from_config(model.config)
    rebuilt.load_state_dict(model.state_dict())
    model.save_pretrained(tmp_path / "saved")
    loaded = mtlzoo.from_pretrained(tmp_path / "saved")
    tasks = VECTOR_TASKS if name.endswith("_mlp") else IMAGE_TASKS
    hub = torch.hub.load(str(REPO), name, source="local", tasks=tasks)
    hub.load_state_dict(model.state_dict())
    for other in (rebuilt, loaded, hub):
        with torch.no_grad():
            out = other.eval()(x)
        for task, value in expected.items():
            torch.testing.assert_close(out[task], value, rtol=0, atol=0)


def test_timm_expert_stages_take_tagged_names_and_refuse_unknown_tags():
    model = create_model("mmoe_resnet18", tasks=[{"name": "depth", "kind": "depth"}], encoder="resnet18.a1_in1k",
                         output_stride=32, head="light", head_width=8)
    assert model.config["encoder"] == "resnet18.a1_in1k"
    with pytest.raises(ValueError, match="resnet18.nope.*resnet18.a1_in1k"):
        create_model("mmoe_resnet18", tasks=[{"name": "depth", "kind": "depth"}], encoder="resnet18.nope")
    with pytest.raises(ValueError, match="gated-experts encoder"):
        create_model("mmoe_resnet18", tasks=[{"name": "depth", "kind": "depth"}], encoder="convnext_tiny")


def test_config_keeps_layout_options():
    model = create_model("ple_mlp", tasks=VECTOR_TASKS, num_levels=3, input_dim=12, expert_hidden=[8, 6])
    rebuilt = create_model_from_config(model.config)
    assert len(rebuilt.encoder.levels) == 3 and rebuilt.input_dim == 12 and rebuilt.expert_hidden == [8, 6]
    assert [tuple(p.shape) for p in rebuilt.parameters()] == [tuple(p.shape) for p in model.parameters()]


def test_mmoe_mlp_equals_a_numpy_transcription_of_the_paper():
    """y_k = h_k(sum_i softmax(W_gk x)_i f_i(x)) (Ma et al. 2018, eq. 5-6), with ReLU MLP experts and towers."""
    model = create_model("mmoe_mlp", tasks=VECTOR_TASKS, input_dim=6, expert_hidden=[5], head_width=4).eval()
    x = torch.randn(3, 6)
    with torch.no_grad():
        out = model(x)
    level = model.encoder.levels[0]
    xn = x.numpy().astype(np.float64)

    def lin(layer, v):
        return v @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()

    experts = np.stack([np.maximum(lin(e.body[0], xn), 0) for e in level.shared], axis=1)  # (B, E, H)
    for task in model.task_names:
        logits = lin(level.gates[task].selector.linear, xn)
        gate = np.exp(logits - logits.max(1, keepdims=True))
        gate /= gate.sum(1, keepdims=True)
        mixed = (gate[:, :, None] * experts).sum(1)
        tower = model.heads[task].mlp
        expected = lin(tower[3], np.maximum(lin(tower[0], mixed), 0))
        np.testing.assert_allclose(out[task].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_ple_mlp_equals_a_numpy_transcription_of_the_paper():
    """PLE (Tang et al. 2020, eq. 2-6), two levels: level 1 task gates mix [task experts, shared experts] from x,
    the shared gate mixes every level-1 expert; level 2 reads those mixtures; towers read the level-2 mixtures."""
    model = create_model("ple_mlp", tasks=VECTOR_TASKS[:2], input_dim=6, expert_hidden=[5], head_width=4,
                         num_shared_experts=2, num_task_experts=2).eval()
    x = torch.randn(3, 6)
    with torch.no_grad():
        out = model(x)

    def lin(layer, v):
        return v @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def expert(e, v):
        return np.maximum(lin(e.body[0], v), 0)

    def mixture(gate, v, experts):
        return (softmax(lin(gate.selector.linear, v))[:, :, None] * np.stack(experts, 1)).sum(1)

    tasks = model.task_names
    first, second = model.encoder.levels
    xn = x.numpy().astype(np.float64)
    own = {t: [expert(e, xn) for e in first.task_experts[t]] for t in tasks}
    shared = [expert(e, xn) for e in first.shared]
    task_in = {t: mixture(first.gates[t], xn, own[t] + shared) for t in tasks}
    shared_in = mixture(first.shared_gate, xn, [o for t in tasks for o in own[t]] + shared)
    shared2 = [expert(e, shared_in) for e in second.shared]
    for t in tasks:
        top = mixture(second.gates[t], task_in[t], [expert(e, task_in[t]) for e in second.task_experts[t]] + shared2)
        tower = model.heads[t].mlp
        expected = lin(tower[3], np.maximum(lin(tower[0], top), 0))
        np.testing.assert_allclose(out[t].numpy(), expected, rtol=1e-5, atol=1e-6)


def _smooth_step_np(t, gamma):
    return np.where(t <= -gamma / 2, 0.0, np.where(t >= gamma / 2, 1.0, -2 / gamma**3 * t**3 + 1.5 / gamma * t + 0.5))


@pytest.mark.parametrize("num_experts", [4, 5])
def test_dselect_gate_equals_a_transcription_of_the_paper(num_experts):
    """Hazimeh et al. 2021: r(z)_l = prod_j (S(z_j) if bit j of l else 1 - S(z_j)); a = sum_i softmax(w)_i r(z_i)."""
    torch.manual_seed(0)
    gate = DSelectKSelector(7, num_experts, k=3, gamma=2.0).eval()
    torch.nn.init.normal_(gate.z_logits.weight, std=1.0)
    x = torch.randn(6, 7)
    with torch.no_grad():
        weights = gate(x).numpy()
    xn = x.numpy().astype(np.float64)
    m = int(np.ceil(np.log2(num_experts)))
    z = (xn @ gate.z_logits.weight.detach().numpy().T + gate.z_logits.bias.detach().numpy()).reshape(6, 3, m)
    w = xn @ gate.w_logits.weight.detach().numpy().T + gate.w_logits.bias.detach().numpy()
    w = np.exp(w - w.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    s = _smooth_step_np(z, 2.0)
    expected = np.zeros((6, num_experts))
    for b in range(6):
        for i in range(3):
            for expert in range(num_experts):
                bits = [int(c) for c in format(expert, f"0{m}b")]
                r = np.prod([s[b, i, j] if bit else 1 - s[b, i, j] for j, bit in enumerate(bits)])
                expected[b, expert] += w[b, i] * r
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)


def test_dselect_is_k_sparse_once_the_smooth_steps_saturate_and_sums_to_one():
    gate = DSelectKSelector(4, 8, k=2, gamma=1.0)
    with torch.no_grad():
        gate.z_logits.weight.zero_()
        gate.z_logits.bias.copy_(torch.tensor([5.0, -5.0, 5.0, -5.0, -5.0, -5.0]))  # experts 0b101 = 5 and 0b000 = 0
        weights = gate(torch.randn(3, 4))
    assert ((weights > 0).sum(dim=1) == 2).all() and (weights[:, [0, 5]] > 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    assert smooth_step(torch.tensor([-0.6, 0.0, 0.6]), 1.0).tolist() == [0.0, 0.5, 1.0]
    assert binary_codes(5).int().tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0]]


def test_dselect_regularisers_enter_the_task_loss_in_training_only():
    model = create_model("dselectk_mlp", tasks=VECTOR_TASKS, num_shared_experts=5, entropy_reg=0.1)
    x, y = _input(model), _targets(model)
    plain = create_model("dselectk_mlp", tasks=VECTOR_TASKS, num_shared_experts=5)
    plain.load_state_dict(model.state_dict())
    regularised, baseline = model.losses(model(x), y), plain.losses(plain(x), y)
    for task in model.task_names:
        assert regularised[task] > baseline[task]  # entropy of non-one-hot selectors is positive
    model.eval()
    with torch.no_grad():
        evaluated = model.losses(model(x), y)
    plain.eval()
    with torch.no_grad():
        reference = plain.losses(plain(x), y)
    for task in model.task_names:
        torch.testing.assert_close(evaluated[task], reference[task])


@pytest.mark.parametrize("name", ALL)
def test_gate_weights_are_distributions_per_task_and_level(name):
    model = _build(name)
    model(_input(model))
    usage = model.gate_weights()
    assert set(model.task_names) <= set(usage)
    for gate, levels in usage.items():
        for level, weights in levels.items():
            assert abs(sum(weights.values()) - 1.0) < 1e-5, (gate, level)
    task = model.task_names[0]
    top = usage[task]["level2" if name.startswith("ple") else "level1"]
    own = [f"{task}0"] if name.startswith(("cgc", "ple")) else []
    assert list(top) == own + [e for e in top if e.startswith("shared")] and "shared0" in top
    if name.startswith("ple"):  # the shared gate of level 1 mixes every expert of that level
        assert list(usage["(shared)"]["level1"]) == [f"{t}0" for t in model.task_names] + ["shared0"]
    else:
        assert "(shared)" not in usage


def test_unhappy_paths():
    with pytest.raises(ValueError, match="dense"):
        create_model("mmoe_mlp", tasks="nyud")
    with pytest.raises(ValueError, match="num_levels"):
        create_model("ple_tiny", tasks=IMAGE_TASKS, num_levels=5)
    with pytest.raises(ValueError, match="resnet18"):
        create_model("mmoe_tiny", tasks=IMAGE_TASKS, encoder="resnet_18")
    with pytest.raises(ValueError, match="gate must be one of"):
        create_model("mmoe_mlp", tasks=VECTOR_TASKS, gate="topk")
    with pytest.raises(ValueError, match="num_shared_experts >= 1"):
        create_model("cgc_mlp", tasks=VECTOR_TASKS, num_shared_experts=0)
    with pytest.raises(ValueError, match="k must lie"):
        create_model("dselectk_mlp", tasks=VECTOR_TASKS, dselect_k=9)
    model = create_model("cgc_mlp", tasks=VECTOR_TASKS)
    with pytest.raises(ValueError, match="rebuild the model"):
        model.add_task({"name": "d", "kind": "regression"})
    with pytest.raises(ValueError, match=r"expects vectors of shape \(B, 100\)"):
        model(torch.randn(2, 99))


def test_mmoe_add_and_remove_task():
    model = _build("mmoe_tiny")
    model.add_task({"name": "saliency", "kind": "saliency"})
    out = model(_input(model))
    assert out["saliency"].shape == (4, 1, 32, 32) and "saliency" in model.gate_weights()
    assert {id(p) for p in model.encoder.levels[0].gates["saliency"].parameters()} <= \
        {id(p) for p in model.task_parameters("saliency")}
    model.remove_task("depth")
    assert "depth" not in model.encoder.levels[0].gates and list(model(_input(model))) == ["semseg", "edge",
                                                                                         "saliency"]


@pytest.mark.parametrize("name", ["mmoe_mlp", "ple_tiny"])
def test_model_info_counts_parameters_and_flops(name):
    from mtlzoo.models.info import format_info, model_info

    tasks = VECTOR_TASKS if name.endswith("_mlp") else IMAGE_TASKS
    info = model_info(name, tasks=tasks, input_size=(64, 64))
    model = _build(name)
    assert info["params"] == sum(p.numel() for p in model.parameters()) and info["flops"] > 0
    assert info["params_shared"] + sum(info["params_per_task"].values()) == info["params"]
    if name == "mmoe_mlp":  # 4 experts 100->64, 3 gates 100->4, towers 64->32->out: 2 FLOPs per multiply-add
        assert info["input_size"] == [100]
        assert info["flops"] == 2 * (4 * 100 * 64 + 3 * 100 * 4 + 3 * 64 * 32 + 32 * (1 + 3 + 1))
        assert info["flops_encoder"] == 2 * 4 * 100 * 64  # the shared part: the experts
        assert info["flops_per_task_head"] == {"a": 2 * 32 * 65, "b": 2 * 32 * 67, "c": 2 * 32 * 65}
    assert 0 < info["flops_encoder"] + sum(info["flops_per_task_head"].values()) < info["flops"]
    assert name in format_info(info)


def test_docs_zoo_table_lists_every_gated_model_with_its_size(monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks_gated", REPO / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    names = [f"{f}_{s}" for f in FAMILIES for s in ("tiny", "mlp")]  # resnet18 rows: same code, slower
    monkeypatch.setattr(mtlzoo, "list_models", lambda pattern="*", pretrained=False: [] if pretrained else names)
    rows = {line.split("|")[1].strip().strip("`"): line for line in hooks.zoo_table().splitlines()[2:]}
    assert sorted(rows) == sorted(names)
    for name in ("mmoe_mlp", "ple_tiny"):
        tasks = hooks.ZOO_VECTOR_TASKS if name.endswith("_mlp") else hooks.ZOO_TASKS
        params = sum(p.numel() for p in create_model(name, tasks=tasks).parameters())
        assert f"| {params / 1e6:.2f} |" in rows[name]
