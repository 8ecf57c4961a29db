"""Feature-level balancing with shared layers after the representation (``decoder_shared_parameters``).

The engine's result is compared with a hand-written computation: per-task feature gradients through the shared
decoder (torch.autograd.grad), MGDA weights from a scipy min-norm solve on their Gramian, the encoder gradient as
the VJP of ``sum_t w_t g_t`` and the decoder gradient as ``sum_t w_t dL_t/dtheta_dec``.
"""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn

import mtlzoo

TASKS = ["a", "b", "c"]


class SharedDecoderModel(nn.Module):
    """encoder -> z (the representation) -> shared decoder (reads z, mixes everything) -> one head per task."""

    def __init__(self, declare: bool = True) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 5)
        self.decoder = nn.Linear(5, 6)
        self.heads = nn.ModuleDict({t: nn.Linear(6 + 5, 1) for t in TASKS})  # a head also reads z directly
        self.declare = declare

    def shared_parameters(self):
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def decoder_shared_parameters(self):
        return list(self.decoder.parameters()) if self.declare else []

    def task_parameters(self, task):
        return self.heads[task].parameters()

    def losses(self, z, y):
        d = torch.tanh(self.decoder(z))
        return {t: ((self.heads[t](torch.cat([d, z], dim=1)).squeeze(1) - y[:, i]) ** 2).mean()
                for i, t in enumerate(TASKS)}


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 4, generator=g), torch.randn(8, 3, generator=g)


def _model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return SharedDecoderModel(**kwargs)


def _min_norm_weights(gram):
    """argmin_{w in simplex} w^T G w, by scipy (SLSQP), independent of mtlzoo's solvers."""
    T = gram.shape[0]
    result = minimize(lambda w: w @ gram @ w, np.full(T, 1.0 / T), jac=lambda w: 2 * gram @ w, method="SLSQP",
                      bounds=[(0, 1)] * T, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                      options={"ftol": 1e-15, "maxiter": 500})
    return result.x


def _by_hand(model, x, y):
    """Weights and every parameter's gradient of MGDA-UB with a shared decoder, written out with autograd.grad."""
    z = model.encoder(x)
    losses = model.losses(z, y)
    decoder = list(model.decoder.parameters())
    feature_grads, decoder_grads, head_grads = [], [], []
    for t in TASKS:
        grads = torch.autograd.grad(losses[t], [z, *decoder, *model.heads[t].parameters()], retain_graph=True)
        feature_grads.append(grads[0])
        decoder_grads.append(grads[1:1 + len(decoder)])
        head_grads.append(grads[1 + len(decoder):])
    flat = np.stack([g.reshape(-1).double().numpy() for g in feature_grads])
    w = _min_norm_weights(flat @ flat.T)
    combined = sum(float(w[t]) * feature_grads[t] for t in range(3))
    expected = dict(zip(["encoder.weight", "encoder.bias"],
                        torch.autograd.grad(z, list(model.encoder.parameters()), combined), strict=True))
    for i, name in enumerate(["decoder.weight", "decoder.bias"]):
        expected[name] = sum(float(w[t]) * decoder_grads[t][i] for t in range(3))
    for t, task in enumerate(TASKS):  # MGDA scales the heads by their weight
        for name, g in zip(["weight", "bias"], head_grads[t], strict=True):
            expected[f"heads.{task}.{name}"] = float(w[t]) * g
    return w, flat @ flat.T, expected


def test_mgda_ub_with_a_shared_decoder_matches_the_hand_computation():
    x, y = _data()
    model = _model()
    w, gram, expected = _by_hand(model, x, y)
    assert abs(gram[0, 1]) > 1e-6 * np.sqrt(gram[0, 0] * gram[1, 1])  # the decoder couples the tasks
    model.zero_grad(set_to_none=True)
    z = model.encoder(x)
    info = mtlzoo.create_balancer("mgda_ub", tasks=TASKS).backward(model.losses(z, y), model, features=(z,))
    np.testing.assert_allclose(info.weights.double().numpy(), w, atol=1e-5)
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, expected[name].to(p.dtype), atol=1e-5, rtol=1e-4, msg=name)


