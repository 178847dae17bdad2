"""Training: weighted BCE, Adam, early stopping, streaming AUC / logloss.

One loop serves both the in-memory case (label models, the attribution
model of ``fit_feature_groups``: a bounded pandas sample) and the streaming
weekly trainer (minibatches cut from Arrow batches of a Delta table): it
takes a callable that yields an epoch's minibatches. Metrics accumulate in
O(1) memory (a fine histogram over the logit for AUC, running sums for
logloss), so validating on a week of impressions never holds them all.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from configs.recmodel import TrainSettings
from recmodel.model import RecallModel
from recmodel.prune import pruned_mean

log = logging.getLogger(__name__)

LOGIT_RANGE = 20.0
AUC_BINS = 16_384


@dataclass
class Batch:
    """One minibatch: encoded features, 0/1 labels and per-row loss weights."""

    cat: torch.Tensor
    num: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor
    # Rows of cold-start apps (for the separate metrics); None when unknown.
    cold: torch.Tensor | None = None
    # Synthetic rows (the ones pruning may drop); None when there are none.
    syn: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def slice(self, start: int, stop: int) -> Batch:
        return self.take(slice(start, stop))

    def take(self, idx: torch.Tensor | slice) -> Batch:
        """Rows ``idx`` (a slice gives views, an index tensor a gather)."""
        opt = lambda t: None if t is None else t[idx]  # noqa: E731
        return Batch(self.cat[idx], self.num[idx], self.y[idx], self.w[idx], opt(self.cold),
                     opt(self.syn))  # fmt: skip


def weighted_bce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_i w_i * BCE_i / sum_i w_i: equals plain mean BCE when every weight is 1.

    The training loss is this mean after pruning (``recmodel.prune.pruned_mean``,
    which is this with no share pruned).
    """
    return pruned_mean(bce_rows(logits, y), None, 0.0, w)[0]


