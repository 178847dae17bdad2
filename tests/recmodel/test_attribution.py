"""Hessian attribution: batched == slow reference, exact on known Hessians."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.recmodel import ModelSettings
from recmodel.attribution import (
    field_interactions,
    interaction_map,
    reference_interactions,
)
from recmodel.model import RecallModel

K, D = 5, 3


def _small_model(
    architecture: str = "dnn", activation: str = "gelu", hidden: tuple[int, ...] = (12, 6)
) -> RecallModel:
    torch.manual_seed(3)
    cfg = ModelSettings(
        embedding_dim=D,
        hidden=hidden,
        activation=activation,
        architecture=architecture,
        user_fields=("f0", "f1"),
        tower_dim=4,
    )
    model = RecallModel([f"f{i}" for i in range(K)], [7] * K, [], cfg).double()
    with torch.no_grad():  # larger weights: a curved, strongly interacting head
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


def _rows(n: int, b: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, K, D, generator=gen, dtype=torch.float64)
    base = torch.randn(n, b, K, D, generator=gen, dtype=torch.float64)
    return x, base


@pytest.mark.parametrize("architecture", ["dnn", "two_tower"])
@pytest.mark.parametrize("path", [False, True])
def test_field_interactions__equal_per_sample_hessian_reference(architecture, path):
    # Setup
    model = _small_model(architecture)
    x, base = _rows(6, 4, seed=1)
    scales = torch.rand(6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    scales = scales if path else None
    # Run
    fast = field_interactions(model.head, x, base, scales, chunk_rows=4)
    split = model.linear_split()
    fast_split = field_interactions(model.head, x, base, scales, split=split, chunk_rows=4)
    slow = reference_interactions(model.head, x, base, scales)
    # Assert
    assert slow.abs().max() > 1e-3  # the reference is not trivially zero
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    if split is not None:
        torch.testing.assert_close(fast_split, slow, atol=1e-5, rtol=0)


@pytest.mark.parametrize("activation", ["gelu", "silu", "softplus"])
@pytest.mark.parametrize("hidden", [(12,), (10, 8, 6)])
def test_field_interactions__dnn_layer_path_equals_reference_any_depth_activation(
    activation, hidden
):
    # Setup: the DNN shortcut builds the Hessian from the MLP's layers
    model = _small_model("dnn", activation, hidden)
    x, base = _rows(5, 3, seed=4)
    scales = torch.rand(5, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for s in (None, scales):
        # Run
        fast = field_interactions(model.head, x, base, s, split=model.linear_split())
        slow = reference_interactions(model.head, x, base, s)
        # Assert
        assert slow.abs().max() > 1e-3
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_field_interactions__known_hessian_is_exact():
    # f(x) = <e_1, e_3> + 2 <e_0, e_4>: H_13 = I, H_04 = 2 I, every other block 0.
    def head(e: torch.Tensor) -> torch.Tensor:
        return (e[..., 1, :] * e[..., 3, :]).sum(-1) + 2 * (e[..., 0, :] * e[..., 4, :]).sum(-1)

    x, base = _rows(8, 3, seed=5)
    delta = x[:, None] - base
    expected = torch.zeros(8, K, K, dtype=torch.float64)
    d13 = (delta[:, :, 1] * delta[:, :, 3]).sum(-1).mean(1)
    d04 = 2 * (delta[:, :, 0] * delta[:, :, 4]).sum(-1).mean(1)
    expected[:, 1, 3] = expected[:, 3, 1] = d13
    expected[:, 0, 4] = expected[:, 4, 0] = d04
    got = field_interactions(head, x, base)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_field_interactions__zero_baseline_gives_product_of_inputs():
    # With x^b = 0 and f = e_i . e_j the map is exactly x_i . x_j (diagonal zeroed).
    def head(e: torch.Tensor) -> torch.Tensor:
        return (e[..., 0, :] * e[..., 2, :]).sum(-1)

    x, _ = _rows(4, 1, seed=9)
    got = field_interactions(head, x, torch.zeros(4, 1, K, D, dtype=torch.float64))
    want = (x[:, 0] * x[:, 2]).sum(-1)
    torch.testing.assert_close(got[:, 0, 2], want)
    torch.testing.assert_close(got[:, 2, 0], want)
    assert float(got.diagonal(dim1=1, dim2=2).abs().max()) == 0.0


def test_interaction_map__symmetric_nonnegative_zero_diagonal():
    model = _small_model().float()
    gen = torch.Generator().manual_seed(0)
    cat = torch.randint(0, 7, (40, K), generator=gen)
    num = torch.zeros(40, 0)
    for method in ("hessian", "expected_hessian"):
        for baseline in ("background", "zero"):
            m = interaction_map(model, cat, num, n_baselines=3, baseline=baseline, method=method)
            assert m.shape == (K, K)
            assert np.allclose(m, m.T, atol=1e-6)
            assert (m >= 0).all() and np.all(np.diag(m) == 0) and m.max() > 0


def test_interaction_map__relu_head_has_no_curvature():
    # Why the model uses GELU: a ReLU MLP's input Hessian is zero almost everywhere.
    relu = _small_model(activation="relu").float()
    gelu = _small_model(activation="gelu").float()
    cat = torch.randint(0, 7, (30, K), generator=torch.Generator().manual_seed(1))
    num = torch.zeros(30, 0)
    assert interaction_map(relu, cat, num).max() == 0.0
    assert interaction_map(gelu, cat, num).max() > 0.0
