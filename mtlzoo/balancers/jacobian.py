"""Per-task gradients: the Jacobian as blocks, and the batched / looped ways of computing it.

The Jacobian is kept as a list of ``(T, n_i)`` blocks, one per shared parameter (or feature
tensor), so it is never concatenated: the Gramian is a sum of per-block products (in float64)
and the combined update is one ``weights @ block`` per block.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

_GRAM_CHUNK = 1 << 22


class TaskJacobian:
    """Per-task gradients as ``(T, n_i)`` blocks.

    ``index`` says which of the targets (shared parameters or feature tensors) the blocks belong
    to: targets no task reaches are left out, like ``backward`` leaves their ``.grad`` alone.
    """

    def __init__(self, blocks: list[Tensor], targets: Sequence[Tensor], index: list[int], num_tasks: int) -> None:
        self.blocks = blocks
        self.index = index
        self.shapes = [targets[i].shape for i in index]
        self.num_tasks = num_tasks
        self.device = targets[0].device

    def gramian(self) -> Tensor:
        """The T x T Gramian ``J J^T`` in float64, accumulated block by block."""
        T = self.num_tasks
        gram = torch.zeros(T, T, dtype=torch.float64, device=self.device)
        for block in self.blocks:
            for part in block.split(_GRAM_CHUNK, dim=1):  # bounds the float64 copy
                b = part.double()
                gram.addmm_(b, b.T)
        return gram

    def combine(self, weights: Tensor) -> list[Tensor]:
        """Flat combined gradient ``sum_t w_t J_t`` per block, in each block's dtype."""
        return [weights.to(block.dtype) @ block for block in self.blocks]

    def mul_(self, factor: Tensor) -> TaskJacobian:
        """Multiply every block (used to unscale AMP-scaled gradients); half-precision blocks are
        moved to float32 first, so that unscaled values cannot underflow."""
        for i, block in enumerate(self.blocks):
            if block.dtype in (torch.float16, torch.bfloat16):
                self.blocks[i] = block.float()
            self.blocks[i].mul_(factor.to(self.blocks[i].dtype))
        return self

    def shaped(self, flat: list[Tensor]) -> list[Tensor]:
        """Reshape flat per-block vectors back to the target shapes."""
        return [v.view(shape) for v, shape in zip(flat, self.shapes, strict=True)]


Blocks = tuple[list[Tensor], list[int]]


def _stack_rows(rows: Sequence[Sequence[Tensor | None]], targets: Sequence[Tensor]) -> Blocks:
    """Turn T lists of per-target gradients (None = not reached) into flat ``(T, n)`` blocks.

    A target that no task reaches gets no block; one reached by some tasks gets zero rows.
    """
    blocks, index = [], []
    for i, target in enumerate(targets):
        if all(r[i] is None for r in rows):
            continue
        parts = [r[i] if r[i] is not None else torch.zeros_like(target) for r in rows]
        blocks.append(torch.stack([p.reshape(-1) for p in parts]))
        index.append(i)
    return blocks, index


def batched_vjp(outputs: Sequence[Tensor], inputs: Sequence[Tensor], grad_outputs: Sequence[Tensor],
                retain_graph: bool) -> Blocks:
    """One autograd call with ``is_grads_batched``; returns ``(T, n)`` blocks and their target indices
    (the looped equivalent is :func:`per_task_grads`, one call per task from the losses)."""
    grads = torch.autograd.grad(outputs, inputs, grad_outputs, retain_graph=retain_graph, allow_unused=True,
                                is_grads_batched=True)
    T = grad_outputs[0].shape[0]
    index = [i for i, g in enumerate(grads) if g is not None]
    return [grads[i].reshape(T, -1) for i in index], index


