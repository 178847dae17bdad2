"""How good must the LLM's click judgement be for synthetic rows to lift cold recall?

    python benchmarks/judge_quality.py                       # seeds 1,2; 3 repeats
    python benchmarks/judge_quality.py --seeds 1 --repeats 2 --budgets 50

The cold-start protocol (``jobs.evaluation.cold_start``) measures whole
pipelines; this benchmark isolates one part of them, the click judge, on the
same simulator world, split, two-tower model and metrics. Synthetic users are
profiles drawn from the real training users (the profile stage is not what is
measured here); each is judged on a batch of ``--apps-per-request`` cold apps,
``--profiles-per-request`` users per request, as stage 1 sends them. Judges:

    standin     the offline stand-in's judgement (``llm_client.standin_logic.
                click_probs``: sentence-embedding similarity of the profile and
                the app text, calibrated to the base CTR). Not an LLM.
    truth@RHO   the simulator's profile-level true logit (the taste a profile
                implies, the app's themes and quality) mixed with Gaussian noise
                so that its correlation with that logit is RHO. It reads the
                simulator's latents, which no pipeline stage may: it answers
                "how good would a real LLM's judgement have to be", it is not an
                arm of the product.

For every judge and budget (judged impressions per cold app) the judged rows
(weight 1; with ``evaluate.cold_start.soft_labels`` each trains with its
click probability as positive mass, else only the sampled clicks train) join
the warm training rows of the ``original`` and
``content`` arms; cold Recall@20 is reported with its ratio to the arm without
synthetic rows, and the judge's measured correlation with the profile-level
truth after removing each user's and each app's mean (the user-app match the
synthetic rows can teach). Prints one JSON object; ``--out`` writes Markdown.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="config file (default: configs/local.yaml)")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budgets", default="50,500", help="judged impressions per cold app")
    p.add_argument("--rhos", default="0.25,0.5,0.75,1.0")
    p.add_argument("--profiles-per-request", type=int, default=5)
    p.add_argument("--apps-per-request", type=int, default=8)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "judge_quality.md"))
    return p


def double_centred_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two (users x apps) matrices after removing row and column means."""

    def centre(m: np.ndarray) -> np.ndarray:
        return m - m.mean(0, keepdims=True) - m.mean(1, keepdims=True) + m.mean()

    x, y = centre(a).ravel(), centre(b).ravel()
    return float(np.corrcoef(x, y)[0, 1])


def noisy_truth(z: np.ndarray, judge: str, rng: np.random.Generator) -> np.ndarray:
    """A ``truth@RHO`` judge's logits: centred ``z`` mixed with noise, correlation RHO, same sd."""
    rho = float(judge.split("@", 1)[1])
    zs = (z - z.mean()) / z.std()
    return z.std() * (rho * zs + np.sqrt(max(0.0, 1 - rho * rho)) * rng.normal(size=z.shape))


