"""A PyTorch ``IterableDataset`` of real + weighted synthetic rows (the weekly trainer's input).

    from torch.utils.data import DataLoader
    from recmodel.data import DeltaSource
    from recmodel.dataset import MixedDeltaDataset
    real = DeltaSource("warehouse/raw/user_logs", ("2026-11-23",), version=41)
    syn = DeltaSource("warehouse/gold/weighted_synthetic", ("2026-11-23",), weight="weight",
                      version=7)
    data = MixedDeltaDataset(real, syn, ["app_id", "clicked", "category"], batch_size=1024,
                             shuffle_rows=200_000, seed=0)
    for frame in DataLoader(data, batch_size=None):   # pandas frames with a 'weight' column
        ...

Mixing is the weekly trainer's: Arrow batches of the real source (weight 1.0,
optionally filtered, e.g. to one split) alternate round-robin with batches of
the synthetic source (its weight column, renamed ``weight``), so synthetic
rows land in every shuffle buffer; a buffer of ``shuffle_rows`` rows is
shuffled with ``seed`` and cut into minibatches. Rows are read through
``recmodel.reader`` (no delta-rs scan, no abort at exit) at the sources'
pinned Delta versions. With DataLoader workers, each worker reads every n-th
file of each source, so no row is read twice; the snapshots are resolved in
the constructor, in the parent process, because delta-rs's runtime panics in
a forked worker ("Forked process detected", tokio-rs/tokio#4301) while the
pyarrow scan the workers run is fork-safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from torch.utils.data import IterableDataset, get_worker_info

from jobs.platform import schema as S
from recmodel import reader
from recmodel.data import SYNTHETIC, DeltaSource, shuffled, stream_frames


def interleave(*iterators: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Round-robin over iterators so synthetic rows mix into every shuffle buffer."""
    live = list(iterators)
    while live:
        for it in list(live):
            try:
                yield next(it)
            except StopIteration:
                live.remove(it)


def _cut(batch: Any, start: int, stop: int) -> Any:
    """Rows [start, stop) of a frame, a ``Batch``-like object (``.slice``) or a dict of arrays."""
    if isinstance(batch, pd.DataFrame):
        return batch.iloc[start:stop]
    if isinstance(batch, dict):
        return {k: v[start:stop] for k, v in batch.items()}
    return batch.slice(start, stop)


class MixedDeltaDataset(IterableDataset):
    """Real rows (weight 1.0) interleaved with weighted synthetic rows, shuffled, batched.

    ``keep_real`` selects real rows per frame (the trainer's hash split);
    ``to_batch`` encodes a shuffled frame once (batched) before it is cut
    into ``batch_size`` minibatches; without it the minibatches are frames.
    ``batch_size=None`` yields whole (shuffled) frames.
    """

    def __init__(
        self,
        real: DeltaSource,
        synthetic: DeltaSource | None,
        columns: Sequence[str],
        *,
        keep_real: Callable[[pd.DataFrame], np.ndarray | pd.Series] | None = None,
        batch_rows: int = 65_536,
        shuffle_rows: int = 0,
        seed: int = 0,
        batch_size: int | None = None,
        to_batch: Callable[[pd.DataFrame], Any] | None = None,
    ) -> None:
        super().__init__()
        self.real, self.synthetic = real, synthetic
        self.columns = [c for c in dict.fromkeys(columns) if c != S.WEIGHT]
        self.keep_real = keep_real
        self.batch_rows, self.shuffle_rows, self.seed = batch_rows, shuffle_rows, seed
        self.batch_size, self.to_batch = batch_size, to_batch
        self.real_snapshot = reader.snapshot(real.path, real.version)
        self.synthetic_snapshot = (
            None if synthetic is None else reader.snapshot(synthetic.path, synthetic.version)
        )

    def _source(
        self, source: DeltaSource, snap: reader.Snapshot, shard: tuple[int, int]
    ) -> Iterator[pd.DataFrame]:
        columns = [*self.columns, source.weight] if source.weight else self.columns
        for frame in stream_frames(source, columns, self.batch_rows, shard=shard, snap=snap):
            if source is self.real and self.keep_real is not None:
                frame = frame[np.asarray(self.keep_real(frame), dtype=bool)]
                if not len(frame):
                    continue
            weights = 1.0 if source.weight is None else frame.pop(source.weight)
            yield frame.assign(**{S.WEIGHT: weights, SYNTHETIC: source is self.synthetic})

    def frames(self, shard: tuple[int, int] = (0, 1)) -> Iterator[pd.DataFrame]:
        """The mixed frames before shuffling (real first, then alternating)."""
        real = self._source(self.real, self.real_snapshot, shard)
        if self.synthetic is None or self.synthetic_snapshot is None:
            return real
        return interleave(real, self._source(self.synthetic, self.synthetic_snapshot, shard))

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        shard = (0, 1) if info is None else (info.id, info.num_workers)
        frames = self.frames(shard)
        if self.shuffle_rows > 0:
            frames = shuffled(frames, self.shuffle_rows, self.seed + 7_919 * shard[0])
        for frame in frames:
            batch = self.to_batch(frame) if self.to_batch is not None else frame
            if self.batch_size is None:
                yield batch
                continue
            for start in range(0, len(frame), self.batch_size):
                yield _cut(batch, start, start + self.batch_size)
