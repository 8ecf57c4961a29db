"""SquadNet ``checkpoint_experts=True``: the same outputs, gradients and batch-norm statistics as the default,
under a plain backward and under the gradient engine's batched and looped Jacobians; rebuilt from its config."""

import pytest
import torch

import mtlzoo
from mtlzoo.models import create_model, create_model_from_config

TASKS = "nyud"


def _pair(**kwargs):
    """The default model and a checkpointed copy holding the same weights and statistics."""
    torch.manual_seed(0)
    plain = create_model("squadnet_tiny", tasks=TASKS, width=8, head="light", **kwargs)
    for m in plain.modules():  # non-trivial norm parameters and statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.5, 0.5)
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    ckpt = create_model("squadnet_tiny", tasks=TASKS, width=8, head="light", checkpoint_experts=True, **kwargs)
    ckpt.load_state_dict(plain.state_dict())
    return plain, ckpt


def _batch(model, n=2, size=(32, 48)):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, *size, generator=g)
    y = {t.name: t.spec.example_target(t, n, size, g) for t in model.tasks}
    return x, y


def _assert_same_state(plain, ckpt, grads=True, rtol=1e-6):
    for (name, a), b in zip(plain.state_dict().items(), ckpt.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    if grads:
        for (name, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
            assert (a.grad is None) == (b.grad is None), name
            if a.grad is not None:
                torch.testing.assert_close(b.grad, a.grad, rtol=rtol, atol=1e-6, msg=name)


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_checkpointed_training_step_equals_the_default(norm):
    plain, ckpt = _pair(norm=norm)
    x, y = _batch(plain)
    outputs = {}
    for model in (plain, ckpt):
        model.train()
        out = model(x)
        sum(model.losses(out, y).values()).backward()
        outputs[model is ckpt] = out
    for task, out in outputs[False].items():
        assert torch.equal(out, outputs[True][task]), task
    _assert_same_state(plain, ckpt)  # running statistics updated once, as by the default


@pytest.mark.parametrize("mode", ["batched", "loop"])
def test_checkpointed_model_under_a_gradient_balancer(mode):
    """The engine's T backward passes (looped) or one batched pass each recompute the blocks: same gradients, and
    the statistics are not updated again by any recomputation."""
    plain, ckpt = _pair()
    x, y = _batch(plain, size=(16, 24))
    for model in (plain, ckpt):
        model.train()
        rep = model.encode(x)
        losses = model.losses(model.decode(rep), y)
        balancer = mtlzoo.create_balancer("upgrad", jacobian_mode=mode)
        balancer.backward(losses, model, features=rep.features)
    _assert_same_state(plain, ckpt)


def test_checkpointing_only_while_gradients_are_on():
    plain, ckpt = _pair()
    x, _ = _batch(plain)
    for train in (False, True):
        plain.train(train)
        ckpt.train(train)
        with torch.no_grad():
            expected, got = plain(x), ckpt(x)
        assert all(torch.equal(out, got[task]) for task, out in expected.items())
    _assert_same_state(plain, ckpt, grads=False)


def test_checkpoint_experts_is_in_the_config():
    model = create_model("squadnet_tiny", tasks=TASKS, width=8, head="light", checkpoint_experts=True)
    assert model.config["checkpoint_experts"] is True
    rebuilt = create_model_from_config(model.config)
    assert rebuilt.encoder.checkpoint_experts is True
    assert rebuilt.state_dict().keys() == create_model("squadnet_tiny", tasks=TASKS, width=8,
                                                       head="light").state_dict().keys()
    assert create_model("squadnet_tiny", tasks=TASKS, width=8, head="light").encoder.checkpoint_experts is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_checkpointed_training_step_on_cuda():
    """On the device too (deterministic cuDNN, no TF32): the checkpointed step matches the default."""
    flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32 = True, False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        plain, ckpt = (m.cuda().train() for m in _pair())
        x, y = _batch(plain)
        x, y = x.cuda(), {k: v.cuda() for k, v in y.items()}
        outputs = []
        for model in (plain, ckpt):
            out = model(x)
            sum(model.losses(out, y).values()).backward()
            outputs.append(out)
        for task, out in outputs[0].items():
            torch.testing.assert_close(outputs[1][task], out, rtol=1e-6, atol=1e-6)
        _assert_same_state(plain, ckpt, rtol=1e-5)
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32 = flags[:2]
        torch.backends.cuda.matmul.allow_tf32 = flags[2]