class Judges:
    """Judged rows for one world and split: every judge sees the same (user, app) pairs."""

    def __init__(self, world, split, args, seed: int) -> None:
        from jobs.platform import schema as S

        self.world, self.args, self.seed = world, args, seed
        self.fields = list(world.profile_fields)
        self.cold = world.catalog[world.catalog[S.APP_ID].isin(split.cold_apps)]
        self.cold = self.cold.reset_index(drop=True)
        self.pool = split.train.drop_duplicates(S.USER_ID)[self.fields].reset_index(drop=True)
        self.ctr = float(split.train["clicked"].mean())

    def pairs(self, budget: int) -> tuple[pd.DataFrame, np.ndarray]:
        """(synthetic users, (n_requests, users_per_request, apps_per_request) app index)."""
        a, b = self.args.apps_per_request, self.args.profiles_per_request
        n_cold = len(self.cold)
        requests = max(1, round(budget * n_cold / (a * b)))
        rng = np.random.default_rng(self.seed)
        users = self.pool.sample(requests * b, replace=True, random_state=self.seed)
        apps = np.stack(
            [rng.choice(n_cold, min(a, n_cold), replace=False) for _ in range(requests)]
        )
        return users.reset_index(drop=True), apps

    def truth(self, users: pd.DataFrame, apps: np.ndarray) -> np.ndarray:
        """(requests, b, a) profile-level true logits of every judged pair."""
        b = self.args.profiles_per_request
        full = self.world.oracle(users, self.cold, expected=True)  # (n_users, n_cold)
        r = np.arange(len(apps))[:, None, None]
        u = r * b + np.arange(b)[None, :, None]
        return full[u, apps[:, None, :]]

    def probs(self, judge: str, users: pd.DataFrame, apps: np.ndarray) -> np.ndarray:
        from llm_client.standin_logic import Embedder, _intercept, click_probs

        b = self.args.profiles_per_request
        if judge == "standin":
            emb = Embedder()
            profiles = users.to_dict("records")
            cold = self.cold.to_dict("records")
            return np.stack([
                click_probs(profiles[i * b:(i + 1) * b], [cold[j] for j in req], self.ctr, emb)
                for i, req in enumerate(apps)
            ])  # fmt: skip
        x = noisy_truth(self.truth(users, apps), judge, np.random.default_rng(self.seed + 17))
        return 1 / (1 + np.exp(-(_intercept(x, self.ctr) + x)))

    def rows(self, judge: str, budget: int) -> tuple[pd.DataFrame, float]:
        """Judged rows (profile fields, app_id, clicked) and the judge's measured correlation."""
        from jobs.platform import schema as S

        users, apps = self.pairs(budget)
        p = self.probs(judge, users, apps)
        y = np.random.default_rng(self.seed + 1).random(p.shape) < p
        b = self.args.profiles_per_request
        r, i, j = np.nonzero(np.ones_like(y))
        frame = users.iloc[r * b + i].reset_index(drop=True)
        frame[S.APP_ID] = self.cold[S.APP_ID].to_numpy()[apps[r, j]]
        frame["clicked"] = y[r, i, j].astype(int)
        frame["click_prob"] = p[r, i, j]
        # Correlation on a full users x cold-apps grid (a sample of users), judge vs truth.
        grid_users = self.pool.sample(min(200, len(self.pool)), random_state=self.seed)
        grid_users = grid_users.reset_index(drop=True)
        truth = self.world.oracle(grid_users, self.cold, expected=True)
        if judge == "standin":
            from llm_client.standin_logic import Embedder, click_probs

            q = click_probs(grid_users.to_dict("records"), self.cold.to_dict("records"),
                            self.ctr, Embedder())  # fmt: skip
            judged = np.log(q / (1 - q))
        else:
            judged = noisy_truth(truth, judge, np.random.default_rng(self.seed + 29))
        return frame, double_centred_corr(judged, truth)


def run_seed(spark, settings, args, seed: int) -> dict:
    from jobs.evaluation.cold_data import load_world, split_cold
    from jobs.evaluation.cold_start import Evaluator
    from jobs.platform import schema as S
    from recmodel.text_embed import description_vectors
    from recmodel.two_tower import ItemCatalog, TwoTowerConfig, TwoTowerModel, soft_labels

    cs = settings.evaluate.cold_start
    world = load_world(spark, settings, "simulator", None, seed)
    split = split_cold(world, seed, cs.cold_fraction, cs.warm_test_fraction)
    emb = description_vectors(world.catalog, cs.text_table)
    num = world.num_fields
    catalog = ItemCatalog(world.catalog[[S.APP_ID, S.CATEGORY, *num]], (S.CATEGORY,), num,
                          emb.vectors)  # fmt: skip
    ev = Evaluator(world, split, catalog, cs.k)
    real = split.train[[*world.profile_fields, S.APP_ID, "clicked"]]
    key = f"recall@{cs.k}"

    def recall(rows: pd.DataFrame, text: bool) -> list[float]:
        out = []
        for r in range(args.repeats):
            cfg = TwoTowerConfig(dim=cs.dim, id_dropout=cs.id_dropout, use_text=text,
                                 epochs=cs.epochs, batch_size=cs.batch_size, lr=cs.lr,
                                 max_rows=cs.max_rows, seed=seed * 1_000 + r)  # fmt: skip
            y = soft_labels(rows) if cs.soft_labels else None
            model = TwoTowerModel(catalog, world.profile_fields, cfg).fit(rows, labels=y)
            out.append(ev.measure(model.user_vectors(ev.users) @ model.item_vectors().T)[key])
        return out

    result = {
        "seed": seed, "facts": split.facts,
        "oracle": ev.measure(world.oracle(ev.users, catalog.items))[key],
        "profile_oracle": ev.measure(world.oracle(ev.users, catalog.items, expected=True))[key],
        "original": recall(real, False), "content": recall(real, True), "judges": [],
    }  # fmt: skip
    judges = Judges(world, split, args, seed)
    names = ["standin", *[f"truth@{r}" for r in args.rhos.split(",")]]
    for budget in [int(b) for b in args.budgets.split(",")]:
        for name in names:
            start = time.monotonic()
            rows, corr = judges.rows(name, budget)
            mixed = pd.concat([real, rows], ignore_index=True)
            entry = {
                "judge": name, "budget": budget, "corr": round(corr, 3),
                "synthetic_clicks_per_cold_app": round(rows["clicked"].sum() / len(judges.cold), 1),
                "samplellm": recall(mixed, False), "samplellm_content": recall(mixed, True),
            }  # fmt: skip
            result["judges"].append(entry)
            print(f"seed {seed} {name} budget {budget}: corr {corr:.3f}, "
                  f"R@20 {np.mean(entry['samplellm']):.4f} vs original "
                  f"{np.mean(result['original']):.4f} ({time.monotonic() - start:.0f}s)",
                  file=sys.stderr, flush=True)  # fmt: skip
    return result


