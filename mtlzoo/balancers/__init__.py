"""Gradient balancers: one contract, one gradient engine, one small module per method.

>>> balancer = create_balancer("cagrad", c=0.4)
>>> info = balancer.backward(model.losses(model(x), batch), model)   # fills .grad
"""

from mtlzoo.balancers import (  # noqa: F401  (importing registers the methods)
    aligned_mtl,
    cagrad,
    db_mtl,
    famo,
    graddrop,
    gradnorm,
    gradvac,
    imtl,
    mgda,
    nash_mtl,
    pcgrad,
    pomsi,
    upgrad,
    weighting,
)
from mtlzoo.balancers.base import (
    BalanceInfo,
    Balancer,
    GramianBalancer,
    JacobianBalancer,
    LossBalancer,
    Needs,
    StepContext,
)
from mtlzoo.balancers.engine import balanced_backward
from mtlzoo.balancers.jacobian import TaskJacobian
from mtlzoo.balancers.registry import BALANCERS, create_balancer, list_balancers, register_balancer

__all__ = [
    "BALANCERS", "BalanceInfo", "Balancer", "GramianBalancer", "JacobianBalancer", "LossBalancer", "Needs",
    "StepContext", "TaskJacobian", "balanced_backward", "create_balancer", "list_balancers", "register_balancer",
]
