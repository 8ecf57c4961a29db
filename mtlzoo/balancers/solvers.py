"""Exact solvers for the small T x T problems of gradient balancers, in numpy on the host (no scipy, no cvxpy).

Balancers bring the Gramian to the host once per step (:mod:`mtlzoo.balancers.host`) and solve there:
a T x T problem is microseconds of numpy, where on a GPU it was tens to hundreds of kernel launches.
Quadratic programs over the simplex or a shifted orthant are solved exactly on one support, the set
of their nonzero coordinates. Up to ``ENUMERATE_UP_TO`` tasks every support is tried in one batched
linear solve and the feasible candidate with the smallest objective wins; above, block principal
pivoting (MGDA, UPGrad) or an active-set method (CAGrad) finds the support in a few small solves and
the answer is computed on it exactly as the enumeration would, which it falls back to (T <= 12) if
that fails; projected-gradient steps approximate the rest. All inputs and outputs are float64 arrays;
the linear systems are solved in Jacobi-scaled variables (unit gradient norms), so global scales from
1e-8 to 1e8 and task norms differing by 1e8 behave the same.

Changed 2026-12-06: these solvers ran in torch on the Gramian's device, and enumerated supports up to
T = 12; the numbers are the same to float64 rounding, except that the enumeration's feasibility test
(1e-9, absolute, in the scaled variables) let an infeasible support through for gradients of norm
1e-8 at T = 10, and that above 12 tasks MGDA and UPGrad are now exact.
"""

from __future__ import annotations

import math

import numpy as np

MAX_ENUMERATED_TASKS = 12
ENUMERATE_UP_TO = 6  # up to here trying every support (one batched solve) is the faster way
_REG = 1e-10
_FEASIBLE_TOL = 1e-9
_NEWTON_TOL = 1e-15  # relative step below which a Newton step only rounds
_TINY = np.finfo(np.float64).tiny
_SUPPORTS: dict[tuple[int, bool], tuple[np.ndarray, ...]] = {}


def normalise(gram: np.ndarray) -> np.ndarray:
    """Gramian divided by its mean diagonal (zero Gramians stay zero)."""
    return gram / np.maximum(np.diagonal(gram).mean(), _TINY)


def _supports(num_tasks: int, include_empty: bool) -> tuple[np.ndarray, ...]:
    """Every subset of ``range(num_tasks)`` as 0/1 masks ``(K, T)``, ``mask_i * mask_j``, the identity on the
    inactive coordinates and the identity, built once per size (read-only)."""
    key = (num_tasks, include_empty)
    if key not in _SUPPORTS:
        codes = np.arange(0 if include_empty else 1, 2**num_tasks)
        masks = ((codes[:, None] >> np.arange(num_tasks)) & 1).astype(np.float64)
        eye = np.eye(num_tasks)
        parts = (masks, masks[:, :, None] * masks[:, None, :], eye * (1 - masks)[:, None, :], eye)
        for part in parts:
            part.flags.writeable = False
        _SUPPORTS[key] = parts
    return _SUPPORTS[key]


def _restricted(gram: np.ndarray, supports: tuple[np.ndarray, ...]) -> np.ndarray:
    """Per support: ``gram`` (plus a tiny ridge) on the active block, identity on the inactive coordinates."""
    _, pair, inactive, eye = supports
    return (gram + _REG * eye) * pair + inactive


def solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``solve(a, b)``; a singular or non-finite system gives NaN (as its candidate is then dropped)."""
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        out = np.full(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + b.shape[-2:], np.nan)
        for i in np.ndindex(out.shape[:-2]):
            try:
                out[i] = np.linalg.solve(a[i], b[i])
            except np.linalg.LinAlgError:
                pass
        return out


def _quad(w: np.ndarray, gram: np.ndarray) -> np.ndarray:
    return ((w @ gram) * w).sum(-1)


def jacobi(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric diagonal scaling: ``(D G D, d)`` with ``d_i = 1 / ||g_i||`` (zero rows kept finite).

    Solving in the scaled variables ``y = w / d`` makes the linear systems well conditioned even
    when task gradient norms differ by many orders of magnitude.
    """
    diag = np.maximum(np.diagonal(gram), 0)
    d = 1.0 / np.sqrt(np.maximum(diag, diag.max() * 1e-30 + _TINY))
    return gram * d[:, None] * d[None, :], d


