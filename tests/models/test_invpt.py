"""invpt_*: ViT encoder + joint inverted-pyramid transformer decoder with deep supervision (Ye & Xu, ECCV 2022)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from family_checks import (
    TASKS,
    balancer_steps,
    batch,
    check_feature_level_on_the_encoder,
    check_info,
    check_partition,
    check_private_gradients,
    check_round_trips,
    train_config_losses,
)

import mtlzoo
from mtlzoo.models.invpt_decoder import JointAttention


def _targets(data):
    return {k: v for k, v in data.items() if k != "image"}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mtlzoo.create_model("invpt_tiny", tasks=TASKS)


def _attention_by_hand(x, attn, tasks, hw):
    """softmax(Q K^T / sqrt(d)) V per head, keys / values from each task's map average-pooled in numpy."""
    x = x.detach().double().numpy()[0]
    w = {name: p.detach().double().numpy() for name, p in attn.named_parameters()}
    h, wd = hw
    dim = x.shape[-1]
    source = x
    if attn.kv_stride > 1:
        s = attn.kv_stride
        maps = x.reshape(tasks, h // s, s, wd // s, s, dim).mean(axis=(2, 4)).reshape(-1, dim)
        mu, var = maps.mean(-1, keepdims=True), maps.var(-1, keepdims=True)
        source = (maps - mu) / np.sqrt(var + 1e-5) * w["kv_norm.weight"] + w["kv_norm.bias"]
    q = x @ w["q.weight"].T + w["q.bias"]
    kv = source @ w["kv.weight"].T + w["kv.bias"]
    k, v = kv[:, :dim], kv[:, dim:]
    heads, out = attn.heads, []
    d = dim // heads
    for i in range(heads):
        qi, ki, vi = q[:, i * d:(i + 1) * d], k[:, i * d:(i + 1) * d], v[:, i * d:(i + 1) * d]
        logits = qi @ ki.T / math.sqrt(d)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        out.append((weights / weights.sum(-1, keepdims=True)) @ vi)
    return np.concatenate(out, -1) @ w["proj.weight"].T + w["proj.bias"]


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_joint_attention_matches_the_equation(kv_stride):
    """Every token of every task attends to all tasks' (pooled) tokens."""
    torch.manual_seed(0)
    attn = JointAttention(8, 2, kv_stride).double()
    tasks, hw = 3, (4, 4)
    x = torch.randn(1, tasks * 16, 8, dtype=torch.float64)
    got = attn(x, tasks, hw).detach().numpy()[0]
    np.testing.assert_allclose(got, _attention_by_hand(x, attn, tasks, hw), rtol=1e-9, atol=1e-10)


def test_decoder_mixes_tasks_and_grows_the_resolution(model):
    """One task's preliminary decoder changes every task's output; the decoder ends at 4x the patch grid."""
    model.eval()
    x = batch()["image"]
    rep = model.encode(x)
    grid = math.ceil(32 / 16)
    assert [tuple(f.shape) for f in rep.features] == [(2, 64, grid, grid)] * 3  # the ViT layers l1, l2, l3
    decoded = model.task_features(rep)
    assert [tuple(f.shape) for f in decoded[:3]] == [(2, 16, 4 * grid, 4 * grid)] * 3
    assert [tuple(f.shape[1:]) for f in decoded[3:]] == [(5, grid, grid), (1, grid, grid), (3, grid, grid)]
    before = model(x)
    with torch.no_grad():
        model.preliminary["depth"][0][0].weight.mul_(1.5)
    after = model(x)
    for task in model.task_names:
        assert not torch.allclose(before[task], after[task]), task


def test_losses_fold_the_deep_supervision_terms():
    """loss_t = L(final_t) + w * L(preliminary_t), computed here with F.cross_entropy / the L1 on valid pixels."""
    torch.manual_seed(0)
    tasks = [{"name": "semseg", "kind": "segmentation", "channels": 5}, {"name": "depth", "kind": "depth"}]
    model = mtlzoo.create_model("invpt_tiny", tasks=tasks, aux_weight=0.4)
    data = batch()
    outputs = model(data["image"])
    assert set(outputs.auxiliary) == {"semseg", "depth"}
    assert outputs.auxiliary["semseg"].shape == outputs["semseg"].shape
    losses = model.losses(outputs, _targets(data))
    semseg = F.cross_entropy(outputs["semseg"], data["semseg"]) + 0.4 * F.cross_entropy(
        outputs.auxiliary["semseg"], data["semseg"])
    valid = data["depth"] > 0
    depth = (outputs["depth"] - data["depth"]).abs()[valid].mean() + 0.4 * (
        outputs.auxiliary["depth"] - data["depth"]).abs()[valid].mean()
    assert torch.allclose(losses["semseg"], semseg, rtol=1e-5)
    assert torch.allclose(losses["depth"], depth, rtol=1e-5)


def test_plain_output_dicts_are_refused_unless_aux_weight_is_zero(model):
    """ius / io run only some heads through forward_tasks (a plain dict): the rule refuses the model when it is
    built (so a benchmark sweep records the pair as not applicable), the losses refuse a plain dict, and
    aux_weight=0 trains."""
    data = batch()
    optimizer = lambda params: torch.optim.SGD(params, lr=1e-3)  # noqa: E731
    for mode in ("ius", "io"):
        with pytest.raises(TypeError, match=f"{mode} runs each task group.*aux_weight=1.0"):
            mtlzoo.create_update_rule(mode, model, optimizer)
    with pytest.raises(ValueError, match="deep-supervision"):
        model.losses({t: v for t, v in model(data["image"]).items()}, data)
    plain = mtlzoo.create_model("invpt_tiny", tasks=TASKS, aux_weight=0)
    info = mtlzoo.create_update_rule("ius", plain, optimizer).step(data)
    assert set(info.losses) == set(plain.task_names)


def test_groups_and_private_gradients(model):
    check_partition(model)
    heads = {id(p) for p in model.heads.parameters()}
    assert {id(p) for p in model.shared_parameters()} == {id(p) for p in model.parameters()} - heads
    check_private_gradients(model)


def test_feature_level_reaches_every_shared_parameter(model):
    """At the feature level (on the ViT layers) the decoder, shared after the representation, is trained too."""
    data = batch()
    balancer = mtlzoo.create_balancer("upgrad", level="features")
    rep = model.encode(data["image"])
    balancer.backward(model.losses(model.decode(rep), _targets(data)), model, features=rep.features)
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_feature_level_balances_the_vit_output(model):
    encoder = {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in model.decoder_shared_parameters()} == {
        id(p) for p in model.shared_parameters()} - encoder
    check_feature_level_on_the_encoder(model)


def test_info_gives_parameters_and_flops():
    check_info("invpt_tiny")


def test_round_trips(model, tmp_path):
    check_round_trips(model, tmp_path)


def test_torch_hub_round_trip(model, tmp_path):
    """torch.hub (source='local', this checkout's hubconf.py) builds the same model and loads a saved one."""
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[2])
    built = torch.hub.load(repo, "invpt_tiny", source="local", tasks=TASKS)
    assert built.config == model.config
    model.eval().save_pretrained(tmp_path / "invpt")
    loaded = torch.hub.load(repo, "from_pretrained", str(tmp_path / "invpt"), source="local").eval()
    x = batch()["image"]
    with torch.no_grad():
        expected, got = model(x), loaded(x)
    assert all(torch.equal(expected[t], got[t]) for t in model.task_names)