def markdown(runs: list[dict], command: str, soft: bool) -> str:
    """Pooled over seeds: cold Recall@20 per judge and budget, ratio to the real-only arms."""
    from scipy.stats import ttest_ind

    pool = lambda key: [x for r in runs for x in r[key]]  # noqa: E731
    orig, cont = pool("original"), pool("content")
    lines = [
        "# Judge quality: how good must the click judge be to lift cold recall?", "",
        f"Command: `{command}`", "",
        "Simulator world of the cold-start protocol; seeds "
        f"{', '.join(str(r['seed']) for r in runs)}; cold Recall@20 pooled over seeds and "
        "repeats. `truth@rho` judges read the simulator's latents (evaluation only: no stage "
        "may); `standin` is the offline stand-in, not an LLM. corr: the judge's correlation "
        "with the profile-level true logit after removing user and app means. Labels: "
        + ("soft (each judged row trains with its click probability as positive mass, "
           "`evaluate.cold_start.soft_labels: true`)." if soft else
           "sampled clicks only (`evaluate.cold_start.soft_labels: false`)."), "",
        f"Without synthetic rows: original {np.mean(orig):.4f}, content {np.mean(cont):.4f}; "
        f"profile-level oracle {np.mean([r['profile_oracle'] for r in runs]):.4f}, "
        f"oracle {np.mean([r['oracle'] for r in runs]):.4f}.", "",
        "| judge | budget (judged/cold app) | synthetic clicks/cold app | corr | samplellm R@20 "
        "| x original | Welch p | samplellm_content R@20 | x content |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    keys = sorted({(j["budget"], j["judge"]) for r in runs for j in r["judges"]},
                  key=lambda k: (k[0], k[1] != "standin", k[1]))  # fmt: skip
    for budget, judge in keys:
        js = [j for r in runs for j in r["judges"] if (j["budget"], j["judge"]) == (budget, judge)]
        s = [x for j in js for x in j["samplellm"]]
        sc = [x for j in js for x in j["samplellm_content"]]
        p = ttest_ind(s, orig, equal_var=False).pvalue if len(s) > 1 else float("nan")
        clicks = np.mean([j["synthetic_clicks_per_cold_app"] for j in js])
        lines.append(
            f"| {judge} | {budget} | {clicks:.1f} "
            f"| {np.mean([j['corr'] for j in js]):.2f} | {np.mean(s):.4f} "
            f"| {np.mean(s) / np.mean(orig):.2f} | {p:.3g} | {np.mean(sc):.4f} "
            f"| {np.mean(sc) / np.mean(cont):.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import shlex

    args = _parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from configs.settings import load_config
    from jobs.platform.spark import get_spark

    settings = load_config(args.config)
    spark = get_spark(settings.spark)
    start = time.monotonic()
    runs = [run_seed(spark, settings, args, int(s)) for s in args.seeds.split(",")]
    command = "python benchmarks/judge_quality.py " + shlex.join(argv or sys.argv[1:])
    soft = settings.evaluate.cold_start.soft_labels
    Path(args.out).write_text(markdown(runs, command.strip(), soft))
    print(json.dumps({"seconds": round(time.monotonic() - start, 1), "runs": runs}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
