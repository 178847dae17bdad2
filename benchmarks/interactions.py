"""Benchmark: batched Hessian attribution vs the per-sample Hessian loop; training rows/s.

    python benchmarks/interactions.py                   # issue-5 sizes, prints one JSON object
    python benchmarks/interactions.py --rows 2000 --ref-rows 4 --train-rows 20000

Attribution model: 16 fields x 16-dim embeddings, MLP 256-128-1 (GELU),
10,000 rows, 8 background baselines per row. ``batched_s`` is the wall time
of ``field_interactions`` over all rows with ``model.linear_split()`` (the
DNN path: the Hessian from the MLP's layers, batched); ``generic_path`` is
the same without it (torch.func: jacfwd(jacrev) per (row, baseline),
vmapped). The reference is ``autograd.functional.hessian`` per row in a
Python loop on ``--ref-rows`` rows, extrapolated per row.
Training throughput streams a simulated day from Delta through the weekly
trainer's code path. Machine load is shared: ``loadavg`` is recorded before
and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs.recmodel import ModelSettings
from recmodel.attribution import field_interactions, reference_interactions
from recmodel.model import RecallModel


def attribution_figures(rows: int, ref_rows: int, baselines: int, seed: int) -> dict:
    """Batched (linear-split and generic) vs reference timings and max |difference|."""
    k, d, card = 16, 16, 50
    torch.manual_seed(seed)
    cfg = ModelSettings(
        embedding_dim=d, hidden=(256, 128), first_order=False, embedding_init_std=0.5
    )
    model = RecallModel([f"f{i}" for i in range(k)], [card] * k, [], cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    cat = torch.randint(0, card, (rows, k), generator=gen)
    with torch.no_grad():
        x = model.embed(cat, torch.zeros(rows, 0))
    base = x[torch.randint(0, rows, (rows, baselines), generator=gen)]
    split = model.linear_split()
    field_interactions(model.head, x[:8], base[:8], split=split)  # warm-up
    t0 = time.perf_counter()
    fast = field_interactions(model.head, x, base, split=split, chunk_rows=512)
    batched_s = time.perf_counter() - t0
    sub = min(rows, 1_000)
    t0 = time.perf_counter()
    generic = field_interactions(model.head, x[:sub], base[:sub], chunk_rows=512)
    generic_per_row = (time.perf_counter() - t0) / sub
    t0 = time.perf_counter()
    slow = reference_interactions(model.head, x[:ref_rows], base[:ref_rows])
    ref_per_row = (time.perf_counter() - t0) / ref_rows
    per_row = batched_s / rows
    return {
        "rows": rows,
        "fields": k,
        "embedding_dim": d,
        "mlp": [k * d, 256, 128, 1],
        "baselines_per_row": baselines,
        "batched_s": round(batched_s, 3),
        "batched_per_row_ms": round(1e3 * per_row, 4),
        "generic_path_per_row_ms": round(1e3 * generic_per_row, 4),
        "generic_path_extrapolated_s": round(generic_per_row * rows, 2),
        "reference_rows": ref_rows,
        "reference_per_row_ms": round(1e3 * ref_per_row, 2),
        "reference_extrapolated_s": round(ref_per_row * rows, 1),
        "speedup_per_row": round(ref_per_row / per_row, 1),
        "speedup_generic_path_per_row": round(ref_per_row / generic_per_row, 1),
        "max_abs_diff": float((fast[:ref_rows] - slow).abs().max()),
        "max_abs_diff_generic": float((generic[:ref_rows] - slow).abs().max()),
        "max_abs_value": float(slow.abs().max()),
    }


def training_figures(train_rows: int, seed: int) -> dict:
    """Rows/s of the weekly trainer on one simulated day streamed from Delta."""
    from configs.recmodel import TrainSettings
    from configs.settings import load_config
    from jobs.model.train import check_window, resolve_inputs, train_window
    from jobs.sources import simulate

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COLDSTART_WAREHOUSE"] = tmp
        ds = "2026-11-23"
        t0 = time.perf_counter()
        simulate.main(["--ds", ds, "--rows", str(train_rows), "--seed", str(seed)])
        simulate_s = time.perf_counter() - t0
        settings = load_config()
        rc = settings.recmodel.model_copy(
            update={"train": TrainSettings(epochs=2, patience=5, seed=seed)}
        )
        inputs, days = resolve_inputs(settings, ds)
        counts = check_window(inputs.real.path, days)
        t0 = time.perf_counter()
        out = train_window(inputs, rc, counts)
        total_s = time.perf_counter() - t0
    report = out["report"]
    return {
        "simulated_rows": train_rows,
        "simulate_s": round(simulate_s, 1),
        "epochs": report.epochs_run,
        "train_rows_seen": report.train_rows_seen,
        "train_loop_s": report.seconds,
        "train_rows_per_s": round(report.train_rows_seen / report.seconds),
        "end_to_end_s (encoder + train + test eval)": round(total_s, 1),
        "test_auc": out["test"]["auc"],
        "batch_size": rc.train.batch_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--ref-rows", type=int, default=5)
    parser.add_argument("--baselines", type=int, default=8)
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "benchmark": "interactions",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    result["attribution"] = attribution_figures(args.rows, args.ref_rows, args.baselines, args.seed)
    result["loadavg_after_attribution"] = os.getloadavg()
    if args.train_rows > 0:
        # Spark (JVM) and the simulator print to fd 1: keep stdout for the JSON only.
        saved = os.dup(1)
        os.dup2(2, 1)
        try:
            result["training"] = training_figures(args.train_rows, args.seed)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
    result["loadavg_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
