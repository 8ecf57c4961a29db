"""Every update rule reports the forward passes, backward passes and updates of each step it ran: checked against
hooks on the model that count them independently, and against the rule's own ``work_per_step()``."""

import pytest
import torch
from scheme_toys import EqualWeight, make_batch

import mtlzoo
from mtlzoo.models import create_model
from mtlzoo.schemes import UpdateRule, create_update_rule, list_update_rules
from mtlzoo.schemes.work import Work

TASKS = list(mtlzoo.task_preset("nyud"))[:3]  # semseg, depth, normals


class TrunkCounter:
    """Counts what a step did without asking the rule: forward passes through the model's encoder (a forward
    hook), loss vectors pulled back to the encoder's first parameter (a gradient hook; a batched vector-Jacobian
    product counts its rows, read off a spy on ``torch.autograd.grad``) and optimizer steps taken (post-step hooks).
    """

    def __init__(self, model, optimizers, monkeypatch):
        self.forward = self.backward = self.updates = 0
        self._rows = 1
        model.encoder.register_forward_hook(lambda *_: self._add("forward", 1))
        next(model.encoder.parameters()).register_hook(lambda grad: self._add("backward", self._rows))
        for optimizer in optimizers:
            optimizer.register_step_post_hook(lambda *_: self._add("updates", 1))
        grad = torch.autograd.grad

        def spy(outputs, inputs, grad_outputs=None, *args, is_grads_batched=False, **kwargs):
            self._rows = grad_outputs[0].shape[0] if is_grads_batched else 1
            try:
                return grad(outputs, inputs, grad_outputs, *args, is_grads_batched=is_grads_batched, **kwargs)
            finally:
                self._rows = 1

        monkeypatch.setattr(torch.autograd, "grad", spy)

    def _add(self, name, count):
        setattr(self, name, getattr(self, name) + count)

    @property
    def work(self):
        return Work(self.forward, self.backward, self.updates)


def _rule(method, arch="hps_tiny", **kwargs):
    torch.manual_seed(0)
    model = create_model(arch, tasks=TASKS)
    return create_update_rule(method, model, lambda params: torch.optim.SGD(params, lr=1e-3), **kwargs)


def _measured(rule, monkeypatch, steps=1, batch=None):
    """(the work the rule reported over ``steps`` steps, the work the hooks counted)."""
    counter = TrunkCounter(rule.model, rule.optimizers, monkeypatch)
    reported = Work()
    for _ in range(steps):
        reported += rule.step(batch or make_batch(), 0, 1).work
    return reported, counter.work


T = len(TASKS)
CASES = [  # (method, architecture, options, the work of one step worked out by hand)
    ("ew", "hps_tiny", {}, Work(1, 1, 1)),
    ("mgda", "hps_tiny", {"jacobian_mode": "loop"}, Work(1, T, 1)),
    ("mgda", "hps_tiny", {"jacobian_mode": "batched"}, Work(1, T, 1)),
    ("pcgrad", "hps_tiny", {"jacobian_mode": "batched", "level": "features"}, Work(1, 1, 1)),
    ("graddrop", "hps_tiny", {}, Work(1, 1, 1)),  # feature level by default
    ("famo", "hps_tiny", {}, Work(2, 1, 1)),  # + the no-grad forward after the step
    ("famo", "hps_tiny", {"update": "next_batch"}, Work(1, 1, 1)),
    ("gradnorm", "hps_tiny", {}, Work(1, 1, 1)),  # its norms stop at the last shared layer
    ("ius", "hps_tiny", {"group_size": 1}, Work(T, T, T)),
    ("ius", "hps_tiny", {"group_size": 2}, Work(2, 2, 2)),  # groups of 2 and 1
    ("io", "hps_tiny", {"group_size": 1}, Work(T, T, T)),
    ("cs_two_phase", "cs_tiny", {"schedule": "phase1"}, Work(T, T, T)),
    ("cs_two_phase", "cs_tiny", {"schedule": "phase2"}, Work(T, T, 1)),
]