def test_post_representation_layers_get_the_feature_weights_even_when_heads_are_unscaled():
    """upgrad keeps its heads unweighted (scale_heads=False); the shared decoder still gets sum_t w_t g_t."""
    x, y = _data(1)
    model = _model(1)
    z = model.encoder(x)
    info = mtlzoo.create_balancer("upgrad", tasks=TASKS, level="features").backward(model.losses(z, y), model,
                                                                                   features=(z,))
    w = info.weights.double()
    z = model.encoder(x)
    losses = model.losses(z, y)
    for name, p in model.decoder.named_parameters():
        per_task = [torch.autograd.grad(losses[t], p, retain_graph=True)[0].double() for t in TASKS]
        torch.testing.assert_close(p.grad.double(), sum(w[t] * per_task[t] for t in range(3)), atol=1e-6,
                                   rtol=1e-5, msg=name)
    for t in TASKS:
        own = torch.autograd.grad(losses[t], model.heads[t].weight, retain_graph=True)[0]
        torch.testing.assert_close(model.heads[t].weight.grad, own, atol=1e-6, rtol=1e-5)


def test_undeclared_decoder_is_left_untrained_and_the_parameter_level_is_unchanged():
    """Without the declaration the feature level cannot see the decoder (it gets no gradient); at the parameter
    level the declaration changes nothing (the decoder is a shared parameter either way)."""
    x, y = _data(2)
    model = _model(2, declare=False)
    z = model.encoder(x)
    mtlzoo.create_balancer("mgda_ub", tasks=TASKS).backward(model.losses(z, y), model, features=(z,))
    assert model.decoder.weight.grad is None
    grads = {}
    for declare in (False, True):
        model = _model(2, declare=declare)
        z = model.encoder(x)
        info = mtlzoo.create_balancer("mgda", tasks=TASKS, jacobian_mode="loop").backward(
            model.losses(z, y), model, features=(z,))
        grads[declare] = (info.weights, {n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(grads[False][0], grads[True][0])
    for name, g in grads[False][1].items():
        torch.testing.assert_close(grads[True][1][name], g, msg=name)


def test_non_finite_decoder_gradient_skips_the_step():
    """An inf that reaches only the decoder's gradient (finite loss and feature gradients) marks the step
    non-finite and poisons every gradient."""
    x, y = _data(3)
    model = _model(3)
    z = model.encoder(x)
    losses = model.losses(z, y)
    bias = model.decoder.bias[0]
    losses["a"] = losses["a"] + torch.sqrt(bias - bias.detach())  # value 0, gradient inf on the decoder only
    info = mtlzoo.create_balancer("mgda_ub", tasks=TASKS).backward(losses, model, features=(z,))
    assert not bool(info.finite)
    assert torch.isnan(model.decoder.weight.grad).all() and torch.isnan(model.encoder.weight.grad).all()


def test_declared_decoder_parameters_must_be_shared():
    model = _model()
    model.decoder_shared_parameters = lambda: list(model.heads["a"].parameters())
    x, y = _data()
    z = model.encoder(x)
    with pytest.raises(ValueError, match="that shared_parameters\\(\\) lacks"):
        mtlzoo.create_balancer("mgda_ub", tasks=TASKS).backward(model.losses(z, y), model, features=(z,))


def test_grad_scaler_writes_the_decoder_gradient_scaled_once():
    """Under a GradScaler every gradient, the shared decoder's included, is the unscaled one times the scale."""
    x, y = _data(4)
    grads = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=1024.0)):
        model = _model(4)
        z = model.encoder(x)
        mtlzoo.create_balancer("mgda_ub", tasks=TASKS).backward(model.losses(z, y), model, features=(z,),
                                                                scaler=scaler)
        grads.append({n: p.grad / (1.0 if scaler is None else 1024.0) for n, p in model.named_parameters()})
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-7, msg=name)