def _best(candidates: np.ndarray, objective: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """The feasible candidate with the smallest objective (rows of ``candidates``)."""
    ok = feasible & np.isfinite(objective) & np.isfinite(candidates).all(-1)
    return candidates[np.where(ok, objective, np.inf).argmin()]


def _masks_of(free: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`_supports`' layout for the given supports (K, T) only."""
    masks = free.astype(np.float64)
    eye = np.eye(free.shape[-1])
    return masks, masks[:, :, None] * masks[:, None, :], eye * (1 - masks)[:, None, :], eye


def lcp_supports(m: np.ndarray, q: np.ndarray, max_iter: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Supports of the solutions of the linear complementarity problems ``w = M z + q_k, z >= 0, w >= 0,
    z . w = 0`` for the columns ``q_k`` of ``q`` (T, m), M positive definite, by block principal pivoting
    (Judice & Pires 1994, with the backup rule of Kim & Park 2011): ``(supports (m, T) bool, converged (m,))``.

    A few T x T solves where enumerating every support takes 2^T; the solvers below recompute the answer
    on the support found exactly as the enumeration would, so the two agree to rounding.
    """
    T, n = q.shape
    q = q.T / np.maximum(np.abs(q).max(0), _TINY)[:, None]  # (n, T), scaled per problem: same supports
    free = np.zeros((n, T), dtype=bool)
    done = np.zeros(n, dtype=bool)
    best, backup = np.full(n, T + 1), np.full(n, 3)
    rows = np.arange(n)
    for _ in range(max_iter or 3 * T + 10):
        _, pair, inactive, _ = _masks_of(free)
        z = solve(m * pair + inactive, (-q * free)[..., None])[..., 0]
        w = z @ m.T + q
        bad = np.where(free, z < -1e-12 * np.abs(z).max(1, keepdims=True), w < -1e-12) & ~done[:, None]
        count = bad.sum(1)
        done |= count == 0
        if done.all():
            break
        improved = count < best
        flip_all = improved | (backup >= 1)
        best = np.where(improved, count, best)
        backup = np.where(improved, 3, np.where(backup >= 1, backup - 1, backup))
        single = np.zeros_like(bad)
        single[rows, T - 1 - np.argmax(bad[:, ::-1], axis=1)] = True
        free ^= np.where(flip_all[:, None], bad, single & bad)
    return free, done


def _simplex_candidates(corr: np.ndarray, d: np.ndarray, supports: tuple[np.ndarray, ...]) -> np.ndarray:
    """The min-norm point of each support's face, in the scaled variables ``y = w / d`` (K, T)."""
    masks = supports[0]
    K, T = masks.shape
    kkt = np.zeros((K, T + 1, T + 1))
    kkt[:, :T, :T] = _restricted(corr, supports)
    kkt[:, :T, T] = masks * d
    kkt[:, T, :T] = masks * d
    rhs = np.zeros((K, T + 1, 1))
    rhs[:, T] = 1.0
    return solve(kkt, rhs)[:, :T, 0] * masks


def min_norm_simplex(gram: np.ndarray) -> np.ndarray:
    """Weights ``w`` on the simplex minimising ``w^T G w`` (MGDA's min-norm point).

    The support comes from :func:`lcp_supports` (the problem is ``min 1/2 y^T C y - d^T y, y >= 0`` in
    Jacobi-scaled variables, rescaled); when that fails, every support is tried (T <= 12) or projected
    gradient steps approximate it.
    """
    T = gram.shape[-1]
    with np.errstate(all="ignore"):
        corr, d = jacobi(gram)
        free, ok = lcp_supports(corr + _REG * np.eye(T), -d[:, None]) if T > ENUMERATE_UP_TO else (None, [False])
        if all(ok):
            y = _simplex_candidates(corr, d, _masks_of(free))
            if np.isfinite(y).all() and (y >= -_FEASIBLE_TOL).all():
                w = np.maximum(y[0] * d, 0)
                return w / w.sum()
        if T > MAX_ENUMERATED_TASKS:
            return _simplex_projected_gradient(normalise(gram))
        y = _simplex_candidates(corr, d, _supports(T, False))
        w = np.maximum(_best(y * d, _quad(y, corr), (y >= -_FEASIBLE_TOL).all(-1)), 0)
        return w / w.sum()


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto the probability simplex (sort based)."""
    u = -np.sort(-v, axis=-1)
    css = u.cumsum(-1) - 1
    k = np.arange(1, v.shape[-1] + 1, dtype=v.dtype)
    rho = np.maximum(((u - css / k) > 0).sum(-1, keepdims=True), 1)
    theta = np.take_along_axis(css, rho - 1, -1) / rho
    return np.maximum(v - theta, 0)


def _simplex_projected_gradient(gn: np.ndarray, iters: int = 1000) -> np.ndarray:
    """Min-norm point on the simplex by accelerated projected gradient (fixed iterations)."""
    T = gn.shape[-1]
    step = 1.0 / (2 * max(np.linalg.eigvalsh(gn)[-1], 1e-30))
    w = np.full(T, 1.0 / T)
    y = w
    for k in range(iters):
        w_next = project_simplex(y - step * 2 * (gn @ y))
        y = w_next + (k / (k + 3)) * (w_next - w)
        w = w_next
    return w


def project_dual_cone(gram: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """For each row ``u`` of ``lower`` (m, T): ``argmin_v v^T G v`` subject to ``v >= u``.

    ``J^T v`` is then the projection of ``J^T u`` onto the dual cone ``{x : J x >= 0}``
    (UPGrad's projection, in weight space).
    """
    T = gram.shape[-1]
    with np.errstate(all="ignore"):
        corr, d = jacobi(gram)
        low = lower / d  # bounds on y = v / d
        free, ok = lcp_supports(corr + _REG * np.eye(T), corr @ low.T) if T > ENUMERATE_UP_TO else (None, [False])
        if all(ok):  # each row's own support: the enumeration's candidate for it
            masks = free.astype(np.float64)
            s = solve(_restricted(corr, _masks_of(free)), -(masks * (low @ corr))[..., None])[..., 0] * masks
            if np.isfinite(s).all() and (s >= -_FEASIBLE_TOL).all():
                return (low + s) * d
        if T > MAX_ENUMERATED_TASKS:
            return _projected_gradient_orthant(normalise(gram), lower)
        supports = _supports(T, True)
        masks = supports[0]
        rhs = -(masks[:, :, None] * (corr @ low.T)[None])
        s = solve(_restricted(corr, supports), rhs) * masks[:, :, None]
        y = low.T[None] + s
        objective = ((corr @ y) * y).sum(1)
        feasible = (s >= -_FEASIBLE_TOL).all(1)
        idx = np.where(feasible & np.isfinite(objective), objective, np.inf).argmin(0)
        return y[idx, :, np.arange(lower.shape[0])] * d


def _projected_gradient_orthant(gn: np.ndarray, lower: np.ndarray, iters: int = 1000) -> np.ndarray:
    """Accelerated projected gradient for ``min v^T G v, v >= u`` (rows of ``lower``)."""
    step = 1.0 / (2 * max(np.linalg.eigvalsh(gn)[-1], 1e-30))
    v = lower.copy()
    y = v
    for k in range(iters):
        v_next = np.maximum(y - step * 2 * (y @ gn), lower)
        y = v_next + (k / (k + 3)) * (v_next - v)
        v = v_next
    return v


def cagrad_weights(gram: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """CAGrad's dual: ``w = argmin_{simplex} w^T G b + c ||g0|| sqrt(w^T G w)`` with ``b = 1/T``.

    Returns ``(w, lambda_)`` where the update is ``g0 + lambda_ * G_w``, i.e. task weights
    ``b + lambda_ * w``. On each support the stationarity condition reduces to a quadratic in
    the multiplier, solved in closed form; vertices and the min-norm point are also candidates.
    """
    T = gram.shape[-1]
    with np.errstate(all="ignore"):
        gn = gram / np.maximum(np.square(np.sqrt(np.maximum(np.diagonal(gram), 0)).mean()), _TINY)
        b = np.full(T, 1.0 / T)
        gb = gn @ b
        kappa = float(c * np.sqrt(np.maximum(b @ gb, 0)))
        eye, faces = np.eye(T), None
        if T > ENUMERATE_UP_TO:  # the candidates of the face found, kept if the best of them meets the KKT conditions
            free = _cagrad_support(gn, gb, kappa)
            if free is not None:
                faces = _cagrad_faces(gn, gb, kappa, _masks_of(free[None]))
                w = _cagrad_pick(*_cagrad_candidates(gn, gb, kappa, [eye, faces]))
                faces = faces if _cagrad_kkt_violation(gn, gb, kappa, w, w > 0) is None else None
        if faces is None:
            faces = _cagrad_faces(gn, gb, kappa, _supports(T, False)) if T <= MAX_ENUMERATED_TASKS else eye[:0]
        w_all, objective, feasible = _cagrad_candidates(gn, gb, kappa, [eye, faces])
        # the min-norm point d = G_w has g0 . d >= ||d||^2 >= 0, so its objective is not negative: it is a
        # candidate (after the vertices, as before) only where nothing below zero was found
        if not np.where(feasible & np.isfinite(objective), objective, np.inf).min() < -1e-12:
            m = _cagrad_candidates(gn, gb, kappa, [min_norm_simplex(gram)[None]])
            w_all, objective, feasible = (np.concatenate([a[:T], b, a[T:]]) for a, b in
                                          zip((w_all, objective, feasible), m, strict=True))
        w = _cagrad_pick(w_all, objective, feasible)
        # exact multiplier; ||G_w|| is floored at 1e-4 (normalised units) as in the reference code
        lam = kappa / np.maximum(np.sqrt(np.maximum(_quad(w, gn), 0)), 1e-4)
        return w, float(lam)


def _cagrad_candidates(gn: np.ndarray, gb: np.ndarray, kappa: float, candidates: list[np.ndarray]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate weights (rows), their dual objective and whether they lie on the simplex."""
    w_all = np.concatenate(candidates)
    objective = w_all @ gb + kappa * np.sqrt(np.maximum(_quad(w_all, gn), 0))
    return w_all, objective, (w_all >= -_FEASIBLE_TOL).all(-1)


def _cagrad_pick(w_all: np.ndarray, objective: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """The feasible candidate with the smallest dual objective, clipped to the simplex."""
    w = np.maximum(_best(w_all, objective, feasible), 0)
    return w / w.sum()


def _cagrad_support(gn: np.ndarray, gb: np.ndarray, kappa: float, max_iter: int = 100) -> np.ndarray | None:
    """The support of CAGrad's dual optimum by a primal active-set method: from the best vertex, add the
    coordinates whose KKT conditions fail (only the worst one once a support comes back), move to the face's
    stationary point (stepping back to the boundary and dropping coordinates while it is infeasible) until
    no condition fails. None when it meets a point with ``G w = 0`` or does not finish (the caller then
    tries every face)."""
    T = gn.shape[-1]
    objective = lambda w: w @ gb + kappa * np.sqrt(np.maximum(_quad(w, gn), 0))  # noqa: E731
    start = int(np.argmin(gb + kappa * np.sqrt(np.maximum(np.diagonal(gn), 0))))
    free, w = np.zeros(T, dtype=bool), np.eye(T)[start]
    free[start] = True
    seen, one_at_a_time = set(), False
    for _ in range(max_iter):
        violated = _cagrad_kkt_violation(gn, gb, kappa, w, free)
        if violated is None:
            return free
        if not violated.any():
            return None
        one_at_a_time |= free.tobytes() in seen
        seen.add(free.tobytes())
        if one_at_a_time:
            grad = gb + kappa * (gn @ w) / np.sqrt(max(w @ gn @ w, 0.0))
            violated = np.arange(T) == np.argmin(np.where(violated, grad, np.inf))
        free |= violated
        for _ in range(T):
            cands = _cagrad_faces(gn, gb, kappa, _masks_of(free[None]))
            valid = np.isfinite(cands).all(-1)
            if not valid.any():
                return None
            target = cands[valid][np.argmin(objective(cands[valid]))]
            if objective(target) > objective(w) + 1e-12 * abs(objective(w)):
                return None  # the face's stationary point is no better: the closed form is unreliable here
            neg = free & (target < 0)
            if not neg.any():
                w = target
                break
            step = np.min(w[neg] / (w[neg] - target[neg]))
            w = np.where(free, w + step * (target - w), 0.0)
            free &= w > 1e-15
            w = np.maximum(np.where(free, w, 0.0), 0)
            w = w / w.sum()
        else:
            return None
    return None


def _cagrad_kkt_violation(gn: np.ndarray, gb: np.ndarray, kappa: float, w: np.ndarray, free: np.ndarray,
                          tol: float = 1e-9) -> np.ndarray | None:
    """The coordinates off the support whose KKT conditions fail at ``w`` beyond ``tol`` (relative to the
    gradient), None when none does; all False when the gradient is undefined (``G w = 0``)."""
    norm = np.sqrt(max(w @ gn @ w, 0.0))
    if not norm > 1e-12:
        return np.zeros_like(free)
    grad = gb + kappa * (gn @ w) / norm
    violated = ~free & (grad - w @ grad < -tol * np.abs(grad).max())
    return violated if violated.any() else None


def _cagrad_faces(gn: np.ndarray, gb: np.ndarray, kappa: float, supports: tuple[np.ndarray, ...]) -> np.ndarray:
    """Stationary points of CAGrad's dual on the relative interior of each support's face (2 per face)."""
    T = gn.shape[-1]
    masks = supports[0]
    rhs = np.stack([masks, masks * gb], axis=-1)
    sol = solve(_restricted(gn, supports), rhs) * masks[:, :, None]
    a, cvec = sol[..., 0], sol[..., 1]
    qa, qb, qc = _quad(a, gn), ((a @ gn) * cvec).sum(-1), _quad(cvec, gn)
    disc = np.square(qb) - qa * (qc - kappa**2)
    root = np.sqrt(np.maximum(disc, 0))
    mus = np.stack([qb + root, qb - root], axis=-1) / np.maximum(qa, 1e-300)[:, None]
    y = mus[:, :, None] * a[:, None, :] - cvec[:, None, :]
    total = y.sum(-1, keepdims=True)
    w = y / total
    ok = (disc[:, None] >= 0) & (total[..., 0] > 0)
    return np.where(ok[..., None], w, np.nan).reshape(-1, T)


def nash_bargaining(gram: np.ndarray, init: np.ndarray, iters: int = 20, reg: float = 1e-12) -> np.ndarray:
    """Solve Nash-MTL's bargaining system ``G a = 1 / a`` (a > 0) by damped Newton steps.

    ``a`` minimises the strictly convex ``0.5 a^T G a - sum log a``; the damped step
    ``1 / (1 + newton_decrement)`` keeps ``a`` positive (self-concordance) and converges
    quadratically near the solution. ``G`` is normalised by its Frobenius norm as in the
    reference implementation; ``reg`` keeps zero-gradient tasks finite. At most ``iters`` steps,
    stopping once a step no longer moves ``a`` (the remaining ones would change it by rounding only).
    """
    with np.errstate(all="ignore"):
        h0 = gram / max(np.linalg.norm(gram), _TINY) + reg * np.eye(gram.shape[-1])
        a = np.maximum(init, 1e-6)
        a = a * np.sqrt(gram.shape[-1] / max(a @ h0 @ a, 1e-300))  # the solution has a^T G a = T
        return _newton(h0, a, iters)


def _newton(h0: np.ndarray, a: np.ndarray, iters: int) -> np.ndarray:
    """Damped Newton steps in the scaled variables ``delta = a * u``: ``(I + D H D) u = 1 - a * (H a)``,
    decrement ``sqrt(r . u)``; a non-finite system gives NaN weights."""
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


def random_orders_from_keys(keys: np.ndarray, exclude_self: bool) -> np.ndarray:
    """One task order per row from uniform ``keys`` (T, T); with ``exclude_self`` task i comes last in row i
    (the order :func:`mtlzoo.balancers.pcgrad.random_orders` draws from the same keys)."""
    if exclude_self:
        keys = keys + 2 * np.eye(keys.shape[0])
    return np.argsort(keys, axis=1, kind="stable")


def pcgrad_coefficients(gram: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Coefficients ``C`` with ``gtilde_i = sum_k C_ik g_k`` after PCGrad's projections.

    Task i visits the tasks in ``orders[i]``; whenever ``<gtilde_i, g_j> < 0`` it subtracts
    ``<gtilde_i, g_j> / ||g_j||^2 g_j`` (against the original ``g_j``). All tasks advance in
    lock step, so T small matrix steps replace the T^2 loop.
    """
    gn = normalise(gram)
    T = gn.shape[0]
    rows = np.arange(T)
    coef = np.eye(T)
    with np.errstate(all="ignore"):
        for k in range(orders.shape[1]):
            j = orders[:, k]
            dots = (coef @ gn)[rows, j]
            step = np.where(dots < 0, dots / np.maximum(np.diagonal(gn)[j], _TINY), 0.0)
            coef[rows, j] -= step
    return coef


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax of a vector, as torch computes it (``exp(x - max)``, normalised)."""
    e = np.exp(x - x.max())
    return e / e.sum()


def adam_update(param: np.ndarray, grad: np.ndarray, state: tuple[np.ndarray, np.ndarray, float], lr: float,
                active: bool, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                weight_decay: float = 0.0) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, float]]:
    """One Adam step (L2 weight decay as in ``torch.optim.Adam``) for a balancer's own small weights.

    ``state`` is ``(m, v, step)``; returns the new parameter and state, both unchanged where ``active``
    is false. Non-finite gradients are read as :func:`numpy.nan_to_num` makes them.
    """
    m, v, step = state
    if not active:
        return param, state
    grad = np.nan_to_num(grad) + weight_decay * param
    step = step + 1
    m = betas[0] * m + (1 - betas[0]) * grad
    v = betas[1] * v + (1 - betas[1]) * np.square(grad)
    t = max(step, 1.0)
    update = lr * (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
    return param - update, (m, v, step)