@pytest.mark.parametrize("method,arch,kwargs,expected", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_a_step_reports_the_work_the_hooks_count(method, arch, kwargs, expected, monkeypatch):
    rule = _rule(method, arch, **kwargs)
    reported, counted = _measured(rule, monkeypatch, steps=2)
    assert reported == counted == Work(2 * expected.forward, 2 * expected.backward, 2 * expected.updates)
    assert rule.work_per_step() == expected


def test_a_model_with_nothing_shared_makes_one_backward_whatever_the_balancer():
    rule = _rule("mgda", "stl_tiny", jacobian_mode="loop")  # single-task networks: no trunk to pull T rows through
    assert rule.step(make_batch(), 0, 1).work == rule.work_per_step() == Work(1, 1, 1)


def _every_method():
    rules = [(name, "hps_tiny", {}) for name in mtlzoo.list_balancers()]
    rules += [(name, "hps_tiny", {"group_size": 2}) for name in ("ius", "io")]
    rules += [("cs_two_phase", "cs_tiny", {"schedule": phase}) for phase in ("phase1", "phase2")]
    assert {name for name, _, _ in rules} >= set(list_update_rules())  # a new rule must join this test
    return rules


@pytest.mark.parametrize("method,arch,kwargs", _every_method(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_registered_method_measures_what_work_per_step_says(method, arch, kwargs, monkeypatch):
    rule = _rule(method, arch, **kwargs)
    reported, counted = _measured(rule, monkeypatch)
    assert reported == counted == rule.work_per_step(), method


def test_the_mixed_cs_schedule_refuses_a_fixed_work_per_step_but_knows_its_backward_passes():
    rule = _rule("cs_two_phase", "cs_tiny")
    with pytest.raises(ValueError, match="schedule='phase1' or 'phase2'"):
        rule.work_per_step()
    assert rule.backward_per_step() == len(rule.model.task_names)
    assert _rule("ew", "hps_tiny").backward_per_step() == 1 and _rule("mgda", "hps_tiny").backward_per_step() == 3


def test_a_rule_that_does_not_say_its_cost_fails_loudly():
    class Silent(UpdateRule):
        def step(self, batch, epoch=0, epochs=1, scaler=None, clip_grad=None):
            raise AssertionError("not called")

    with pytest.raises(NotImplementedError, match="Silent does not say what one step costs"):
        Silent(create_model("hps_tiny", tasks=TASKS)).work_per_step()
    with pytest.raises(TypeError, match="work"):
        mtlzoo.schemes.StepInfo({})  # a step's work is required


def test_a_balancer_object_outside_the_engine_counts_one_backward(monkeypatch):
    rule = create_update_rule(EqualWeight(), create_model("hps_tiny", tasks=TASKS), lambda p: torch.optim.SGD(p, 0.1))
    reported, counted = _measured(rule, monkeypatch)
    assert reported == counted == rule.work_per_step() == Work(1, 1, 1)


def _poisoned(model, task):
    original = model.losses
    model.losses = lambda outputs, targets: {k: v * float("nan") if k == task else v
                                             for k, v in original(outputs, targets).items()}


@pytest.mark.parametrize("method,arch,kwargs,updates", [
    ("ew", "hps_tiny", {}, 0),
    ("famo", "hps_tiny", {}, 0),  # and no post-step forward: forward 1
    ("mgda", "hps_tiny", {"jacobian_mode": "loop"}, 0),
    ("ius", "hps_tiny", {"group_size": 1}, T - 1),  # only the depth group's step is skipped
    ("cs_two_phase", "cs_tiny", {"schedule": "phase1"}, T - 1),
    ("cs_two_phase", "cs_tiny", {"schedule": "phase2"}, 0),
])
def test_skipped_updates_are_not_counted(method, arch, kwargs, updates, monkeypatch):
    rule = _rule(method, arch, **kwargs)
    _poisoned(rule.model, "depth")
    reported, counted = _measured(rule, monkeypatch)
    assert reported == counted and reported.updates == updates
    assert reported.forward == rule.work_per_step().forward - (method == "famo")


def test_work_adds_up_and_round_trips_through_its_record_form():
    total = Work(1, 3, 1) + Work(2, 2, 2)
    assert total == Work(3, 5, 3)
    assert total.to_dict() == {"forward_passes": 3, "backward_passes": 5, "optimizer_updates": 3}
    assert Work.from_dict(total.to_dict()) == total
    with pytest.raises(ValueError, match=r"lack \['optimizer_updates'\]"):
        Work.from_dict({"forward_passes": 1, "backward_passes": 1})
