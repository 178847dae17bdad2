"""Weekly recall-model training on real logs (+ weighted synthetic rows).

    coldstart train --weeks-ending 2026-11-23
    spark-submit jobs/model/train.py --weeks-ending 2026-11-23

Reads ``raw.user_logs`` for the 7 days ending ``--weeks-ending`` (whichever
of them exist) and, with ``recmodel.use_synthetic``, the same days of
``gold.weighted_synthetic`` (its ``weight`` column weights the loss). Both
are streamed batch by batch from Delta (no week in memory). Real
impressions are split by a hash of (ds, event_id) into train / validation
(early stopping) / test; the test split is reported overall and on
cold-start apps (``ref.apps.is_cold_start``). The model lands as one
versioned artifact under ``<warehouse>/model/recall/<version>/``.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd

from configs.recmodel import RecmodelSettings
from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError, InputError

log = logging.getLogger(__name__)

WINDOW_DAYS = 7


def window_days(weeks_ending: str, available: list[str]) -> list[str]:
    """The available ``ds`` values among the 7 days ending ``weeks_ending``."""
    end = dt.date.fromisoformat(weeks_ending)
    wanted = {(end - dt.timedelta(days=i)).isoformat() for i in range(WINDOW_DAYS)}
    return sorted(d for d in available if d in wanted)


def split_of(pdf: pd.DataFrame, rc: RecmodelSettings) -> pd.Series:
    """'test' / 'val' / 'train' per real row, from a hash of (ds, event_id)."""
    from recmodel.data import key_fraction

    u = key_fraction(pdf[S.DS].to_numpy(), pdf[S.EVENT_ID].to_numpy(), salt=rc.train.seed)
    val_cut = rc.test_fraction + rc.train.val_fraction
    labels = pd.Series("train", index=pdf.index)
    labels[u < val_cut] = "val"
    labels[u < rc.test_fraction] = "test"
    return labels


@dataclass(frozen=True)
class TrainInputs:
    """Where the window's rows come from (plain values; no session, no config)."""

    real: object  # recmodel.data.DeltaSource
    synthetic: object | None
    cold_apps: frozenset[str]


def frames_for(inputs: TrainInputs, rc: RecmodelSettings, split: str) -> Iterator[pd.DataFrame]:
    """Frames of one split; synthetic rows only ever join (interleaved) the training split."""
    from recmodel.data import stream_frames

    columns = [S.DS, S.EVENT_ID, S.APP_ID, S.CLICKED, *rc.categorical, *rc.numeric]

    def real() -> Iterator[pd.DataFrame]:
        for frame in stream_frames(inputs.real, columns, rc.batch_rows):
            part = frame[split_of(frame, rc) == split]
            if len(part):
                yield part.assign(**{S.WEIGHT: 1.0})

    if split != "train" or inputs.synthetic is None:
        return real()
    syn_cols = [S.DS, S.APP_ID, S.CLICKED, S.WEIGHT, *rc.categorical, *rc.numeric]
    return interleave(real(), stream_frames(inputs.synthetic, syn_cols, rc.batch_rows))


