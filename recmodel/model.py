"""The recall / CTR model: per-field embeddings -> MLP (or two towers) -> logit.

The model is split into ``embed`` (indices -> ``[N, K, D]`` field embeddings)
and ``head`` (embeddings -> logit) because the Hessian attribution
differentiates the head with respect to the embedding inputs: a field is a
``D``-dimensional block of the head's input. ``head`` accepts any leading
batch shape (including none), so ``torch.func`` can call it on one sample.
The activation is smooth (GELU by default) so the input Hessian is non-zero.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from configs.recmodel import ModelSettings
from recmodel.features import FeatureEncoder


class SiLU(nn.Module):
    """x * sigmoid(x) as a composite: ``silu_backward`` has no forward-mode AD."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "silu": SiLU,
    "softplus": nn.Softplus,
    "relu": nn.ReLU,
}


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class LinearSplit:
    """A DNN head as ``head(e) = mlp(weight . e + bias)``, with the MLP in parts.

    ``layers`` are the (weight, bias) of the Linear layers after the first,
    the last one giving the logit; ``activation`` (elementwise) comes before
    each of them. The attribution builds the head's input Hessian from these
    parts (``recmodel/attribution.py``).
    """

    weight: torch.Tensor  # [H, K, D]
    bias: torch.Tensor  # [H]
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    activation: nn.Module


