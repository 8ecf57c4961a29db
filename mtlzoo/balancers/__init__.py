"""Gradient balancers: one contract, one gradient engine, one small module per method.

>>> balancer = create_balancer("cagrad", c=0.4)
>>> rep = model.encode(x)
>>> info = balancer.backward(model.losses(model.decode(rep), batch), model, features=rep.features)

Registered names (L: loss level, one backward; G: weights from the T x T Gramian; J: needs the
per-task gradients themselves). Every G/J method also runs at ``level="features"``.

=============== ==== =====================================================================
ew, fixed       L    equal / hand-set weights
uw              L    Kendall, Gal & Cipolla, CVPR 2018 (learnable log-variances)
dwa             L    Liu, Johns & Davison, CVPR 2019 (epoch-level loss ratios, T = 2)
rlw             L    Lin et al., TMLR 2022 (softmax of Gaussian weights)
gls             L    Chennupati et al., CVPRW 2019 (geometric mean)
si              L    scale-invariant sum of log losses (Navon et al., ICML 2022 baseline)
famo            L+   Liu et al., NeurIPS 2023 (+ one no-grad forward after the step, same batch)
gradnorm        L+   Chen et al., ICML 2018 (norms at the last shared layer, alpha = 1.5)
mgda, mgda_ub   G    Desideri 2012; Sener & Koltun, NeurIPS 2018
pcgrad          G    Yu et al., NeurIPS 2020
gradvac         G/J  Wang et al., ICLR 2021 (beta = 0.01; whole-model or per-tensor targets)
imtl            G    Liu et al., ICLR 2021 (IMTL-G)
cagrad          G    Liu et al., NeurIPS 2021 (c = 0.4)
nash_mtl        G    Navon et al., ICML 2022
aligned_mtl(_ub) G   Senushkin et al., CVPR 2023 (scale modes min / median / rmse)
upgrad          G    Quinton & Rey, 2024
pomsi           G    reconstruction of POMSI (paper unavailable; methods.md 3.2)
graddrop        J    Chen et al., NeurIPS 2020 (per coordinate; features by default)
db_mtl          J    Lin et al., 2023 (log losses, EMA of gradients)
=============== ==== =====================================================================
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
from mtlzoo.balancers.base import Balancer, GramianBalancer, JacobianBalancer, LossBalancer
from mtlzoo.balancers.contract import BalanceInfo, Needs, StepContext
from mtlzoo.balancers.engine import balanced_backward
from mtlzoo.balancers.jacobian import TaskJacobian
from mtlzoo.balancers.registry import BALANCERS, create_balancer, list_balancers, register_balancer

__all__ = [
    "BALANCERS", "BalanceInfo", "Balancer", "GramianBalancer", "JacobianBalancer", "LossBalancer", "Needs",
    "StepContext", "TaskJacobian", "balanced_backward", "create_balancer", "list_balancers", "register_balancer",
]