def interleave(*iterators: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Round-robin over iterators so synthetic rows mix into every shuffle buffer."""
    live = list(iterators)
    while live:
        for it in list(live):
            try:
                yield next(it)
            except StopIteration:
                live.remove(it)


def check_window(path: str, days: list[str]) -> dict[str, int]:
    """Row and click counts of the window (a streaming count); errors if unusable."""
    import pyarrow.dataset as pads
    from deltalake import DeltaTable

    dataset = DeltaTable(path).to_pyarrow_dataset()
    in_window = pads.field(S.DS).isin(days)
    rows = dataset.count_rows(filter=in_window)
    clicks = dataset.count_rows(filter=in_window & (pads.field(S.CLICKED) == 1))
    if rows == 0:
        raise EmptyInputError(f"table {path}: no rows in ds {days}")
    if clicks in (0, rows):
        raise InputError(
            f"table {path}: column {S.CLICKED!r} has only class {int(clicks > 0)} in the "
            f"{rows} rows of ds {days[0]}..{days[-1]}; training needs clicks and non-clicks"
        )
    return {"rows": rows, "clicks": clicks}


def encoder_sample(inputs: TrainInputs, rc: RecmodelSettings, total: int) -> pd.DataFrame:
    """A bounded uniform sample of real training rows for the vocabularies."""
    frac = min(1.0, rc.encoder_rows / max(total, 1))
    parts = [
        f.sample(frac=frac, random_state=rc.train.seed + i) if frac < 1 else f
        for i, f in enumerate(frames_for(inputs, rc, "train"))
    ]
    if not parts:
        raise EmptyInputError(f"table {inputs.real.path}: no training rows in the window")
    return pd.concat(parts, ignore_index=True)


def train_window(inputs: TrainInputs, rc: RecmodelSettings, counts: dict[str, int]) -> dict:
    """Fit encoder, train with early stopping, evaluate on the held-out real rows."""
    from recmodel.data import encode_frame, minibatch_stream, shuffled
    from recmodel.features import FeatureEncoder, FeatureSpec
    from recmodel.model import build_model
    from recmodel.train import evaluate, train_model

    spec = FeatureSpec(rc.categorical, rc.numeric)
    encoder = FeatureEncoder.fit(encoder_sample(inputs, rc, counts["rows"]), spec)
    model = build_model(encoder, rc.model, seed=rc.train.seed)

    def to_batch(frame: pd.DataFrame):
        return encode_frame(encoder, frame, S.CLICKED, weight=S.WEIGHT, cold_apps=inputs.cold_apps)

    def batches(split: str, seed: int | None):
        frames = frames_for(inputs, rc, split)
        if seed is not None:
            frames = shuffled(frames, rc.shuffle_rows, seed)
        size = rc.train.batch_size if seed is not None else 8_192
        return minibatch_stream(frames, to_batch, size)

    report = train_model(
        model,
        lambda epoch: batches("train", rc.train.seed * 1_000 + epoch),
        lambda: batches("val", None),
        rc.train,
    )
    overall, cold = evaluate(model, batches("test", None))
    return {
        "model": model,
        "encoder": encoder,
        "report": report,
        "test": overall.as_dict(),
        "test_cold_start": cold.as_dict(),
    }


def cold_start_apps(apps_path: str) -> frozenset[str]:
    """App ids flagged ``is_cold_start`` in ref.apps (a small dimension table)."""
    from deltalake import DeltaTable

    from jobs.platform.errors import TableNotFoundError

    if not DeltaTable.is_deltatable(apps_path):
        raise TableNotFoundError(f"table {apps_path}: no Delta table there (ref.apps)")
    apps = DeltaTable(apps_path).to_pandas(columns=[S.APP_ID, S.IS_COLD_START])
    return frozenset(apps.loc[apps[S.IS_COLD_START].fillna(False), S.APP_ID])


def resolve_inputs(settings, weeks_ending: str) -> tuple[TrainInputs, list[str]]:
    """Sources for the window: real days (error if none), synthetic if configured."""
    from jobs.platform.errors import TableNotFoundError
    from recmodel.data import DeltaSource, delta_days

    rc = settings.recmodel
    logs_path = settings.table_path(settings.tables.user_logs)
    days = window_days(weeks_ending, delta_days(logs_path))
    if not days:
        start = dt.date.fromisoformat(weeks_ending) - dt.timedelta(days=WINDOW_DAYS - 1)
        raise EmptyInputError(
            f"table {logs_path}: no partitions in the window {start}..{weeks_ending}"
        )
    synthetic = None
    if rc.use_synthetic:
        # The first weekly run precedes the first published day: no table yet is
        # the same as no day in the window (a warning, then real rows only).
        syn_path = settings.table_path(settings.tables.weighted_synthetic)
        try:
            published = delta_days(syn_path)
        except TableNotFoundError:
            published = []
        syn_days = window_days(weeks_ending, published)
        if syn_days:
            synthetic = DeltaSource(syn_path, tuple(syn_days), weight=S.WEIGHT, holdout=False)
        else:
            log.warning("%s: no published day in the window; training on real rows only", syn_path)
    cold = cold_start_apps(settings.table_path(settings.tables.apps))
    return TrainInputs(DeltaSource(logs_path, tuple(days)), synthetic, cold), days


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart train --weeks-ending D``: train, evaluate, save one model version."""
    from configs.settings import load_config
    from jobs.platform.common import RunLog, ds_arg, job_parser
    from recmodel.artifacts import model_root, new_version, save_artifact

    parser = job_parser("train", "Weekly recall-model training.", with_ds=False)
    parser.add_argument("--weeks-ending", required=True, type=ds_arg, help="last day YYYY-MM-DD")
    args = parser.parse_args(argv)
    settings = load_config(args.config)
    rc = settings.recmodel
    run = RunLog("train", args.weeks_ending)
    inputs, days = resolve_inputs(settings, args.weeks_ending)
    counts = check_window(inputs.real.path, days)
    out = train_window(inputs, rc, counts)
    report = out["report"]
    meta = {
        "weeks_ending": args.weeks_ending,
        "days": days,
        "synthetic_days": list(inputs.synthetic.days) if inputs.synthetic else [],
        "rows_in_window": counts,
        "test": out["test"],
        "test_cold_start": out["test_cold_start"],
        "best_val": report.best_val.as_dict(),
        "epochs_run": report.epochs_run,
        "history": report.history,
        "nan_imputed": dict(out["encoder"].nan_counts),
        "recmodel": rc.model_dump(mode="json"),
    }
    version = new_version(f"w{args.weeks_ending}")
    path = save_artifact(
        model_root(settings.warehouse), version, out["model"], out["encoder"], meta
    )
    run.add(version=version, days=len(days), **{f"rows_{k}": v for k, v in counts.items()})
    run.add(test=out["test"], test_cold_start=out["test_cold_start"], seconds_train=report.seconds)
    run.emit()
    print(f"trained {version} on {len(days)} day(s) -> {path}")
    print(f"  test (held-out real): {_line(out['test'])}")
    print(f"  test cold-start apps: {_line(out['test_cold_start'])}")
    return 0


def _line(m: dict) -> str:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    return f"auc={fmt(m['auc'])} logloss={fmt(m['logloss'])} rows={m['rows']}"


if __name__ == "__main__":
    from jobs.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
