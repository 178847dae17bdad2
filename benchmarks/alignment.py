"""Alignment quality on planted damage: how much of each damage do the weights undo?

    python benchmarks/alignment.py                        # simulator + MovieLens-100K
    python benchmarks/alignment.py --sim-rows 20000 --methods samplellm,classifier  # quick

Per dataset, real rows are split in two by a hash: one half is "real", the
other becomes the "synthetic" table after three planted damages, all at once:

1. **region** over-represented 3x (its rows appear three times);
2. **optimistic labels** in one segment (half its negatives flipped to 1);
3. **broken dependent pair**: the strongest Cramer's-V pair of real features
   has its second column permuted across rows (marginals kept, joint broken).

Distances, real vs (weighted) synthetic: |share of region|, |CTR in the
segment|, TVD of the pair's joint distribution. ``undone`` = (d_damaged -
d_weighted) / (d_damaged - d_clean), where d_clean is the distance of the
undamaged held-out half (sampling noise). Target: every damage >= 0.5 undone
with ESS >= 20% of rows, on both datasets. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Executors must run this interpreter (pandas UDFs need the venv's pandas).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

METHODS = ("samplellm", "samplellm+dep", "classifier", "hybrid")


def simulator(spark, rows: int) -> tuple[pd.DataFrame, dict]:
    from configs.settings import SimulateSettings
    from jobs.platform import schema as S
    from jobs.sources import simulate as sim

    cfg = SimulateSettings(rows=rows, seed=42)
    plan = sim.make_plan(cfg, rows)
    users, apps = sim.build_users(spark, plan), sim.build_apps(spark, plan, "2026-11-23")
    logs = sim.build_logs(spark, plan, cfg, "2026-11-23", users, apps, 8)
    cols = [*S.SYNTH_FEATURE_FIELDS, S.SLOT, S.CLICKED]
    pdf = logs.select(*cols).toPandas()
    spec = {
        "categorical": [c for c in cols if c not in (S.PRICE, S.RATING, S.CLICKED)],
        "numeric": [S.PRICE, S.RATING],
        "label": S.CLICKED,
        "region": (S.CATEGORY, "games"),
        "segment": (S.AGE_BAND, "18-24"),
    }
    return pdf, spec


def movielens(spark, path: str) -> tuple[pd.DataFrame, dict]:
    from jobs.platform import schema as S
    from jobs.sources.movielens import ML_FEATURE_FIELDS, OCCUPATION, load_movielens

    pdf = load_movielens(spark, path).select(*ML_FEATURE_FIELDS, S.CLICKED).toPandas()
    spec = {
        "categorical": list(ML_FEATURE_FIELDS),
        "numeric": [],
        "label": S.CLICKED,
        "region": (S.CATEGORY, "Comedy"),
        "segment": (OCCUPATION, "student"),
    }
    return pdf, spec


def strongest_pair(pdf: pd.DataFrame, cats: list[str]) -> tuple[str, str, float]:
    from jobs.stage2.transforms import cramers_v

    best = max(
        ((a, b, cramers_v(pdf, a, b)) for i, a in enumerate(cats) for b in cats[i + 1 :]),
        key=lambda p: p[2],
    )
    return best[0], best[1], round(best[2], 4)


def plant(held: pd.DataFrame, spec: dict, pair: tuple, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    col, value = spec["region"]
    syn = pd.concat([held, held[held[col] == value], held[held[col] == value]], ignore_index=True)
    scol, sval = spec["segment"]
    y = spec["label"]
    flip = (syn[scol] == sval) & (syn[y] == 0) & (rng.random(len(syn)) < 0.5)
    syn.loc[flip, y] = 1
    syn[pair[1]] = rng.permutation(syn[pair[1]].to_numpy())
    return syn


def distances(real: pd.DataFrame, syn: pd.DataFrame, w: np.ndarray, spec, pair) -> dict:
    col, value = spec["region"]
    scol, sval = spec["segment"]
    y = spec["label"]
    w = np.asarray(w, dtype=float)
    region = abs(np.average(syn[col] == value, weights=w) - (real[col] == value).mean())
    seg = (syn[scol] == sval).to_numpy()
    ctr = abs(np.average(syn[y][seg], weights=w[seg]) - real[y][real[scol] == sval].mean())
    a, b = pair[0], pair[1]
    p = real.groupby([a, b]).size() / len(real)
    q = pd.Series(w).groupby([syn[a].to_numpy(), syn[b].to_numpy()]).sum() / w.sum()
    joint = 0.5 * p.subtract(q, fill_value=0.0).abs().sum()
    return {"region": float(region), "label": float(ctr), "pair": float(joint)}


def run_method(spark, real, syn, spec, groups, method: str, seed: int) -> tuple[dict, float, str]:
    from configs.weights import WeightsSettings
    from jobs.stage2.reweight import Stage2Inputs, run_stage2

    cfg = WeightsSettings(seed=seed, dependence_grouping=method == "samplellm+dep")
    base = method.split("+")[0]
    rdf = spark.createDataFrame(real).repartition(4)
    sdf = spark.createDataFrame(syn.assign(row_key=np.arange(len(syn)))).repartition(4)
    inputs = Stage2Inputs(
        rdf,
        sdf,
        spec["categorical"],
        spec["numeric"],
        spec["label"],
        groups,
        syn_key=["row_key"],
    )
    t0 = time.monotonic()
    out = run_stage2(inputs, cfg, base)
    got = out.df.select("row_key", "weight").toPandas().sort_values("row_key")
    w = np.zeros(len(syn))
    w[got["row_key"].to_numpy()] = got["weight"].to_numpy()
    out.df.unpersist()
    return {"weights": w, "stats": out.stats, "groups": out.groups}, time.monotonic() - t0, base


def evaluate(spark, name: str, pdf: pd.DataFrame, spec: dict, methods, seed: int) -> dict:
    from recmodel.features import FeatureSpec
    from recmodel.pipeline import fit_feature_groups

    half = np.random.default_rng(seed).random(len(pdf)) < 0.5
    real, held = pdf[half].reset_index(drop=True), pdf[~half].reset_index(drop=True)
    pair = strongest_pair(real, spec["categorical"])
    syn = plant(held, spec, pair, seed)
    clean = distances(real, held, np.ones(len(held)), spec, pair)
    damaged = distances(real, syn, np.ones(len(syn)), spec, pair)
    fspec = FeatureSpec(tuple(spec["categorical"]), tuple(spec["numeric"]))
    groups = fit_feature_groups(
        real, fspec, spec["label"], gamma=0.5, seed=seed, max_rows=30_000
    ).groups
    doc = {
        "rows_real": len(real),
        "rows_synthetic": len(syn),
        "pair": pair,
        "hessian_groups": groups,
        "clean": clean,
        "damaged": damaged,
        "methods": {},
    }
    for method in methods:
        res, secs, _ = run_method(spark, real, syn, spec, groups, method, seed)
        after = distances(real, syn, res["weights"], spec, pair)
        undone = {
            k: round((damaged[k] - after[k]) / max(damaged[k] - clean[k], 1e-9), 3) for k in damaged
        }
        ess = res["stats"].ess_fraction
        doc["methods"][method] = {
            "after": {k: round(v, 5) for k, v in after.items()},
            "undone": undone,
            "ess_fraction": round(ess, 4),
            "meets_target": bool(min(undone.values()) >= 0.5 and ess >= 0.2),
            "groups": res["groups"],
            "seconds": round(secs, 1),
        }
        print(f"{name} {method}: {doc['methods'][method]}", file=sys.stderr)
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-rows", type=int, default=60_000)
    parser.add_argument(
        "--movielens",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"),
    )
    parser.add_argument("--datasets", default="simulator,movielens")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from configs.settings import SparkSettings
    from jobs.platform.spark import get_spark

    spark = get_spark(SparkSettings(master="local[2]", driver_memory="4g", shuffle_partitions=4))
    methods = [m for m in args.methods.split(",") if m]
    load = os.getloadavg()
    out = {"methods": methods, "loadavg_before": [round(x, 2) for x in load], "datasets": {}}
    for name in args.datasets.split(","):
        pdf, spec = (
            simulator(spark, args.sim_rows)
            if name == "simulator"
            else movielens(spark, args.movielens)
        )
        out["datasets"][name] = evaluate(spark, name, pdf, spec, methods, args.seed)
    out["wins_everywhere"] = [
        m for m in methods if all(d["methods"][m]["meets_target"] for d in out["datasets"].values())
    ]
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, default=str))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
