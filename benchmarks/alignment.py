"""Alignment quality on planted damage: how much of each damage do the weights undo?

    python benchmarks/alignment.py --markdown benchmarks/results/alignment.md   # all cases
    python benchmarks/alignment.py --datasets credit --methods hybrid           # quick

Cases: the simulator, MovieLens-100K (../shared/data), and two public-style
generated tables (``benchmarks/_alignment_cases.py``): ``credit``
(numeric-heavy) and ``app_usage`` (categorical-heavy). Per case, rows are
split in two at random: one half is "real", the other becomes the
"synthetic" table after three planted damages, all at once:

1. **region** over-represented 3x (its rows appear three times);
2. **optimistic labels** in one segment (half its negatives flipped to 1);
3. **broken dependent pair**: a strongly dependent pair (the strongest
   Cramer's-V pair of categoricals, or a named numeric pair) has its second
   column permuted across rows (marginals kept, joint broken).

Distances, real vs (weighted) synthetic: |share of region|, |label mean in the
segment|, TVD of the pair's joint distribution (numeric columns in real
deciles). ``undone`` = (d_damaged - d_weighted) / (d_damaged - d_clean), where
d_clean is the distance of the undamaged held-out half (sampling noise).
Target: every damage >= 0.5 undone with ESS >= 20% of rows, on every case.
Methods are ``name[+dep][@key=value;...]`` with WeightsSettings overrides
(e.g. ``samplellm@smoothing_alpha=0.1``, ``hybrid@truncate_c=none``); the
feature groups come from the Hessian map at ``align.gamma``, as in
``coldstart align``. Prints one JSON object; ``--markdown`` also writes the
results table.
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

METHODS = (
    "classifier",
    "classifier@truncate_c=sqrt_n",
    "classifier@truncate_c=3",
    "hybrid",
    "samplellm",
)
DATASETS = ("credit", "app_usage", "simulator", "movielens")


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
        "region": ("category == games", lambda d: d[S.CATEGORY] == "games"),
        "segment": ("age_band == 18-24", lambda d: d[S.AGE_BAND] == "18-24"),
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
        "region": ("category == Comedy", lambda d: d[S.CATEGORY] == "Comedy"),
        "segment": ("occupation == student", lambda d: d[OCCUPATION] == "student"),
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
    in_region = held[spec["region"][1](held).to_numpy()]
    syn = pd.concat([held, in_region, in_region], ignore_index=True)
    y = spec["label"]
    flip = spec["segment"][1](syn).to_numpy() & (syn[y] == 0).to_numpy()
    flip &= rng.random(len(syn)) < 0.5
    syn.loc[flip, y] = 1
    syn[pair[1]] = rng.permutation(syn[pair[1]].to_numpy())
    return syn


def _pair_keys(real: pd.DataFrame, df: pd.DataFrame, col: str, numeric: list[str]) -> np.ndarray:
    """A pair column as keys: numeric columns in the real deciles, others as they are."""
    if col not in numeric:
        return df[col].astype(str).to_numpy()
    cuts = np.unique(np.quantile(real[col].to_numpy(dtype=float), np.linspace(0.1, 0.9, 9)))
    return np.searchsorted(cuts, df[col].to_numpy(dtype=float), side="right")


def distances(real: pd.DataFrame, syn: pd.DataFrame, w: np.ndarray, spec, pair) -> dict:
    y = spec["label"]
    w = np.asarray(w, dtype=float)
    region_fn, seg_fn = spec["region"][1], spec["segment"][1]
    region = abs(np.average(region_fn(syn), weights=w) - region_fn(real).mean())
    seg = seg_fn(syn).to_numpy()
    ctr = abs(np.average(syn[y][seg], weights=w[seg]) - real[y][seg_fn(real)].mean())
    a, b = (_pair_keys(real, real, c, spec["numeric"]) for c in pair[:2])
    sa, sb = (_pair_keys(real, syn, c, spec["numeric"]) for c in pair[:2])
    p = pd.Series(np.ones(len(real))).groupby([a, b]).sum() / len(real)
    q = pd.Series(w).groupby([sa, sb]).sum() / w.sum()
    joint = 0.5 * p.subtract(q, fill_value=0.0).abs().sum()
    return {"region": float(region), "label": float(ctr), "pair": float(joint)}


def method_settings(method: str, seed: int):
    """``name[+dep][@k=v;k=v]`` -> (estimator, WeightsSettings)."""
    from configs.weights import WeightsSettings

    name, _, opts = method.partition("@")
    over: dict = {"seed": seed, "dependence_grouping": name.endswith("+dep")}
    for item in filter(None, opts.split(";")):
        key, _, value = item.partition("=")
        words = ("sqrt_n", "min_ess")
        over[key] = None if value == "none" else (value if value in words else float(value))
    return name.split("+")[0], WeightsSettings(**over)


def run_method(spark, real, syn, spec, groups, method: str, seed: int) -> tuple[dict, float, str]:
    from jobs.stage2.reweight import Stage2Inputs, run_stage2

    base, cfg = method_settings(method, seed)
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
    from configs.weights import AlignSettings
    from recmodel.features import FeatureSpec
    from recmodel.pipeline import fit_feature_groups

    half = np.random.default_rng(seed).random(len(pdf)) < 0.5
    real, held = pdf[half].reset_index(drop=True), pdf[~half].reset_index(drop=True)
    pair = spec.get("pair") or strongest_pair(real, spec["categorical"])
    syn = plant(held, spec, pair, seed)
    clean = distances(real, held, np.ones(len(held)), spec, pair)
    damaged = distances(real, syn, np.ones(len(syn)), spec, pair)
    fspec = FeatureSpec(tuple(spec["categorical"]), tuple(spec["numeric"]))
    groups = fit_feature_groups(
        real, fspec, spec["label"], gamma=AlignSettings().gamma, seed=seed, max_rows=30_000
    ).groups
    doc = {
        "region": spec["region"][0],
        "segment": spec["segment"][0],
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
            "max_weight": round(res["stats"].max_weight, 2),
            "truncated_rows": res["stats"].truncated_rows,
            "groups": res["groups"],
            "seconds": round(secs, 1),
        }
        print(f"{name} {method}: {doc['methods'][method]}", file=sys.stderr)
    return doc


def load_case(spark, name: str, args) -> tuple[pd.DataFrame, dict]:
    import _alignment_cases as cases

    if name == "simulator":
        return simulator(spark, args.sim_rows)
    if name == "movielens":
        pdf, spec = movielens(spark, args.movielens)
        keep = np.random.default_rng(args.seed).permutation(len(pdf))[: args.ml_rows]
        return pdf.iloc[np.sort(keep)].reset_index(drop=True), spec
    if name in ("credit", "app_usage"):
        return getattr(cases, name)(args.rows, args.seed)
    raise SystemExit(f"--datasets {name!r}: expected some of {','.join(DATASETS)}")


def markdown(out: dict, command: str) -> str:
    """The results table: one line per (case, method)."""
    lines = [
        "# Alignment benchmark: planted damage undone by stage 2",
        "",
        f"Command: `{command}` ({out['seconds']:.0f} s; load {out['loadavg_before']}).",
        "",
        "Undone = (d_damaged - d_weighted) / (d_damaged - d_clean); target: every damage",
        ">= 0.5 undone with ESS >= 20% (`ok`). Default of `coldstart align` / `weights`: "
        f"**{out['default_method']}**.",
        "",
        "| case | method | region | label | pair | ESS | max w | ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, d in out["datasets"].items():
        for m, r in d["methods"].items():
            u = r["undone"]
            lines.append(
                f"| {name} | {m} | {u['region']:.2f} | {u['label']:.2f} | {u['pair']:.2f} "
                f"| {r['ess_fraction']:.0%} | {r['max_weight']:.1f} "
                f"| {'yes' if r['meets_target'] else 'MISS'} |"
            )
    lines += ["", f"Methods meeting the target on every case: {out['wins_everywhere'] or 'none'}."]
    lines += ["", "Cases (region / segment / pair):", ""]
    for name, d in out["datasets"].items():
        lines.append(
            f"* {name}: {d['rows_real']} real / {d['rows_synthetic']} synthetic rows; "
            f"region `{d['region']}`, segment `{d['segment']}`, pair `{d['pair'][:2]}`"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-rows", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=10_000, help="rows of credit / app_usage")
    parser.add_argument("--ml-rows", type=int, default=20_000, help="MovieLens rows drawn")
    parser.add_argument(
        "--movielens",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"),
    )
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--markdown", default=None, help="also write the results table here")
    args = parser.parse_args()
    from configs.settings import SparkSettings
    from configs.weights import AlignSettings
    from jobs.platform.spark import get_spark

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    spark = get_spark(SparkSettings(master="local[2]", driver_memory="4g", shuffle_partitions=4))
    methods = [m for m in args.methods.split(",") if m]
    t0 = time.monotonic()
    load = os.getloadavg()
    out = {
        "methods": methods,
        "default_method": AlignSettings().method,
        "loadavg_before": [round(x, 2) for x in load],
        "datasets": {},
    }
    for name in args.datasets.split(","):
        pdf, spec = load_case(spark, name, args)
        out["datasets"][name] = evaluate(spark, name, pdf, spec, methods, args.seed)
        out["wins_everywhere"] = [
            m
            for m in methods
            if all(d["methods"][m]["meets_target"] for d in out["datasets"].values())
        ]
        out["seconds"] = round(time.monotonic() - t0, 1)
        out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        if args.markdown:  # after every case: a partial table survives a killed run
            command = "python benchmarks/alignment.py " + " ".join(sys.argv[1:])
            Path(args.markdown).write_text(markdown(out, command))
    print(json.dumps(out, default=str))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
