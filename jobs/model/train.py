"""Weekly recall-model training on real logs (+ weighted synthetic rows).

    coldstart train --weeks-ending 2026-11-23
    spark-submit jobs/model/train.py --weeks-ending 2026-11-23

Reads ``raw.user_logs`` for the 7 days ending ``--weeks-ending`` (whichever
of them exist) and, with ``recmodel.use_synthetic``, the same days of
``gold.weighted_synthetic`` (its ``weight`` column weights the loss). Both
are streamed batch by batch from Delta (no week in memory) through
``recmodel.dataset.MixedDeltaDataset``, the trainers' public input path. Real
impressions are split by a hash of (ds, event_id) into train / validation
(early stopping) / test; the test split is reported overall and on
cold-start apps (``ref.apps.is_cold_start``). The model lands as one
versioned artifact under ``<warehouse>/model/recall/<version>/``; its
``meta.json`` records under ``inputs`` the Delta version of every table read.
With ``recmodel.model.architecture: two_tower`` the version also holds the
serving vectors of every app and every user of the window
(``jobs/model/serving.py``).
``--same-rows-as V`` pins those versions of model V's run: same rows again.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from configs.recmodel import RecmodelSettings
from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError, InputError

if TYPE_CHECKING:
    from recmodel.dataset import MixedDeltaDataset

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
    # Lineage for meta.json: table name -> {path, version, days} of every table read.
    tables: dict[str, dict] = field(default_factory=dict)
    # Fallbacks taken while resolving (into meta.json, not only the log).
    warnings: list[str] = field(default_factory=list)


def mixed_dataset(
    inputs: TrainInputs,
    rc: RecmodelSettings,
    split: str,
    seed: int | None = None,
    **batching,
) -> MixedDeltaDataset:
    """One split's rows; synthetic rows only ever join (interleaved) the training split.

    ``seed`` shuffles in buffers of ``rc.shuffle_rows``; ``batching`` is
    ``batch_size`` / ``to_batch`` of ``MixedDeltaDataset``.
    """
    from recmodel.dataset import MixedDeltaDataset

    fields = [*rc.categorical, *rc.identities, *rc.numeric]
    columns = list(dict.fromkeys([S.DS, S.EVENT_ID, S.APP_ID, S.CLICKED, *fields]))
    return MixedDeltaDataset(
        inputs.real,
        inputs.synthetic if split == "train" else None,
        columns,
        keep_real=lambda frame: split_of(frame, rc) == split,
        batch_rows=rc.batch_rows,
        shuffle_rows=rc.shuffle_rows if seed is not None else 0,
        seed=seed or 0,
        **batching,
    )


def frames_for(inputs: TrainInputs, rc: RecmodelSettings, split: str) -> Iterator[pd.DataFrame]:
    """Unshuffled frames of one split (the encoder's sample reads these)."""
    return mixed_dataset(inputs, rc, split).frames()


def check_window(path: str, days: list[str], version: int | None = None) -> dict[str, int]:
    """Row and click counts of the window (a streaming count); errors if unusable."""
    import pyarrow.dataset as pads

    from recmodel import reader

    dataset = reader.dataset(reader.snapshot(path, version), days)
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


def source_figures(source) -> dict[str, float]:
    """Rows and weight sum of a weighted source's days (a streaming scan of one column).

    What meta.json records about the synthetic rows a model read: which days is
    not enough to tell a published day that was read from one that was empty.
    """
    import pyarrow.compute as pc

    from recmodel import reader

    data = reader.dataset(reader.snapshot(source.path, source.version), list(source.days))
    rows, total = 0, 0.0
    for batch in data.to_batches(columns=[source.weight]):
        rows += batch.num_rows
        total += float(pc.sum(batch.column(0)).as_py() or 0.0)
    return {"rows": rows, "weight_sum": round(total, 6)}


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
    from recmodel.data import encode_frame
    from recmodel.features import FeatureEncoder, FeatureSpec
    from recmodel.model import build_model
    from recmodel.train import evaluate, train_model

    ids = tuple(f for f in rc.identities if f not in rc.categorical)
    spec = FeatureSpec((*rc.categorical, *ids), rc.numeric, rc.identities, rc.id_buckets)
    sample = encoder_sample(inputs, rc, counts["rows"])
    encoder = FeatureEncoder.fit(sample, spec)
    collisions = encoder.collisions(sample)
    model = build_model(encoder, rc.model, seed=rc.train.seed)

    def to_batch(frame: pd.DataFrame):
        return encode_frame(encoder, frame, S.CLICKED, weight=S.WEIGHT, cold_apps=inputs.cold_apps)

    def batches(split: str, seed: int | None):
        size = rc.train.batch_size if seed is not None else 8_192
        return iter(mixed_dataset(inputs, rc, split, seed, batch_size=size, to_batch=to_batch))

    report = train_model(
        model,
        lambda epoch: batches("train", rc.train.seed * 1_000 + epoch),
        lambda: batches("val", None),
        rc.train,
        prune=(rc.prune_synthetic_share, rc.prune_warmup_epochs),
    )
    overall, cold = evaluate(model, batches("test", None))
    return {
        "model": model,
        "encoder": encoder,
        "report": report,
        "test": overall.as_dict(),
        "test_cold_start": cold.as_dict(),
        "id_collisions": collisions,
    }


def cold_start_apps(apps_path: str, version: int | None = None) -> frozenset[str]:
    """App ids flagged ``is_cold_start`` in ref.apps (a small dimension table)."""
    from recmodel import reader

    apps = reader.read_pandas(apps_path, columns=[S.APP_ID, S.IS_COLD_START], version=version)
    return frozenset(apps.loc[apps[S.IS_COLD_START].fillna(False), S.APP_ID])


def pinned_versions(settings, model_version: str, weeks_ending: str) -> dict[str, int]:
    """Table versions model ``model_version`` was trained on (``--same-rows-as``)."""
    from recmodel.artifacts import load_meta, model_root

    meta = load_meta(model_root(settings.warehouse), model_version)
    if "inputs" not in meta:
        raise InputError(
            f"model {model_version}: meta.json has no 'inputs' (trained before lineage)"
        )
    if meta["weeks_ending"] != weeks_ending:
        raise InputError(
            f"model {model_version}: trained for --weeks-ending {meta['weeks_ending']}, "
            f"not {weeks_ending}; the same rows need the same window"
        )
    return {name: int(t["version"]) for name, t in meta["inputs"].items()}


def resolve_inputs(
    settings, weeks_ending: str, pins: dict[str, int] | None = None
) -> tuple[TrainInputs, list[str]]:
    """Sources for the window at pinned Delta versions: real days (error if none), synthetic.

    Each table's version is fixed here once (the latest, or ``pins[name]``),
    so every pass of every epoch reads the same snapshot and meta.json can
    record it.
    """
    from jobs.platform.errors import TableNotFoundError
    from recmodel import reader
    from recmodel.data import DeltaSource

    rc = settings.recmodel
    pins = pins or {}
    tables: dict[str, dict] = {}
    warnings: list[str] = []

    def pin(name: str) -> tuple[str, reader.Snapshot]:
        path = settings.table_path(name)
        snap = reader.snapshot(path, pins.get(name))
        tables[name] = {"path": path, "version": snap.version}
        return path, snap

    logs_path, logs = pin(settings.tables.user_logs)
    days = window_days(weeks_ending, logs.days())
    tables[settings.tables.user_logs]["days"] = days
    if not days:
        start = dt.date.fromisoformat(weeks_ending) - dt.timedelta(days=WINDOW_DAYS - 1)
        raise EmptyInputError(
            f"table {logs_path}: no partitions in the window {start}..{weeks_ending}"
        )
    synthetic = None
    if rc.use_synthetic:
        # The first weekly run precedes the first published day: no table yet is
        # the same as no day in the window (a warning, then real rows only).
        syn_name = settings.tables.weighted_synthetic
        try:
            syn_path, syn = pin(syn_name)
        except TableNotFoundError:
            if syn_name in pins:
                raise
            syn_path, syn = settings.table_path(syn_name), None
        syn_days = window_days(weeks_ending, syn.days()) if syn else []
        if syn_days:
            tables[syn_name]["days"] = syn_days
            synthetic = DeltaSource(
                syn_path, tuple(syn_days), weight=S.WEIGHT, holdout=False, version=syn.version
            )
        else:
            tables.pop(syn_name, None)
            note = f"{syn_path}: no published day in the window; trained on real rows only"
            log.warning(note)
            warnings.append(note)
    apps_path, apps = pin(settings.tables.apps)
    cold = cold_start_apps(apps_path, apps.version)
    real = DeltaSource(logs_path, tuple(days), version=logs.version)
    return TrainInputs(real, synthetic, cold, tables, warnings), days


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart train --weeks-ending D``: train, evaluate, save one model version."""
    from configs.settings import load_config
    from jobs.model.serving import write_embeddings
    from jobs.platform.common import RunLog, ds_arg, job_parser
    from recmodel.artifacts import model_root, new_version, save_artifact

    parser = job_parser("train", "Weekly recall-model training.", with_ds=False)
    parser.add_argument("--weeks-ending", required=True, type=ds_arg, help="last day YYYY-MM-DD")
    parser.add_argument(
        "--same-rows-as",
        default=None,
        metavar="MODEL_VERSION",
        help="read the Delta table versions that model version read (repeat its run)",
    )
    args = parser.parse_args(argv)
    settings = load_config(args.config)
    rc = settings.recmodel
    run = RunLog("train", args.weeks_ending)
    pins = (
        pinned_versions(settings, args.same_rows_as, args.weeks_ending)
        if args.same_rows_as
        else None
    )
    inputs, days = resolve_inputs(settings, args.weeks_ending, pins)
    counts = check_window(inputs.real.path, days, inputs.real.version)
    out = train_window(inputs, rc, counts)
    report = out["report"]
    for col, c in out["id_collisions"].items():
        if c["values_sharing_a_slot"] > 0.01 * c["values"]:
            inputs.warnings.append(
                f"id field {col}: {c['values_sharing_a_slot']} of {c['values']} values in the "
                f"encoder sample share a hash slot (id_buckets {rc.id_buckets}); raise "
                "recmodel.id_buckets"
            )
    meta = {
        "weeks_ending": args.weeks_ending,
        "days": days,
        "synthetic_days": list(inputs.synthetic.days) if inputs.synthetic else [],
        "synthetic_read": source_figures(inputs.synthetic) if inputs.synthetic else None,
        "warnings": inputs.warnings,
        "inputs": inputs.tables,
        "rows_in_window": counts,
        "test": out["test"],
        "test_cold_start": out["test_cold_start"],
        "best_val": report.best_val.as_dict(),
        "epochs_run": report.epochs_run,
        "history": report.history,
        "nan_imputed": dict(out["encoder"].nan_counts),
        "id_collisions": out["id_collisions"],
        "recmodel": rc.model_dump(mode="json"),
    }
    version = new_version(f"w{args.weeks_ending}")
    root = model_root(settings.warehouse)
    # Before meta.json: a version whose vectors failed stays an unfinished write.
    meta["embeddings"] = write_embeddings(
        settings, f"{root.rstrip('/')}/{version}", out["model"], out["encoder"], inputs.tables
    )
    path = save_artifact(root, version, out["model"], out["encoder"], meta)
    run.add(version=version, days=len(days), **{f"rows_{k}": v for k, v in counts.items()})
    run.add(test=out["test"], test_cold_start=out["test_cold_start"], seconds_train=report.seconds)
    run.emit()
    print(f"trained {version} on {len(days)} day(s) -> {path}")
    print(f"  test (held-out real): {_line(out['test'])}")
    print(f"  test cold-start apps: {_line(out['test_cold_start'])}")
    emb = meta["embeddings"]
    if emb["written"]:
        print(
            f"  serving vectors: {emb['apps']['rows']} apps "
            f"({emb['apps']['cold_start']} cold-start), {emb['users']['rows']} users "
            f"-> {path}/embeddings"
        )
    else:
        print(f"  serving vectors: none ({emb['reason']})")
    return 0


def _line(m: dict) -> str:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    return f"auc={fmt(m['auc'])} logloss={fmt(m['logloss'])} rows={m['rows']}"


if __name__ == "__main__":
    from jobs.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
