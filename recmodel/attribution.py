"""Field-level second-order attribution on embedding inputs (paper eq. 10-11).

For a row with field embeddings ``x = (x_1 .. x_K)`` and a baseline ``x^b``:

    Gamma_ij(x) = E_b[(x_i - x_i^b)^T H_ij (x_j - x_j^b)]

with ``H_ij`` the ``D x D`` block of the logit's Hessian with respect to the
embeddings. The map is ``mean_x |Gamma_ij(x)|`` with the diagonal zeroed.

How it is computed without per-sample Hessians: with ``delta = x - x^b``
define ``phi(t) = f(x^b + t * delta)`` where ``t`` in R^K scales each field's
block. Then ``d2 phi / dt_i dt_j = delta_i^T H_ij(x^b + t * delta) delta_j``,
so the whole K x K field map of one (row, baseline) pair is the Hessian of a
K-variable function: K Hessian-vector products (forward-over-reverse,
``jacfwd(jacrev)``), one per field block. ``vmap`` batches them over rows and
baselines, so the work is a few large matmuls per chunk of rows.

* ``method="hessian"``: H at the row itself (``t = 1``).
* ``method="expected_hessian"`` (Janizek et al. 2021, Expected Hessians):
  H at ``x^b + a * b * delta`` with ``a, b ~ U(0, 1)``, times ``a * b``.
* baselines: random rows of a background set (default) or all-zero.

Attribute on the logit (``model.head``), never on the sigmoid output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch.func import jacfwd, jacrev, vmap

from recmodel.model import RecallModel

Head = Callable[[torch.Tensor], torch.Tensor]


def _pair_hessian(head: Head) -> Callable[..., torch.Tensor]:
    """(t0 [K], baseline [K, D], delta [K, D]) -> K x K Hessian of phi at t0."""

    def phi(t: torch.Tensor, base: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return head(base + t[:, None] * delta)

    return jacfwd(jacrev(phi))


def _pair_hessian_linear(rest: Head) -> Callable[..., torch.Tensor]:
    """Same as ``_pair_hessian`` for ``head = rest(W e + c)``, in hidden space.

    ``phi(t) = rest(a_base + t @ u)`` with ``a_base = W x^b + c`` and
    ``u_k = W_k delta_k``: the K tangents skip the first (largest) matmul.
    """

    def phi(t: torch.Tensor, a_base: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return rest(a_base + t @ u)

    return jacfwd(jacrev(phi))


Split = tuple[torch.Tensor, torch.Tensor, Head]


def _chunk_hessians(
    head: Head, split: Split | None, bs: torch.Tensor, delta: torch.Tensor, t0: torch.Tensor
) -> torch.Tensor:
    """``[n, B, K, K]`` phi-Hessians for one chunk (generic or linear-split path)."""
    if split is None:
        return vmap(vmap(_pair_hessian(head)))(t0, bs, delta)
    weight, bias, rest = split
    a_base = torch.einsum("hkd,nbkd->nbh", weight, bs) + bias
    u = torch.einsum("hkd,nbkd->nbkh", weight, delta)
    return vmap(vmap(_pair_hessian_linear(rest)))(t0, a_base, u)


def field_interactions(
    head: Head,
    x: torch.Tensor,
    baselines: torch.Tensor,
    scales: torch.Tensor | None = None,
    *,
    split: Split | None = None,
    chunk_rows: int = 256,
) -> torch.Tensor:
    """Signed per-row maps ``Gamma(x)`` ``[N, K, K]`` (diagonal zeroed).

    ``x`` is ``[N, K, D]``, ``baselines`` ``[N, B, K, D]``. ``scales`` ``[N, B]``
    are path points ``s`` (Hessian taken at ``x^b + s * delta`` and multiplied
    by ``s``); ``None`` means ``s = 1``: the Hessian at ``x`` (eq. 10-11).
    ``split`` (``RecallModel.linear_split()``) is an exact shortcut for heads
    that start with a linear layer.
    """
    n, k, _ = x.shape
    b = baselines.shape[1]
    if baselines.shape[0] != n or baselines.shape[2:] != x.shape[1:]:
        raise ValueError(f"baselines {tuple(baselines.shape)} do not match rows {tuple(x.shape)}")
    out = torch.empty(n, k, k, dtype=x.dtype)
    with torch.no_grad():
        for start in range(0, n, chunk_rows):
            xs, bs = x[start : start + chunk_rows], baselines[start : start + chunk_rows]
            delta = xs[:, None] - bs
            if scales is None:
                s = torch.ones(len(xs), b, dtype=x.dtype)
            else:
                s = scales[start : start + chunk_rows].to(x.dtype)
            t0 = s[:, :, None].expand(len(xs), b, k).contiguous()
            h = _chunk_hessians(head, split, bs, delta, t0)
            out[start : start + len(xs)] = (h * s[:, :, None, None]).mean(1)
    out.diagonal(dim1=1, dim2=2).zero_()
    return out


def draw_baselines(
    x: torch.Tensor,
    background: torch.Tensor,
    n_baselines: int,
    kind: Literal["background", "zero"],
    generator: torch.Generator,
) -> torch.Tensor:
    """``[N, B, K, D]`` baselines: random background rows per row, or zeros."""
    if kind == "zero":
        return torch.zeros(x.shape[0], 1, *x.shape[1:], dtype=x.dtype)
    if kind != "background":
        raise ValueError(f"baseline {kind!r}: expected 'background' or 'zero'")
    idx = torch.randint(len(background), (x.shape[0], n_baselines), generator=generator)
    return background[idx]


def interaction_map(
    model: RecallModel,
    cat_idx: torch.Tensor,
    num: torch.Tensor,
    *,
    background: tuple[torch.Tensor, torch.Tensor] | None = None,
    n_baselines: int = 8,
    baseline: Literal["background", "zero"] = "background",
    method: Literal["hessian", "expected_hessian"] = "hessian",
    seed: int = 0,
    chunk_rows: int = 256,
) -> np.ndarray:
    """The K x K field map ``mean_x |Gamma_ij(x)|`` of ``model`` over the given rows.

    ``background`` (encoded rows) supplies the baselines; by default the rows
    themselves. For ``expected_hessian`` with the zero baseline, ``n_baselines``
    path points are drawn per row.
    """
    if method not in ("hessian", "expected_hessian"):
        raise ValueError(f"method {method!r}: expected 'hessian' or 'expected_hessian'")
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = model.embed(cat_idx, num)
        bg = x if background is None else model.embed(*background)
    base = draw_baselines(x, bg, n_baselines, baseline, gen)
    scales = None
    if method == "expected_hessian":
        if base.shape[1] == 1 and n_baselines > 1:
            base = base.expand(-1, n_baselines, -1, -1)
        n, b = base.shape[:2]
        scales = torch.rand(n, b, generator=gen) * torch.rand(n, b, generator=gen)
    per_row = field_interactions(
        model.head, x, base, scales, split=model.linear_split(), chunk_rows=chunk_rows
    )
    return per_row.abs().mean(0).double().numpy()


def reference_interactions(
    head: Head,
    x: torch.Tensor,
    baselines: torch.Tensor,
    scales: torch.Tensor | None = None,
) -> torch.Tensor:
    """Slow reference: one full ``autograd.functional.hessian`` per (row, point).

    For tests and the benchmark only; it is what ``field_interactions`` avoids.
    """
    n, k, d = x.shape
    out = torch.zeros(n, k, k, dtype=x.dtype)

    def flat_head(v: torch.Tensor) -> torch.Tensor:
        return head(v.reshape(k, d))

    for r in range(n):
        hessians = {}
        for bi in range(baselines.shape[1]):
            s = 1.0 if scales is None else float(scales[r, bi])
            delta = x[r] - baselines[r, bi]
            key = s if scales is None else (bi,)
            if key not in hessians:
                point = (baselines[r, bi] + s * delta).reshape(-1)
                hessians[key] = torch.autograd.functional.hessian(flat_head, point)
            h = hessians[key].reshape(k, d, k, d)
            out[r] += s * torch.einsum("id,idje,je->ij", delta, h, delta)
        out[r] /= baselines.shape[1]
        out[r].fill_diagonal_(0.0)
    return out
