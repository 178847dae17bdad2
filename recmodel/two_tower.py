"""Two-tower retrieval model that can represent a cold app.

Why: a recall model without item identity cannot tell two apps with the same
category / price / rating apart, so a new app can never be learned; with an
identity embedding a new app's vector is untrained, and that is what
synthetic interactions are for (ColdLLM, WSDM'25).

* item tower: ``app_id`` hash-bucket embedding as a zero-initialised residual
  (slot 0 = out of vocabulary, fixed at zero: every app without a training row
  maps there, and ``id_dropout`` of the training rows are mapped there too so
  the content inputs learn to carry weight, DropoutNet-style; an app with few
  rows, e.g. a cold app with a handful of synthetic clicks, moves only a
  little away from its content representation), category
  embedding, standardised price / rating and, when ``use_text``, a projection
  of the precomputed description embedding (``recmodel.text_embed``);
* user tower: embeddings of the profile (and any context) fields; values not
  seen in training map to slot 0;
* loss: in-batch softmax over clicked rows (other rows' items are the
  negatives; repeats of the positive item are masked) over rows drawn in
  proportion to importance weight (1 for real rows, stage-2 weights for
  synthetic ones) times *positive mass*: 1 for a click, or, with
  ``labels``, a probability in [0, 1] (``soft_labels``: a synthetic row's
  ``click_prob``, the judge's probability rather than one draw from it, so a
  cold app with a few dozen judged impressions is not trained on a handful of
  coin flips);
* pruning (``prune_share``, LLMRec): after ``prune_warmup`` epochs the
  highest-loss share of each batch's synthetic rows leaves the loss
  (``recmodel.prune``).

Everything is batched torch on a bounded, seeded sample of clicked rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError, InputError
from recmodel.features import hash_slots
from recmodel.prune import check_share, pruned_mean

OOV = 0


@dataclass(frozen=True)
class TwoTowerConfig:
    """Architecture and optimisation of the two-tower model."""

    dim: int = 32
    id_buckets: int = 8192
    id_dropout: float = 0.2
    use_text: bool = False
    # False: every app maps to the OOV slot (the category / price / rating-only model).
    use_id: bool = True
    epochs: int = 10
    batch_size: int = 256
    lr: float = 5e-3
    weight_decay: float = 1e-6
    max_rows: int = 100_000
    seed: int = 0
    # LLMRec pruning: share of each batch's synthetic rows dropped (highest loss), after
    # this many epochs of warm-up. 0: off.
    prune_share: float = 0.0
    prune_warmup: int = 1


@dataclass
class ItemCatalog:
    """Every rankable item: id, categorical and numeric fields, optional text vectors."""

    items: pd.DataFrame  # app_id + cat_fields + num_fields, one row per item
    cat_fields: tuple[str, ...]
    num_fields: tuple[str, ...]
    text: np.ndarray | None = None  # (n_items, text_dim), row-aligned with items

    def __post_init__(self) -> None:
        need = [S.APP_ID, *self.cat_fields, *self.num_fields]
        missing = [c for c in need if c not in self.items.columns]
        if missing:
            raise InputError(f"item catalogue: missing columns {missing}; expected {need}")
        if self.items[S.APP_ID].duplicated().any():
            raise InputError("item catalogue: duplicate app_id values; expected one row per app")
        self.items = self.items.reset_index(drop=True)
        self.index = pd.Index(self.items[S.APP_ID].astype(str))

    def positions(self, app_ids: pd.Series) -> np.ndarray:
        """Row positions of ``app_ids``; InputError naming ids not in the catalogue."""
        pos = self.index.get_indexer(app_ids.astype(str))
        if (pos < 0).any():
            bad = sorted(set(app_ids[pos < 0].astype(str)))[:5]
            raise InputError(f"column app_id: {bad} not in the item catalogue")
        return pos


def _clicks(rows: pd.DataFrame) -> np.ndarray:
    return (rows[S.CLICKED].to_numpy() == 1).astype(float)


def soft_labels(rows: pd.DataFrame, column: str = "click_prob") -> np.ndarray:
    """Positive mass per row: ``column`` where present (synthetic rows), else ``clicked``.

    Why: the LLM judges a click *probability*; the sampled ``clicked`` flag is
    one coin flip of it. Real rows have no probability (NaN or no column) and
    keep their observed click.
    """
    y = _clicks(rows)
    if column not in rows.columns:
        return y
    p = pd.to_numeric(rows[column], errors="coerce").to_numpy(float)
    bad = np.isfinite(p) & ((p < 0) | (p > 1))
    if bad.any():
        raise InputError(f"column {column}: {int(bad.sum())} values outside [0, 1]; "
                         "expected click probabilities")  # fmt: skip
    return np.where(np.isfinite(p), p, y)


def bucket(app_ids: pd.Series | np.ndarray, buckets: int) -> np.ndarray:
    """Stable hash bucket in 1..buckets of each id (0 is the OOV slot).

    The weekly model's hashed fields use the same hash (``recmodel.features``);
    every id here, a null included, is hashed as its string.
    """
    return hash_slots(pd.Series(np.asarray(app_ids, dtype=object)).astype(str), buckets)


class _Towers(nn.Module):
    def __init__(self, user_sizes: list[int], cat_sizes: list[int], n_num: int, text_dim: int,
                 cfg: TwoTowerConfig) -> None:  # fmt: skip
        super().__init__()
        d = cfg.dim
        self.user_emb = nn.ModuleList(nn.Embedding(n, d) for n in user_sizes)
        self.user_mlp = nn.Sequential(nn.Linear(d * len(user_sizes), 2 * d), nn.GELU(),
                                      nn.Linear(2 * d, d))  # fmt: skip
        # Residual identity: zero-initialised, slot 0 (OOV) fixed at zero, so an app with
        # few rows stays near its content representation instead of a random vector.
        self.id_emb = nn.Embedding(cfg.id_buckets + 1, d, padding_idx=OOV)
        self.cat_emb = nn.ModuleList(nn.Embedding(n, d) for n in cat_sizes)
        self.text = nn.Linear(text_dim, d) if text_dim else None
        width = d * (1 + len(cat_sizes) + (1 if text_dim else 0)) + n_num
        self.item_mlp = nn.Sequential(nn.Linear(width, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))
        for e in [*self.user_emb, *self.cat_emb]:
            nn.init.normal_(e.weight, std=0.1)
        nn.init.zeros_(self.id_emb.weight)

    def users(self, codes: torch.Tensor) -> torch.Tensor:
        parts = [emb(codes[:, j]) for j, emb in enumerate(self.user_emb)]
        return F.normalize(self.user_mlp(torch.cat(parts, 1)), dim=1)

    def items(self, ids: torch.Tensor, cats: torch.Tensor, nums: torch.Tensor,
              text: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
        parts = [self.id_emb(ids), *[emb(cats[:, j]) for j, emb in enumerate(self.cat_emb)]]
        if self.text is not None and text is not None:
            parts.append(self.text(text))
        parts.append(nums)
        return F.normalize(self.item_mlp(torch.cat(parts, 1)), dim=1)


class TwoTowerModel:
    """Fit on (user fields, app_id, weight) click rows; score users x catalogue items."""

    def __init__(self, catalog: ItemCatalog, user_fields: tuple[str, ...],
                 cfg: TwoTowerConfig) -> None:  # fmt: skip
        if cfg.use_text and catalog.text is None:
            raise InputError("two-tower: use_text=True but the catalogue has no text vectors")
        self.catalog, self.user_fields, self.cfg = catalog, user_fields, cfg
        self.user_vocab: dict[str, dict[str, int]] = {}
        self.cat_vocab = {
            f: {v: i + 1 for i, v in enumerate(sorted(catalog.items[f].astype(str).unique()))}
            for f in catalog.cat_fields
        }
        nums = catalog.items[list(catalog.num_fields)].to_numpy(float)
        self.num_mean, self.num_std = nums.mean(0), nums.std(0) + 1e-6
        # Item inputs encoded once (batches only index into them).
        cats = [catalog.items[f].astype(str).map(self.cat_vocab[f]).fillna(OOV).to_numpy(np.int64)
                for f in catalog.cat_fields]  # fmt: skip
        self._cats = torch.from_numpy(np.stack(cats, 1))
        self._nums = torch.from_numpy((nums - self.num_mean) / self.num_std).float()
        self._text = None if catalog.text is None else torch.from_numpy(catalog.text).float()
        self.buckets = bucket(catalog.items[S.APP_ID], cfg.id_buckets)
        self.seen = np.zeros(len(catalog.items), dtype=bool)
        self.net: _Towers | None = None
        self.pruned = 0  # synthetic rows pruned from the loss in the last fit

    # -- encoding -------------------------------------------------------------------

    def _user_codes(self, frame: pd.DataFrame) -> torch.Tensor:
        missing = [f for f in self.user_fields if f not in frame.columns]
        if missing:
            raise InputError(f"two-tower user rows: missing columns {missing}")
        cols = [
            frame[f].astype(str).map(self.user_vocab[f]).fillna(OOV).to_numpy(np.int64)
            for f in self.user_fields
        ]
        return torch.from_numpy(np.stack(cols, 1))

    def _item_inputs(self, pos: np.ndarray, drop: np.ndarray | None = None):
        ids = np.where(self.seen[pos] & self.cfg.use_id, self.buckets[pos], OOV)
        if drop is not None:
            ids = np.where(drop, OOV, ids)
        p = torch.from_numpy(pos)
        text = self._text[p] if self.cfg.use_text else None
        return torch.from_numpy(ids), self._cats[p], self._nums[p], text

    # -- training --------------------------------------------------------------------

    def fit(self, rows: pd.DataFrame, weights: np.ndarray | None = None,
            labels: np.ndarray | None = None,
            synthetic: np.ndarray | None = None) -> TwoTowerModel:  # fmt: skip
        """Train on the positive rows of ``rows``, each weighted by weight x positive mass.

        ``labels``: each row's positive mass in [0, 1] (default: ``clicked``);
        rows whose weight x mass is 0 do not train. ``synthetic``: which rows
        are synthetic (the ones ``prune_share`` may drop); pruning needs it.
        """
        cfg = self.cfg
        check_share(cfg.prune_share, "two-tower prune_share")
        syn = np.zeros(len(rows), bool) if synthetic is None else np.asarray(synthetic, bool)
        if len(syn) != len(rows):
            raise InputError("two-tower synthetic: expected one flag per row")
        if cfg.prune_share > 0 and synthetic is None:
            raise InputError("two-tower prune_share > 0: pass synthetic= (the rows it may prune)")
        w = np.ones(len(rows)) if weights is None else np.asarray(weights, float)
        if len(w) != len(rows) or not np.isfinite(w).all() or (w < 0).any():
            raise InputError("two-tower weights: expected one finite weight >= 0 per row")
        y = _clicks(rows) if labels is None else np.asarray(labels, float)
        if len(y) != len(rows) or not np.isfinite(y).all() or (y < 0).any() or (y > 1).any():
            raise InputError("two-tower labels: expected one positive mass in [0, 1] per row")
        w = w * y
        keep = w > 0
        pos_rows, w, syn = rows[keep].reset_index(drop=True), w[keep], syn[keep]
        if len(pos_rows) < 2:
            raise EmptyInputError(f"two-tower: {len(pos_rows)} clicked rows; need at least 2")
        rng = np.random.default_rng(cfg.seed)
        if len(pos_rows) > cfg.max_rows:
            pick = rng.choice(len(pos_rows), cfg.max_rows, replace=False)
            pos_rows, w, syn = pos_rows.iloc[pick].reset_index(drop=True), w[pick], syn[pick]
        torch.manual_seed(cfg.seed)
        self.user_vocab = {
            f: {v: i + 1 for i, v in enumerate(sorted(pos_rows[f].astype(str).unique()))}
            for f in self.user_fields
        }
        item_pos = self.catalog.positions(pos_rows[S.APP_ID])
        self.seen[:] = False
        self.seen[item_pos] = True
        text_dim = self.catalog.text.shape[1] if cfg.use_text else 0
        self.net = _Towers([len(self.user_vocab[f]) + 1 for f in self.user_fields],
                           [len(self.cat_vocab[f]) + 1 for f in self.catalog.cat_fields],
                           len(self.catalog.num_fields), text_dim, cfg)  # fmt: skip
        users = self._user_codes(pos_rows)
        # Rows are drawn in proportion to weight x positive mass (importance
        # resampling) rather than weighting each row's loss: with in-batch
        # negatives a row is also every other row's negative, so a weighted loss
        # would still show a low-mass row as a negative at full frequency.
        uniform = bool(np.allclose(w, w[0]))
        prob = None if uniform else w / w.sum()
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.net.train()
        syn_t = torch.from_numpy(syn)
        self.pruned = 0
        for epoch in range(cfg.epochs):
            share = cfg.prune_share if epoch >= cfg.prune_warmup else 0.0
            order = (
                rng.permutation(len(pos_rows)) if uniform
                else rng.choice(len(pos_rows), len(pos_rows), p=prob)
            )  # fmt: skip
            for start in range(0, len(order), cfg.batch_size):
                b = order[start : start + cfg.batch_size]
                if len(b) < 2:
                    continue
                drop = rng.random(len(b)) < cfg.id_dropout
                loss, n = pruned_mean(self._loss(users[b], item_pos[b], drop), syn_t[b], share)
                self.pruned += n
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.net.eval()
        return self

    def _loss(self, users: torch.Tensor, pos: np.ndarray, drop: np.ndarray) -> torch.Tensor:
        """Per-row in-batch softmax loss of one batch."""
        u = self.net.users(users)
        v = self.net.items(*self._item_inputs(pos, drop))
        logits = u @ v.T * self.net.log_scale.exp()
        same = torch.from_numpy(pos[:, None] == pos[None, :])
        logits = logits.masked_fill(same & ~torch.eye(len(pos), dtype=torch.bool), -1e9)
        return F.cross_entropy(logits, torch.arange(len(pos)), reduction="none")

    # -- serving ---------------------------------------------------------------------

    @torch.no_grad()
    def user_vectors(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, dim) unit vectors of the users in ``frame`` (profile columns)."""
        self._check_fitted()
        return self.net.users(self._user_codes(frame)).numpy()

    @torch.no_grad()
    def item_vectors(self, app_ids: pd.Series | None = None) -> np.ndarray:
        """(n, dim) unit vectors of catalogue items (all when ``app_ids`` is None)."""
        self._check_fitted()
        pos = np.arange(len(self.catalog.items)) if app_ids is None else self.catalog.positions(
            app_ids
        )  # fmt: skip
        return self.net.items(*self._item_inputs(pos)).numpy()

    def score_rows(self, rows: pd.DataFrame) -> np.ndarray:
        """Score of each (user, app_id) row: the cosine of the two towers."""
        u = self.user_vectors(rows)
        v = self.item_vectors(rows[S.APP_ID])
        return (u * v).sum(1)

    def _check_fitted(self) -> None:
        if self.net is None:
            raise RuntimeError("two-tower model: call fit() first")


def top_k(user_vecs: np.ndarray, item_vecs: np.ndarray, k: int) -> np.ndarray:
    """(n_users, k) item positions by descending score (ties by position)."""
    scores = user_vecs @ item_vecs.T
    k = min(k, item_vecs.shape[0])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def top_users(user_vecs: np.ndarray, item_vecs: np.ndarray, n: int) -> np.ndarray:
    """(n_items, n) user positions by descending score per item: the candidate filter.

    The transpose of ``top_k``: ColdLLM's coupled filter asks, for each new
    item, which users its content representation is closest to.
    """
    return top_k(item_vecs, user_vecs, n)