def per_task_grads(losses: Sequence[Tensor], targets: Sequence[Tensor], own: Sequence[Sequence[Tensor]],
                   retain_graph: bool) -> tuple[Blocks, list[list[Tensor | None]]]:
    """Loop over tasks: gradient of loss t w.r.t. ``targets`` (as blocks) and w.r.t. its own ``own[t]``.

    A loss without a graph contributes zeros. The last call frees the graph unless
    ``retain_graph``; autograd only runs the part of the graph between the loss and the inputs.
    """
    T = len(losses)
    rows: list[Sequence[Tensor | None]] = []
    heads: list[list[Tensor | None]] = []
    for t, loss in enumerate(losses):
        inputs = list(targets) + list(own[t])
        if not loss.requires_grad or not inputs:
            rows.append([None] * len(targets))
            heads.append([None] * len(own[t]))
            continue
        grads = torch.autograd.grad(loss, inputs, retain_graph=retain_graph or t < T - 1, allow_unused=True)
        rows.append(grads[: len(targets)])
        heads.append(list(grads[len(targets):]))
    return _stack_rows(rows, targets), heads


def jacobian_and_heads(losses: Sequence[Tensor], targets: Sequence[Tensor], own: Sequence[Sequence[Tensor]],
                       batched: bool, retain_graph: bool = False) -> tuple[Blocks, list[list[Tensor | None]]]:
    """Per-task gradients of the T ``losses`` on ``targets`` plus each task's gradient on ``own[t]``.

    Batched: one autograd call over the stacked losses with an identity ``grad_outputs``
    (head rows other than the task's own are dropped). Looped: one call per task.
    """
    if not batched:
        return per_task_grads(losses, targets, own, retain_graph=retain_graph)
    stacked = torch.stack(list(losses))
    flat_own = [p for group in own for p in group]
    eye = torch.eye(len(losses), dtype=stacked.dtype, device=stacked.device)
    grads = torch.autograd.grad([stacked], list(targets) + flat_own, [eye], retain_graph=retain_graph,
                                allow_unused=True, is_grads_batched=True)
    heads, k = [], len(targets)
    for t, group in enumerate(own):
        heads.append([grads[k + i][t] if grads[k + i] is not None else None for i in range(len(group))])
        k += len(group)
    index = [i for i in range(len(targets)) if grads[i] is not None]
    return ([grads[i].reshape(len(losses), -1) for i in index], index), heads


@contextmanager
def cut_between(features: Sequence[Tensor]) -> Iterator[None]:
    """While active, no gradient flows from one feature tensor into the graph that produced it.

    With multi-scale features (one computed from another) a gradient w.r.t. an earlier feature
    would otherwise include the path through the later one; cut, each feature receives only what
    the heads send it directly, and nothing upstream is computed.
    """
    handles = [f.grad_fn.register_prehook(_drop) for f in features if f.grad_fn is not None]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _drop(grad_outputs: tuple[Tensor | None, ...]) -> tuple[None, ...]:
    return tuple(None for _ in grad_outputs)


def reachable_leaves(root: Tensor, stop: Sequence[Tensor] = ()) -> list[Tensor]:
    """Leaf tensors requiring grad that ``root`` depends on, not looking past the ``stop`` tensors.

    Runs on every call with a plain parameter list, so the walk is kept lean: graph nodes (not their
    ids) mark what was seen, each node is queued once, and only nodes without inputs (leaves) are
    asked for their ``variable``.
    """
    if root.grad_fn is None:
        return [root] if root.requires_grad else []
    seen = {s.grad_fn for s in stop if s.grad_fn is not None}
    if root.grad_fn in seen:
        return []
    seen.add(root.grad_fn)
    leaves: dict[int, Tensor] = {}
    stack = [root.grad_fn]
    while stack:
        node = stack.pop()
        inputs = node.next_functions
        if not inputs:
            variable = getattr(node, "variable", None)
            if variable is not None:
                leaves[id(variable)] = variable
            continue
        for fn, _ in inputs:
            if fn is not None and fn not in seen:
                seen.add(fn)
                stack.append(fn)
    return list(leaves.values())
