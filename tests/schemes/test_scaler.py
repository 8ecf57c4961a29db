"""Every rule follows the AMP protocol: one pending scaler.update() for the caller, same update as unscaled."""

import copy

import pytest
import torch
from scheme_toys import EqualWeight, make_batch

from mtlzoo.models import create_model
from mtlzoo.schemes import create_update_rule

CASES = [(EqualWeight, "hps_tiny", {}), ("ius", "hps_tiny", {"group_size": 1}), ("io", "hps_tiny", {"group_size": 2}),
         ("cs_two_phase", "cs_tiny", {"schedule": "phase1"}), ("cs_two_phase", "cs_tiny", {"schedule": "phase2"})]


@pytest.mark.parametrize("method,arch,kwargs", CASES)
def test_scaled_step_equals_unscaled_step(method, arch, kwargs):
    torch.manual_seed(0)
    model = create_model(arch, tasks="nyud")
    twin = copy.deepcopy(model)
    batch = make_batch()

    def sgd(params):
        return torch.optim.SGD(params, lr=0.05)

    make = (lambda m: create_update_rule(method(), m, sgd)) if callable(method) else (
        lambda m: create_update_rule(method, m, sgd, **kwargs))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    make(model).step(batch, 0, 1, scaler=scaler, clip_grad=10.0)
    scaler.update()
    assert scaler.get_scale() == 2.0**8
    make(twin).step(batch, 0, 1, clip_grad=10.0)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
