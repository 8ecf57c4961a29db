"""Every update rule skips an optimizer step whose loss is NaN or inf, for every parameter, and reports it."""

import copy

import pytest
import torch
from scheme_toys import make_batch

from mtlzoo.models import create_model
from mtlzoo.schemes import create_update_rule

CASES = [("ew", "hps_tiny", {}), ("uw", "hps_tiny", {}), ("pcgrad", "hps_tiny", {}),
         ("ius", "hps_tiny", {"group_size": 1}), ("io", "hps_tiny", {"group_size": 2}),
         ("cs_two_phase", "cs_tiny", {"schedule": "phase1"}), ("cs_two_phase", "cs_tiny", {"schedule": "phase2"})]


def _poison(model, task, value):
    """Make ``task``'s loss NaN or inf (multiplied in, so the graph still reaches every parameter)."""
    original = model.losses

    def losses(outputs, targets):
        out = original(outputs, targets)
        if task in out:
            out[task] = out[task] * value
        return out

    model.losses = losses


def _state(model, rule):
    """Parameters and optimizer states (BN running statistics move in the forward, before any loss exists)."""
    return ({k: v.detach().clone() for k, v in model.named_parameters()},
            copy.deepcopy([o.state_dict()["state"] for o in rule.optimizers]))


def _assert_same(a, b):
    for k in a[0]:
        assert torch.equal(a[0][k], b[0][k]), k
    assert len(a[1]) == len(b[1])
    for sa, sb in zip(a[1], b[1], strict=True):
        assert sa.keys() == sb.keys()
        for p in sa:
            for name in sa[p]:
                assert torch.equal(torch.as_tensor(sa[p][name]), torch.as_tensor(sb[p][name])), (p, name)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("method,arch,kwargs", CASES)
def test_a_non_finite_loss_skips_every_optimizer_step_of_the_rule(method, arch, kwargs, bad):
    torch.manual_seed(0)
    model = create_model(arch, tasks="nyud")
    rule = create_update_rule(method, model, lambda params: torch.optim.Adam(params, lr=1e-2), **kwargs)
    batch = make_batch()
    assert rule.step(batch, 0, 1, clip_grad=1.0).skipped == 0
    before = _state(model, rule)
    _poison(model, "depth", bad)
    result = rule.step(batch, 0, 1, clip_grad=1.0)
    # every optimizer step that saw the depth loss was skipped; the others (other task groups) may be taken
    assert result.skipped >= 1
    if method not in ("ius", "io", "cs_two_phase") or kwargs.get("schedule") == "phase2":
        _assert_same(before, _state(model, rule))
    for p in model.parameters():
        assert torch.isfinite(p).all() and (p.grad is None or torch.isfinite(p.grad).all())


@pytest.mark.parametrize("method,arch,kwargs", CASES[3:6])
def test_multi_step_rules_skip_only_the_poisoned_group(method, arch, kwargs):
    """A NaN loss of one task leaves the other groups' steps intact: they match a run without that task's step."""
    torch.manual_seed(0)
    model = create_model(arch, tasks="nyud")
    rule = create_update_rule(method, model, lambda params: torch.optim.SGD(params, lr=1e-2), **kwargs)
    before = {k: v.clone() for k, v in model.named_parameters()}
    _poison(model, "depth", float("nan"))
    result = rule.step(make_batch(), 0, 1)
    updates = result.info.get("updates", len(model.task_names))
    assert 1 <= result.skipped < updates
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
        if ".depth." in name:
            assert torch.equal(p, before[name]), name  # the depth head is stepped only with the depth loss
    assert any(not torch.equal(p, before[name]) for name, p in model.named_parameters())


def test_scaled_rule_skips_a_nan_step_and_lowers_the_scale():
    torch.manual_seed(0)
    model = create_model("hps_tiny", tasks="nyud")
    rule = create_update_rule("ius", model, lambda params: torch.optim.SGD(params, lr=1e-2), group_size=2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    before = _state(model, rule)
    _poison(model, "depth", float("nan"))
    result = rule.step(make_batch(), 0, 1, scaler=scaler)
    scaler.update()
    assert result.skipped == 1 and scaler.get_scale() < 2.0**8
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
    assert not all(torch.equal(before[0][k], v) for k, v in model.named_parameters())  # the good group stepped


@pytest.mark.parametrize("method,arch,kwargs", CASES)
def test_a_nan_pixel_leaves_the_norm_statistics_of_the_skipped_step_unchanged(method, arch, kwargs):
    """One NaN input pixel makes every loss NaN; the step is skipped and BatchNorm's running mean / var and
    counters stay bit-identical (they would otherwise hold NaN for good)."""
    torch.manual_seed(0)
    model = create_model(arch, tasks="nyud").train()
    rule = create_update_rule(method, model, lambda params: torch.optim.Adam(params, lr=1e-2), **kwargs)
    assert rule.step(make_batch(), 0, 1).skipped == 0
    before = {name: value.clone() for name, value in model.named_buffers()}
    assert any(name.endswith("running_mean") for name in before)
    batch = make_batch(seed=1)
    batch["image"][0, 1, 3, 4] = float("nan")
    assert rule.step(batch, 0, 1).skipped >= 1
    for name, value in model.named_buffers():
        assert torch.equal(value, before[name]), name
    assert rule.step(make_batch(seed=2), 0, 1).skipped == 0  # a good step after it updates them again
    assert any(not torch.equal(value, before[name]) for name, value in model.named_buffers())
