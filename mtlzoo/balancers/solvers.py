"""Batched torch solvers for the small T x T problems of gradient balancers (no scipy, no cvxpy).

Quadratic programs over the simplex or a shifted orthant are solved exactly by enumerating the
2^T candidate supports in one batched linear solve (for T <= ``MAX_ENUMERATED_TASKS``), picking
the feasible candidate with the smallest objective: no iteration, no branch on tensor values,
no host sync. Larger T falls back to a fixed number of projected-gradient steps. All inputs and
outputs are float64; the linear systems are solved in Jacobi-scaled variables (unit gradient
norms), so global scales from 1e-8 to 1e8 and task norms differing by 1e8 behave the same. Nash-MTL's
Newton iterations run in numpy when the Gramian is on the CPU (see :func:`nash_bargaining`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

MAX_ENUMERATED_TASKS = 12
_REG = 1e-10
_FEASIBLE_TOL = 1e-9
_NEWTON_TOL = 1e-15  # relative step below which a Newton step only rounds
_SUPPORTS: dict[tuple[int, str, bool], tuple[Tensor, ...]] = {}


def normalise(gram: Tensor) -> Tensor:
    """Gramian divided by its mean diagonal (zero Gramians stay zero)."""
    scale = gram.diagonal().mean().clamp_min(torch.finfo(torch.float64).tiny)
    return gram / scale


def _supports(num_tasks: int, device: torch.device, include_empty: bool) -> tuple[Tensor, ...]:
    """Every subset of ``range(num_tasks)`` as float64 0/1 masks ``(K, T)``, ``mask_i * mask_j``, the identity
    on the inactive coordinates and the identity, built once per size and device (building them costs more
    than the solves that use them; read-only)."""
    key = (num_tasks, str(device), include_empty)
    if key not in _SUPPORTS:
        codes = torch.arange(0 if include_empty else 1, 2**num_tasks, device=device)
        masks = ((codes[:, None] >> torch.arange(num_tasks, device=device)) & 1).to(torch.float64)
        eye = torch.eye(num_tasks, dtype=torch.float64, device=device)
        _SUPPORTS[key] = (masks, masks[:, :, None] * masks[:, None, :], eye * (1 - masks)[:, None, :], eye)
    return _SUPPORTS[key]


def _restricted(gram: Tensor, supports: tuple[Tensor, ...]) -> Tensor:
    """Per support: ``gram`` (plus a tiny ridge) on the active block, identity on the inactive coordinates."""
    _, pair, inactive, eye = supports
    return torch.add(gram, eye, alpha=_REG) * pair + inactive


def _quad(w: Tensor, gram: Tensor) -> Tensor:
    return ((w @ gram) * w).sum(-1)


def jacobi(gram: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric diagonal scaling: ``(D G D, d)`` with ``d_i = 1 / ||g_i||`` (zero rows kept finite).

    Solving in the scaled variables ``y = w / d`` makes the linear systems well conditioned even
    when task gradient norms differ by many orders of magnitude.
    """
    diag = gram.diagonal().clamp_min(0)
    d = 1.0 / diag.clamp_min(diag.max() * 1e-30 + torch.finfo(torch.float64).tiny).sqrt()
    return gram * d[:, None] * d[None, :], d


def min_norm_simplex(gram: Tensor) -> Tensor:
    """Weights ``w`` on the simplex minimising ``w^T G w`` (MGDA's min-norm point)."""
    T = gram.shape[-1]
    if T > MAX_ENUMERATED_TASKS:
        return _simplex_projected_gradient(normalise(gram))
    corr, d = jacobi(gram)
    supports = _supports(T, gram.device, False)
    masks = supports[0]
    K = masks.shape[0]
    kkt = torch.zeros(K, T + 1, T + 1, dtype=gram.dtype, device=gram.device)
    kkt[:, :T, :T] = _restricted(corr, supports)
    kkt[:, :T, T] = masks * d
    kkt[:, T, :T] = masks * d
    rhs = torch.zeros(K, T + 1, 1, dtype=gram.dtype, device=gram.device)
    rhs[:, T] = 1.0
    y = torch.linalg.solve_ex(kkt, rhs)[0][:, :T, 0] * masks
    w = _best(y * d, _quad(y, corr), (y >= -_FEASIBLE_TOL).all(-1)).clamp_min(0)
    return w / w.sum()