def test_any_input_size(model):
    model.eval()
    for size in [(37, 50), (64, 48)]:
        out = model(torch.randn(1, 3, *size))
        assert all(v.shape[-2:] == size for v in out.values())


def test_bad_arguments_are_refused(model):
    with pytest.raises(ValueError, match="not dense"):
        mtlzoo.create_model("invpt_tiny", tasks=TASKS + [{"name": "scene", "kind": "classification", "channels": 4}])
    for bad in (-1, True, float("nan")):
        with pytest.raises(ValueError, match="aux_weight"):
            mtlzoo.create_model("invpt_tiny", tasks=TASKS, aux_weight=bad)
    with pytest.raises(ValueError, match="one entry per stage"):
        mtlzoo.create_model("invpt_tiny", tasks=TASKS, num_heads=(2, 2))
    with pytest.raises(ValueError, match="jointly"):
        model.add_task({"name": "edge", "kind": "edge"})
    with pytest.raises(ValueError, match="jointly"):
        model.remove_task("depth")
    with pytest.raises(ValueError, match="plain timm ViT"):
        mtlzoo.create_model("invpt", tasks=TASKS, encoder="resnet18")
    with pytest.raises(ValueError, match="no pretrained weights"):
        mtlzoo.create_model("invpt_tiny", tasks=TASKS, encoder_weights="imagenet")