class RecallModel(nn.Module):
    """Embeddings for ``fields`` (categorical then numeric) and a DNN / two-tower head."""

    def __init__(
        self,
        fields: list[str],
        cardinalities: list[int],
        numeric_edges: list[list[float]],
        cfg: ModelSettings,
        identity: tuple[int, ...] = (),
    ) -> None:
        """``identity``: categorical field positions (hashed ids) whose tables start at zero.

        Why: a hashed id that no training row reaches (a new app without
        synthetic rows) keeps its initial vector; at zero it adds nothing, so
        such an app scores from its other fields instead of from noise.
        """
        super().__init__()
        self.fields = list(fields)
        self.cfg = cfg
        self.n_cat, self.n_num = len(cardinalities), len(numeric_edges)
        d = cfg.embedding_dim
        self.cat_emb = nn.ModuleList(nn.Embedding(c, d) for c in cardinalities)
        if cfg.numeric_mode == "bucket":
            self.num_emb = nn.ModuleList(nn.Embedding(len(e) + 1, d) for e in numeric_edges)
        else:
            self.num_w = nn.Parameter(torch.zeros(self.n_num, d))
            self.num_b = nn.Parameter(torch.zeros(self.n_num, d))
        for i, edges in enumerate(numeric_edges):
            self.register_buffer(f"edges_{i}", torch.tensor(edges, dtype=torch.float32))
        self._init_embeddings(cfg.embedding_init_std)
        for i in identity:
            nn.init.zeros_(self.cat_emb[i].weight)
        if cfg.first_order:
            self.cat_bias = nn.ModuleList(nn.Embedding(c, 1) for c in cardinalities)
            self.num_bias = nn.ModuleList(nn.Embedding(len(e) + 1, 1) for e in numeric_edges)
            for table in [*self.cat_bias, *self.num_bias]:
                nn.init.zeros_(table.weight)
        k = len(self.fields)
        if cfg.architecture == "dnn":
            self.mlp = mlp([k * d, *cfg.hidden, 1], cfg.activation)
        else:
            user = [i for i, f in enumerate(self.fields) if f in cfg.user_fields]
            item = [i for i in range(k) if i not in user]
            if not user or not item:
                raise ValueError(
                    f"two_tower: user fields {user} / item fields {item} must be non-empty"
                )
            self.register_buffer("user_idx", torch.tensor(user))
            self.register_buffer("item_idx", torch.tensor(item))
            self.user_tower = mlp([len(user) * d, *cfg.hidden, cfg.tower_dim], cfg.activation)
            self.item_tower = mlp([len(item) * d, *cfg.hidden, cfg.tower_dim], cfg.activation)
            self.bias = nn.Parameter(torch.zeros(()))

    def _init_embeddings(self, std: float) -> None:
        tables = list(self.cat_emb) + list(getattr(self, "num_emb", []))
        for table in tables:
            nn.init.normal_(table.weight, std=std)
        if self.cfg.numeric_mode == "linear":
            nn.init.normal_(self.num_w, std=std)

    def embed(self, cat_idx: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        """Field embeddings ``[N, K, D]`` in ``fields`` order."""
        parts = [emb(cat_idx[:, i]) for i, emb in enumerate(self.cat_emb)]
        if self.n_num:
            if self.cfg.numeric_mode == "bucket":
                for i, emb in enumerate(self.num_emb):
                    edges = getattr(self, f"edges_{i}")
                    parts.append(emb(torch.bucketize(num[:, i].contiguous(), edges)))
            else:
                parts.extend((num[:, :, None] * self.num_w + self.num_b).unbind(1))
        return torch.stack(parts, dim=1)

    def head(self, emb: torch.Tensor) -> torch.Tensor:
        """Logit from embeddings ``[..., K, D]`` -> ``[...]`` (any leading shape)."""
        if self.cfg.architecture == "dnn":
            return self.mlp(emb.flatten(-2)).squeeze(-1)
        return (self._side(emb, "user") * self._side(emb, "item")).sum(-1) + self.bias

    def _side(self, emb: torch.Tensor, side: str) -> torch.Tensor:
        """One tower's output from the field embeddings ``[..., K, D]``."""
        idx, net = (
            (self.user_idx, self.user_tower) if side == "user" else (self.item_idx, self.item_tower)
        )
        return net(emb.index_select(-2, idx).flatten(-2))

    def first_order_terms(self, cat_idx: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        """Per-field scalar biases ``[N, K]`` in ``fields`` order (zeros without them)."""
        if not self.cfg.first_order:
            return cat_idx.new_zeros((cat_idx.shape[0], len(self.fields)), dtype=torch.float32)
        terms = [b(cat_idx[:, i]).squeeze(-1) for i, b in enumerate(self.cat_bias)]
        for i, b in enumerate(self.num_bias):
            edges = getattr(self, f"edges_{i}")
            terms.append(b(torch.bucketize(num[:, i].contiguous(), edges)).squeeze(-1))
        return torch.stack(terms, dim=1)

    def first_order_term(self, cat_idx: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        """Per-field scalar biases (the "wide" part): main effects, zero Hessian.

        With them the MLP need not spend curvature on main effects, which
        would otherwise show up as spurious pairs in the Hessian map.
        """
        return self.first_order_terms(cat_idx, num).sum(1)

    def tower(
        self, side: str, cat_idx: torch.Tensor, num: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(vector, bias)`` of one side (``user`` / ``item``) of a two-tower model, with
        ``forward == (u * v).sum(-1) + b_user + b_item`` exactly.

        What a retrieval service needs: item vectors and biases go into an
        index, the user side is computed per request, and ranking apps by
        ``u . v + b_item`` is the model's ranking (``b_user`` is constant per
        user). ``b_user`` holds the user fields' first-order terms and the
        global bias, ``b_item`` the item fields'. Only ``side``'s tower runs.
        """
        if self.cfg.architecture != "two_tower":
            raise ValueError(f"towers: architecture {self.cfg.architecture!r} is not two_tower")
        idx = self.user_idx if side == "user" else self.item_idx
        bias = self.first_order_terms(cat_idx, num).index_select(1, idx).sum(1)
        vec = self._side(self.embed(cat_idx, num), side)
        return vec, bias + self.bias if side == "user" else bias

    def towers(
        self, cat_idx: torch.Tensor, num: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(u, b_user, v, b_item)``: both sides of ``tower``."""
        return (*self.tower("user", cat_idx, num), *self.tower("item", cat_idx, num))

    def forward(self, cat_idx: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        logit = self.head(self.embed(cat_idx, num))
        if self.cfg.first_order:
            logit = logit + self.first_order_term(cat_idx, num)
        return logit

    def linear_split(self) -> LinearSplit | None:
        """The head's first layer (linear in the embeddings) and the MLP after it; DNN only.

        The attribution pushes each field's difference through the first
        layer once per row instead of once per Hessian-vector product (the
        largest matmul of the head), and differentiates the rest by its layers.
        """
        if self.cfg.architecture != "dnn" or not self.cfg.hidden:
            return None
        first, *rest = self.mlp
        k, d = len(self.fields), self.cfg.embedding_dim
        layers = tuple((m.weight.detach(), m.bias.detach()) for m in rest[1::2])
        return LinearSplit(
            first.weight.detach().reshape(-1, k, d), first.bias.detach(), layers, rest[0]
        )


def build_model(encoder: FeatureEncoder, cfg: ModelSettings, *, seed: int) -> RecallModel:
    """A freshly initialised model for ``encoder``'s fields (seeded)."""
    torch.manual_seed(seed)
    spec = encoder.spec
    return RecallModel(
        list(spec.fields),
        encoder.cardinalities(),
        encoder.standardized_edges(),
        cfg,
        identity=tuple(i for i, c in enumerate(spec.categorical) if c in spec.hashed),
    )


def model_state(model: RecallModel, encoder: FeatureEncoder) -> dict[str, Any]:
    """Everything needed to rebuild ``model``: config, encoder, weights."""
    return {
        "config": model.cfg.model_dump(mode="json"),
        "encoder": encoder.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def model_from_state(state: dict[str, Any]) -> tuple[RecallModel, FeatureEncoder]:
    """Inverse of ``model_state`` (weights loaded, eval mode)."""
    encoder = FeatureEncoder.from_dict(state["encoder"])
    cfg = ModelSettings.model_validate(state["config"])
    model = build_model(encoder, cfg, seed=0)
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model, encoder