def _best(candidates: Tensor, objective: Tensor, feasible: Tensor) -> Tensor:
    """The feasible candidate with the smallest objective (rows of ``candidates``)."""
    ok = feasible & torch.isfinite(objective) & torch.isfinite(candidates).all(-1)
    return candidates[torch.where(ok, objective, torch.inf).argmin()]


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of each row of ``v`` onto the probability simplex (sort based)."""
    u = v.sort(dim=-1, descending=True).values
    css = u.cumsum(-1) - 1
    k = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    rho = ((u - css / k) > 0).sum(-1, keepdim=True).clamp_min(1)
    theta = css.gather(-1, rho - 1) / rho.to(v.dtype)
    return (v - theta).clamp_min(0)


def _simplex_projected_gradient(gn: Tensor, iters: int = 1000) -> Tensor:
    """Min-norm point on the simplex by accelerated projected gradient (fixed iterations)."""
    T = gn.shape[-1]
    step = 1.0 / (2 * torch.linalg.eigvalsh(gn)[-1].clamp_min(1e-30))
    w = torch.full((T,), 1.0 / T, dtype=gn.dtype, device=gn.device)
    y = w
    for k in range(iters):
        w_next = project_simplex(y - step * 2 * (gn @ y))
        y = w_next + (k / (k + 3)) * (w_next - w)
        w = w_next
    return w


def project_dual_cone(gram: Tensor, lower: Tensor) -> Tensor:
    """For each row ``u`` of ``lower`` (m, T): ``argmin_v v^T G v`` subject to ``v >= u``.

    ``J^T v`` is then the projection of ``J^T u`` onto the dual cone ``{x : J x >= 0}``
    (UPGrad's projection, in weight space).
    """
    T = gram.shape[-1]
    if T > MAX_ENUMERATED_TASKS:
        return _projected_gradient_orthant(normalise(gram), lower)
    corr, d = jacobi(gram)
    low = lower / d  # bounds on y = v / d
    supports = _supports(T, gram.device, True)
    masks = supports[0]
    rhs = -(masks[:, :, None] * (corr @ low.T)[None])
    s = torch.linalg.solve_ex(_restricted(corr, supports), rhs)[0] * masks[:, :, None]
    y = low.T[None] + s
    objective = torch.einsum("kim,ij,kjm->km", y, corr, y)
    feasible = (s >= -_FEASIBLE_TOL).all(1)
    idx = torch.where(feasible & torch.isfinite(objective), objective, torch.inf).argmin(0)
    return y[idx, :, torch.arange(lower.shape[0], device=gram.device)] * d


def _projected_gradient_orthant(gn: Tensor, lower: Tensor, iters: int = 1000) -> Tensor:
    """Accelerated projected gradient for ``min v^T G v, v >= u`` (rows of ``lower``)."""
    step = 1.0 / (2 * torch.linalg.eigvalsh(gn)[-1].clamp_min(1e-30))
    v = lower.clone()
    y = v
    for k in range(iters):
        v_next = torch.maximum(y - step * 2 * (y @ gn), lower)
        y = v_next + (k / (k + 3)) * (v_next - v)
        v = v_next
    return v


def cagrad_weights(gram: Tensor, c: float) -> tuple[Tensor, Tensor]:
    """CAGrad's dual: ``w = argmin_{simplex} w^T G b + c ||g0|| sqrt(w^T G w)`` with ``b = 1/T``.

    Returns ``(w, lambda_)`` where the update is ``g0 + lambda_ * G_w``, i.e. task weights
    ``b + lambda_ * w``. On each support the stationarity condition reduces to a quadratic in
    the multiplier, solved in closed form; vertices and the min-norm point are also candidates.
    """
    T = gram.shape[-1]
    gn = gram / gram.diagonal().clamp_min(0).sqrt().mean().square().clamp_min(torch.finfo(torch.float64).tiny)
    b = torch.full((T,), 1.0 / T, dtype=gram.dtype, device=gram.device)
    gb = gn @ b
    kappa = c * (b @ gb).clamp_min(0).sqrt()
    eye = torch.eye(T, dtype=gram.dtype, device=gram.device)
    cands = [eye, min_norm_simplex(gram)[None]]
    if T <= MAX_ENUMERATED_TASKS:
        cands.append(_cagrad_faces(gn, gb, kappa))
    w_all = torch.cat(cands)
    objective = w_all @ gb + kappa * _quad(w_all, gn).clamp_min(0).sqrt()
    w = _best(w_all, objective, (w_all >= -_FEASIBLE_TOL).all(-1)).clamp_min(0)
    w = w / w.sum()
    # exact multiplier; ||G_w|| is floored at 1e-4 (normalised units) as in the reference code
    lam = kappa / _quad(w, gn).clamp_min(0).sqrt().clamp_min(1e-4)
    return w, lam


def _cagrad_faces(gn: Tensor, gb: Tensor, kappa: Tensor) -> Tensor:
    """Stationary points of CAGrad's dual on the relative interior of every face (2 per face)."""
    T = gn.shape[-1]
    supports = _supports(T, gn.device, False)
    masks = supports[0]
    rhs = torch.stack([masks, masks * gb], dim=-1)
    sol = torch.linalg.solve_ex(_restricted(gn, supports), rhs)[0] * masks[:, :, None]
    a, cvec = sol[..., 0], sol[..., 1]
    qa, qb, qc = _quad(a, gn), ((a @ gn) * cvec).sum(-1), _quad(cvec, gn)
    disc = qb.square() - qa * (qc - kappa.square())
    root = disc.clamp_min(0).sqrt()
    mus = torch.stack([(qb + root), (qb - root)], dim=-1) / qa.clamp_min(1e-300)[:, None]
    y = mus[:, :, None] * a[:, None, :] - cvec[:, None, :]
    total = y.sum(-1, keepdim=True)
    w = y / total
    ok = (disc[:, None] >= 0) & (total[..., 0] > 0)
    return torch.where(ok[..., None], w, torch.nan).reshape(-1, T)


def nash_bargaining(gram: Tensor, init: Tensor, iters: int = 20, reg: float = 1e-12) -> Tensor:
    """Solve Nash-MTL's bargaining system ``G a = 1 / a`` (a > 0) by damped Newton steps.

    ``a`` minimises the strictly convex ``0.5 a^T G a - sum log a``; the damped step
    ``1 / (1 + newton_decrement)`` keeps ``a`` positive (self-concordance) and converges
    quadratically near the solution. ``G`` is normalised by its Frobenius norm as in the
    reference implementation; ``reg`` keeps zero-gradient tasks finite. On the CPU the iterations
    run in numpy (a T x T torch call costs about three times numpy's fixed per-call time, and
    there is no device to wait for); elsewhere in torch, with no host sync.
    """
    if gram.device.type == "cpu":
        g, a = gram.detach().numpy(), init.detach().to(gram.dtype).numpy()
        h0 = g / max(np.linalg.norm(g), np.finfo(np.float64).tiny) + reg * np.eye(g.shape[-1])
        a = np.maximum(a, 1e-6)
        a = a * np.sqrt(g.shape[-1] / max(a @ h0 @ a, 1e-300))  # the solution has a^T G a = T
        return torch.from_numpy(_newton_numpy(h0, a, iters))
    T = gram.shape[-1]
    gn = gram / torch.linalg.matrix_norm(gram).clamp_min(torch.finfo(torch.float64).tiny)
    h0 = gn + reg * torch.eye(T, dtype=gram.dtype, device=gram.device)
    a = init.to(gram.dtype).clamp_min(1e-6)
    a = a * (T / (a @ h0 @ a).clamp_min(1e-300)).sqrt()  # the solution has a^T G a = T
    return _newton_torch(h0, a, iters)


def _newton_torch(h0: Tensor, a: Tensor, iters: int) -> Tensor:
    """Damped Newton steps in the scaled variables ``delta = a * u``: ``(I + D H D) u = 1 - a * (H a)``,
    decrement ``sqrt(r . u)`` (the Hessian ``H + diag(1 / a^2)`` in a form with fewer small ops)."""
    eye = torch.eye(h0.shape[-1], dtype=h0.dtype, device=h0.device)
    ones = torch.ones_like(a)
    for _ in range(iters):
        r = torch.addcmul(ones, a, h0 @ a, value=-1)
        u = torch.linalg.solve_ex(torch.addcmul(eye, h0, torch.outer(a, a)), r)[0]
        a = torch.addcmul(a, a, u / (1 + (r @ u).clamp_min(0).sqrt()))
    return a


def _newton_numpy(h0: np.ndarray, a: np.ndarray, iters: int) -> np.ndarray:
    """:func:`_newton_torch` in numpy, stopping once a step no longer moves ``a`` (the remaining steps
    of the ``iters`` would change it by rounding only); a non-finite system gives NaN weights."""
    eye = np.eye(h0.shape[-1])
    with np.errstate(all="ignore"):
        for _ in range(iters):
            r = 1 - a * (h0 @ a)
            try:
                u = np.linalg.solve(eye + h0 * np.outer(a, a), r)
            except np.linalg.LinAlgError:
                return np.full_like(a, np.nan)
            step = u / (1 + math.sqrt(max(float(r @ u), 0.0)))
            a = a + a * step
            if not np.abs(step).max() > _NEWTON_TOL:  # also stops on NaN
                break
    return a


def adam_step(param: Tensor, grad: Tensor, state: dict[str, Tensor], lr: float, active: Tensor | bool = True,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> Tensor:
    """One Adam step (L2 weight decay as in ``torch.optim.Adam``) for a balancer's own small weights.

    ``state`` holds the tensors ``m``, ``v`` and ``step`` and is updated in place; where
    ``active`` is false nothing changes (branch-free, so no host sync).
    """
    active = torch.as_tensor(active, device=param.device)
    grad = grad + weight_decay * param
    step = state["step"] + active.to(state["step"].dtype)
    m = torch.where(active, betas[0] * state["m"] + (1 - betas[0]) * grad, state["m"])
    v = torch.where(active, betas[1] * state["v"] + (1 - betas[1]) * grad.square(), state["v"])
    t = step.clamp_min(1).to(param.dtype)
    update = lr * (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps)
    state["m"].copy_(m)
    state["v"].copy_(v)
    state["step"].copy_(step)
    return torch.where(active, param - update, param)