def test_offline_vit_weights_say_what_to_prefetch(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("torch.hub._hub_dir", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match=r"ViT 'vit_small_patch16_224'.*offline.*`hf download timm/vit_small"):
        mtlzoo.create_model("invpt_vit_small", tasks=TASKS, encoder_weights="imagenet")


def test_bf16_autocast(model):
    data = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(data["image"])
        losses = model.losses(outputs, _targets(data))
    assert outputs["semseg"].dtype == torch.bfloat16
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("method", ["pcgrad", "mgda_ub"])
def test_trainer_under_bf16_autocast(method, tmp_path):
    """train.amp=bf16 through the Trainer with a parameter-level and a feature-level balancer: no step skipped."""
    from mtlzoo.config import load_config, resolve_config_path
    from mtlzoo.train.run import build_trainer

    overrides = [f"train.out_dir={tmp_path}", "train.steps=3", "train.eval_every=3", "train.log_every=1",
                 "train.progress=false", "train.amp=bf16", f"method.name={method}", "data.batch_size=2",
                 "data.kwargs={size: [32, 48], length: 8}", "schedule.warmup_steps=0"]
    trainer = build_trainer(load_config(resolve_config_path("synthscenes_invpt"), overrides))
    trainer.evaluation.data = None
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    assert [r["skipped_steps"] for r in trainer.history] == [0, 0, 0]
    assert all(math.isfinite(v) for r in trainer.history for v in r["losses"].values())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


@pytest.mark.parametrize("name,vit,params", [("invpt_vit_small", "vit_small_patch16_224", 39_983_010),
                                             ("invpt_vit_base", "vit_base_patch16_224", 158_335_746)])
def test_parameter_counts_on_pascal_context(name, vit, params):
    """The figures docs/zoo.md states next to the paper's (5 PASCAL-Context tasks); the encoder is timm's ViT
    less its final norm (the decoder reads un-normalised block outputs)."""
    import timm

    with torch.device("meta"):
        model = mtlzoo.create_model(name, tasks="pascal_context")
        reference = timm.create_model(vit, num_classes=0)
    assert sum(p.numel() for p in model.parameters()) == params
    final_norm = sum(p.numel() for p in reference.norm.parameters())
    assert sum(p.numel() for p in model.encoder.parameters()) == sum(p.numel() for p in reference.parameters()) - \
        final_norm
    check_partition(model)


@pytest.mark.parametrize("balancer", mtlzoo.list_balancers())
def test_every_balancer_steps(balancer):
    """Every registered balancer (the *_ub ones at the feature level, the others at the parameter level)."""
    balancer_steps("invpt_tiny", balancer)


def test_config_trains_and_the_loss_falls(tmp_path):
    totals = train_config_losses("synthscenes_invpt", tmp_path)
    assert np.mean(totals[-6:]) < 0.9 * np.mean(totals[:6])
