"""LLMRec-style noise pruning (Wei et al., WSDM'24): drop the least plausible synthetic rows.

Why: an LLM's worst outputs are noise, and under the current model they are
the synthetic rows with the largest loss. In every minibatch, after a warm-up
(the model must first know something before its loss can judge a row), the
``share`` of the batch's synthetic rows with the largest per-row loss leave
the loss; real rows are never pruned. This is on top of the importance
weights, which correct the synthetic *distribution*; pruning removes single
implausible rows the weights cannot see.
"""

from __future__ import annotations

import math

import torch

from jobs.platform.errors import ConfigError


def check_share(share: float, what: str) -> None:
    """A pruning share is in [0, 1); ConfigError naming the key otherwise."""
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"{what}: {share} is not in [0, 1); expected the share of synthetic "
                          "rows pruned per batch")  # fmt: skip


def keep_mask(per_row: torch.Tensor, synthetic: torch.Tensor, share: float) -> torch.Tensor:
    """Boolean mask of the rows that stay in the loss of one batch.

    ``per_row``: the loss of each row; ``synthetic``: which rows are synthetic.
    The ``round(share * n_synthetic)`` synthetic rows with the largest loss are
    dropped (ties by position); every real row stays.
    """
    keep = torch.ones_like(synthetic, dtype=torch.bool)
    n_drop = math.floor(share * int(synthetic.sum()) + 0.5)
    if n_drop <= 0:
        return keep
    masked = torch.where(synthetic, per_row.detach(), torch.full_like(per_row, -math.inf))
    keep[torch.topk(masked, n_drop).indices] = False
    return keep


def pruned_mean(per_row: torch.Tensor, synthetic: torch.Tensor | None, share: float,
                weights: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:  # fmt: skip
    """(weighted mean loss over the kept rows, rows pruned) of one batch.

    With ``share`` 0 or no ``synthetic`` flags it is the plain weighted mean.
    """
    w = torch.ones_like(per_row) if weights is None else weights
    pruned = 0
    if synthetic is not None and share > 0:
        keep = keep_mask(per_row, synthetic, share)
        w, pruned = w * keep, int((~keep).sum())
    return (w * per_row).sum() / w.sum().clamp_min(1e-12), pruned
