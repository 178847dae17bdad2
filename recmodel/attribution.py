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

A DNN head (``RecallModel.linear_split()``: ``a = W e + c`` then an MLP whose
only nonlinearity is an elementwise activation ``g``) needs no reverse-mode
tangents. Its Hessian in ``a`` is ``sum_l J_l^T diag(r_l * g''(z_l)) J_l``:
each hidden layer's curvature, weighted by the backpropagated signal
``r_l = dlogit/dg(z_l)`` and pulled back by ``J_l = dz_l/da``. So
``Gamma_ij = sum_l <J_l u_i, r_l g''(z_l) J_l u_j>`` with ``u_k = W_k delta_k``:
one primal pass per point, one forward pass of the K tangents, a K x K Gram
per layer. Half the matmul work of forward-over-reverse and a few elementwise
passes instead of the double-backward of ``g`` on every tangent.

* ``method="hessian"``: H at the row itself (``t = 1``).
* ``method="expected_hessian"`` (Janizek et al. 2021, Expected Hessians):
  H at ``x^b + a * b * delta`` with ``a, b ~ U(0, 1)``, times ``a * b``.
* baselines: random rows of a background set (default) or all-zero.

Attribute on the logit (``model.head``), never on the sigmoid output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch.func import grad, jacfwd, jacrev, vmap

from recmodel.model import LinearSplit, RecallModel

Head = Callable[[torch.Tensor], torch.Tensor]


def _pair_hessian(head: Head) -> Callable[..., torch.Tensor]:
    """(t0 [K], baseline [K, D], delta [K, D]) -> K x K Hessian of phi at t0."""

    def phi(t: torch.Tensor, base: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return head(base + t[:, None] * delta)

    return jacfwd(jacrev(phi))


def _slopes(g: Head, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``g'(z)`` and ``g''(z)`` of an elementwise activation, by autodiff of ``g``."""
    d1 = grad(lambda v: g(v).sum())
    return d1(z), grad(lambda v: d1(v).sum())(z)


def _curvatures(
    split: LinearSplit, z: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per hidden layer at the points ``z`` ``[nB, H]``: ``g'(z_l)`` and ``r_l * g''(z_l)``."""
    g = split.activation
    first, second = [], []
    for w, bias in split.layers:
        d1, d2 = _slopes(g, z)
        first.append(d1)
        second.append(d2)
        z = g(z) @ w.T + bias
    weights = []  # the last hidden layer first
    signal = split.layers[-1][0][0]  # r_last = dlogit / dg(z_last): the output weights
    for i in range(len(first) - 1, -1, -1):
        weights.append(signal * second[i])
        if i:
            signal = (signal * first[i]) @ split.layers[i - 1][0]
    return first, weights[::-1]


class _Scratch:
    """Large tensors reused from chunk to chunk, by name.

    A fresh tensor of tens of MB is fresh memory pages (glibc maps blocks over
    32 MiB anew each time): the page faults cost several times the multiply
    that fills it.
    """

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, *shape: int) -> torch.Tensor:
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < size:
            buffer = self._buffers[name] = torch.empty(size, dtype=self.dtype)
        return buffer[:size].view(shape)


def _mlp_hessians(
    split: LinearSplit, bs: torch.Tensor, delta: torch.Tensor, s: torch.Tensor, scratch: _Scratch
) -> torch.Tensor:
    """``[n, B, K, K]`` phi-Hessians of a DNN head at ``x^b + s * delta``, from its layers."""
    n, b, k, d = delta.shape
    nb, w_first = n * b, split.weight
    # Tangents u_k = W_k delta_k, one matmul per field: [K, nB, H] viewed as [nB, K, H].
    u = torch.bmm(
        delta.reshape(nb, k, d).transpose(0, 1),
        w_first.permute(1, 2, 0),
        out=scratch.get("u", k, nb, w_first.shape[0]),
    ).transpose(0, 1)
    z = bs.reshape(nb, k * d) @ w_first.reshape(-1, k * d).T + split.bias
    slopes, weights = _curvatures(split, z + s.reshape(nb, 1) * u.sum(1))
    out = u.new_zeros(nb, k, k)
    tangent = u  # J_l u_k, [nB, K, H_l]
    for i, (w, _) in enumerate(split.layers):
        h = tangent.shape[-1]
        scaled = torch.mul(tangent, weights[i][:, None, :], out=scratch.get(f"scaled{i}", nb, k, h))
        out.baddbmm_(scaled, tangent.transpose(1, 2))
        if i + 1 < len(slopes):
            torch.mul(tangent, slopes[i][:, None, :], out=scaled)
            nxt = scratch.get(f"tangent{i + 1}", nb * k, w.shape[0])
            tangent = torch.mm(scaled.view(nb * k, h), w.T, out=nxt).view(nb, k, -1)
    return out.view(n, b, k, k)


def field_interactions(
    head: Head,
    x: torch.Tensor,
    baselines: torch.Tensor,
    scales: torch.Tensor | None = None,
    *,
    split: LinearSplit | None = None,
    chunk_rows: int = 256,
) -> torch.Tensor:
    """Signed per-row maps ``Gamma(x)`` ``[N, K, K]`` (diagonal zeroed).

    ``x`` is ``[N, K, D]``, ``baselines`` ``[N, B, K, D]``. ``scales`` ``[N, B]``
    are path points ``s`` (Hessian taken at ``x^b + s * delta`` and multiplied
    by ``s``); ``None`` means ``s = 1``: the Hessian at ``x`` (eq. 10-11).
    ``split`` (``RecallModel.linear_split()``) is an exact shortcut for DNN
    heads: the Hessian from the MLP's layers (module docstring).
    """
    n, k, _ = x.shape
    b = baselines.shape[1]
    if baselines.shape[0] != n or baselines.shape[2:] != x.shape[1:]:
        raise ValueError(f"baselines {tuple(baselines.shape)} do not match rows {tuple(x.shape)}")
    out = torch.empty(n, k, k, dtype=x.dtype)
    scratch = _Scratch(x.dtype)
    with torch.no_grad():
        for start in range(0, n, chunk_rows):
            xs, bs = x[start : start + chunk_rows], baselines[start : start + chunk_rows]
            delta = xs[:, None] - bs
            if scales is None:
                s = torch.ones(len(xs), b, dtype=x.dtype)
            else:
                s = scales[start : start + chunk_rows].to(x.dtype)
            if split is None:
                t0 = s[:, :, None].expand(len(xs), b, k).contiguous()
                h = vmap(vmap(_pair_hessian(head)))(t0, bs, delta)
            else:
                h = _mlp_hessians(split, bs, delta, s, scratch)
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