def bce_rows(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row binary cross-entropy of logits."""
    return F.binary_cross_entropy_with_logits(logits, y, reduction="none")


@dataclass(frozen=True)
class Metrics:
    """AUC and logloss (weighted) over some rows."""

    auc: float | None
    logloss: float | None
    rows: int
    positives: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "auc": self.auc,
            "logloss": self.logloss,
            "rows": self.rows,
            "positives": self.positives,
        }


class MetricAccumulator:
    """Streaming weighted AUC (logit histogram, ties count half) and logloss."""

    def __init__(self) -> None:
        self.pos = np.zeros(AUC_BINS)
        self.neg = np.zeros(AUC_BINS)
        self.loss_sum = 0.0
        self.weight_sum = 0.0
        self.rows = 0
        self.positives = 0

    def add(self, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> None:
        lg = logits.detach().double().numpy()
        yy, ww = y.double().numpy(), w.double().numpy()
        scaled = (np.clip(lg, -LOGIT_RANGE, LOGIT_RANGE) + LOGIT_RANGE) / (2 * LOGIT_RANGE)
        bins = np.minimum((scaled * AUC_BINS).astype(np.int64), AUC_BINS - 1)
        self.pos += np.bincount(bins, weights=ww * yy, minlength=AUC_BINS)
        self.neg += np.bincount(bins, weights=ww * (1 - yy), minlength=AUC_BINS)
        bce = F.binary_cross_entropy_with_logits(
            logits.detach().double(), y.double(), reduction="none"
        ).numpy()
        self.loss_sum += float((ww * bce).sum())
        self.weight_sum += float(ww.sum())
        self.rows += len(yy)
        self.positives += int(yy.sum())

    def result(self) -> Metrics:
        logloss = self.loss_sum / self.weight_sum if self.weight_sum > 0 else None
        p, n = self.pos.sum(), self.neg.sum()
        auc = None
        if p > 0 and n > 0:
            neg_below = np.cumsum(self.neg) - self.neg
            auc = float((self.pos * (neg_below + 0.5 * self.neg)).sum() / (p * n))
        return Metrics(auc, logloss, self.rows, self.positives)


def evaluate(model: RecallModel, batches: Iterable[Batch]) -> tuple[Metrics, Metrics]:
    """(all rows, cold-start rows) metrics of ``model`` over ``batches``."""
    everything, cold = MetricAccumulator(), MetricAccumulator()
    model.eval()
    with torch.no_grad():
        for b in batches:
            logits = model(b.cat, b.num)
            everything.add(logits, b.y, b.w)
            if b.cold is not None and bool(b.cold.any()):
                m = b.cold
                cold.add(logits[m], b.y[m], b.w[m])
    return everything.result(), cold.result()


@dataclass
class TrainReport:
    """What training did: epochs run, best validation figures, per-epoch history."""

    epochs_run: int
    best_epoch: int
    best_val: Metrics
    history: list[dict[str, float | None]]
    train_rows_seen: int
    seconds: float


def train_model(
    model: RecallModel,
    epoch_batches: Callable[[int], Iterable[Batch]],
    val_batches: Callable[[], Iterable[Batch]],
    cfg: TrainSettings,
    prune: tuple[float, int] = (0.0, 1),
) -> TrainReport:
    """Adam on weighted BCE; keep the weights of the best validation logloss.

    Stops after ``cfg.patience`` epochs without improvement. ``epoch_batches``
    receives the epoch number so it can reshuffle with a derived seed.
    ``prune``: (share, warm-up epochs) of LLMRec pruning (``recmodel.prune``):
    from that epoch on, the share of each batch's synthetic rows with the
    largest loss leave it; the rows pruned per epoch go into the history.
    """
    import time

    from recmodel.prune import check_share

    check_share(prune[0], "recmodel.prune_synthetic_share")
    start = time.monotonic()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, best_epoch, history, seen = None, None, -1, [], 0
    for epoch in range(cfg.epochs):
        model.train()
        loss_sum, n_batches, pruned = 0.0, 0, 0
        share = prune[0] if epoch >= prune[1] else 0.0
        for b in epoch_batches(epoch):
            opt.zero_grad(set_to_none=True)
            loss, n = pruned_mean(bce_rows(model(b.cat, b.num), b.y), b.syn, share, b.w)
            pruned += n
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at epoch {epoch}")
            loss.backward()
            opt.step()
            loss_sum, n_batches, seen = loss_sum + value, n_batches + 1, seen + len(b)
        val, _ = evaluate(model, val_batches())
        history.append({"epoch": epoch, "train_loss": loss_sum / max(n_batches, 1),
                        "pruned": pruned, **val.as_dict()})  # fmt: skip
        log.info("epoch %d train_loss=%.5f val=%s", epoch, history[-1]["train_loss"], val)
        if best is None or (val.logloss is not None and val.logloss < best.logloss):
            best, best_epoch = val, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainReport(
        len(history), best_epoch, best, history, seen, round(time.monotonic() - start, 3)
    )


def minibatches(data: Batch, batch_size: int, seed: int | None) -> Iterator[Batch]:
    """Minibatches of an in-memory ``Batch`` (shuffled when ``seed`` is given).

    One gather per epoch, then contiguous slices (views): cheaper than a
    gather per minibatch.
    """
    n = len(data)
    if seed is not None:
        data = data.take(torch.randperm(n, generator=torch.Generator().manual_seed(seed)))
    for start in range(0, n, batch_size):
        yield data.slice(start, start + batch_size)


def fit_in_memory(model: RecallModel, train: Batch, val: Batch, cfg: TrainSettings,
                  prune: tuple[float, int] = (0.0, 1)) -> TrainReport:  # fmt: skip
    """``train_model`` over tensors already in memory (a bounded sample)."""
    return train_model(
        model,
        lambda epoch: minibatches(train, cfg.batch_size, cfg.seed * 1_000 + epoch),
        lambda: minibatches(val, 8_192, None),
        cfg,
        prune,
    )
