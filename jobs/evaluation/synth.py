"""Stage 1 generators of the evaluation arms: the LLM endpoint, or an SDV model.

The LLM path reuses the pipeline's pieces: KMeans user clusters and
size-proportional seeds (``jobs.stage1.cluster``), the exemplar slot allocation of
``jobs.stage1.synthesize``, the versioned prompts and JSON schemas, the async client
with retries, and whatever endpoint ``llm:`` configures (the offline stand-in
by default - the report header says so). It runs on the driver because the
evaluation asks for a bounded number of rows (10% of a bounded training set).

MovieLens profiles have fields the app-store prompts do not describe
(occupation, region), so for them the same request shape is built here with
the data set's own vocabularies (``generic_*``); the stand-in reads only the
schema and the JSON data lines, an LLM reads the short instructions.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.evaluation.data import LABEL, EvalData
from jobs.platform import schema as S
from jobs.platform.errors import InputError, LLMError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from configs.llm import LLMSettings
    from configs.settings import Settings
    from llm_client.endpoint import Endpoint

log = logging.getLogger(__name__)
SDV_KINDS = ("gaussian_copula", "ctgan", "tvae")


@dataclass
class Stage1:
    """Synthetic rows (features present + label) and how they were made."""

    rows: pd.DataFrame
    generator: str
    figures: dict[str, Any] = field(default_factory=dict)


# -- exemplars ----------------------------------------------------------------


def cluster_exemplars(
    spark: SparkSession, data: EvalData, settings: Settings, requests: int, seed: int
) -> list[list[dict[str, str]]]:
    """``requests`` exemplar lists: seeds of KMeans clusters, in cluster-size share."""
    from jobs.stage1.cluster import cluster_day, user_profiles
    from jobs.stage1.synthesize import allocate_slots

    cfg = settings.evaluate
    cols = [S.USER_ID, S.CATEGORY, LABEL, *data.profile_fields]
    sdf = spark.createDataFrame(data.train[cols]).persist()
    profiles = user_profiles(
        sdf, profile_cols=data.profile_fields, categories=data.categories, weight_col=None
    ).persist()
    ccfg = settings.cluster.model_copy(
        update={"k": cfg.cluster_k, "seeds_total": cfg.cluster_k * 4, "seed": seed}
    )
    result = cluster_day(
        profiles, ccfg, profile_cols=data.profile_fields, categories=data.categories
    )
    seeds = result.seeds.select(S.CLUSTER_ID, S.USER_ID, *data.profile_fields).toPandas()
    result.assigned.unpersist()
    profiles.unpersist()
    sdf.unpersist()
    per_cluster = seeds.groupby(S.CLUSTER_ID).size().to_dict()
    a = min(cfg.exemplars_per_request, len(per_cluster))
    slots = allocate_slots(per_cluster, requests, a, seed)
    by_cluster = {
        c: g[[S.USER_ID, *data.profile_fields]].to_dict("records")
        for c, g in seeds.groupby(S.CLUSTER_ID)
    }  # user_id is never shown to the LLM: it finds the seed's labelled examples
    rng = random.Random(seed)
    out: list[list[dict[str, str]]] = [[] for _ in range(requests)]
    for cluster, start, count in slots:
        for slot in range(start, start + count):
            out[slot % requests].append(dict(rng.choice(by_cluster[cluster])))
    return out


def random_exemplars(data: EvalData, requests: int, a: int, seed: int) -> list[list[dict]]:
    """The -CS ablation: ``a`` uniformly random training users per request."""
    users = data.train.drop_duplicates(S.USER_ID)[[S.USER_ID, *data.profile_fields]]
    rng = np.random.default_rng(seed)
    return [
        users.iloc[rng.choice(len(users), size=min(a, len(users)), replace=False)].to_dict(
            "records"
        )
        for _ in range(requests)
    ]


# -- requests -------------------------------------------------------------------


def generic_profile_messages(data: EvalData, exemplars: list[dict], rows: int) -> list[dict]:
    """Profile request for a data set the packaged prompts do not describe."""
    from llm_client.prompts import quote

    vocab = data.vocab
    system = (
        f"You write synthetic user profiles for a recommender system trained on {data.name} "
        "logs. Write profiles that look drawn from the same population as the example users, "
        "keep how the fields go together, vary them, and never copy an example. Use only these "
        f"values (JSON): {quote(vocab)}. Reply with one JSON object matching the schema: "
        f'{{"profiles": [...]}} with exactly {rows} profiles.'
    )
    shown = [{f: e[f] for f in data.profile_fields} for e in exemplars]
    user = "Example users (JSON):\n" + quote(shown) + f"\n\nWrite {rows} new profiles."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def generic_click_messages(
    data: EvalData, items: list[dict], profiles: list[dict], facts: dict,
    examples: list[dict] | tuple = (),
) -> list[dict]:  # fmt: skip
    """Click-judgement request for a data set the packaged prompts do not describe."""
    from llm_client.prompts import quote

    system = (
        f"You judge whether users of a {data.name} recommender would click (like) newly "
        "published items. For every (user, item) pair decide clicked and give click_prob; keep "
        f"the average close to the base rate measured on real logs (JSON): {quote(facts)}. "
        'Reply with {"judgements": [...]} copying "user" refs and "app_id" ids exactly.'
    )
    user = f"Items (JSON):\n{quote(items)}\n\nUsers (JSON):\n{quote(profiles)}\n\n"
    if examples:
        user += ("Real interactions of similar users with known items, half clicked and half "
                 f"not (JSON):\n{quote(list(examples))}\n\n")  # fmt: skip
    user += "Judge every pair."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def request_examples(
    data: EvalData, users: list[list[Any]], k: int, seed: int
) -> list[list[dict[str, Any]]]:
    """Per request, ``k`` labelled training rows of its users (``users[r]``: user ids),
    interleaved click / non-click as ``jobs.stage1.synthesize.labelled_examples`` does
    in the daily job: the profile, the item's fields and description, ``clicked``."""
    from jobs.stage1.candidates import alternate

    if k <= 0:
        return [[] for _ in users]
    train = data.train
    rows_of = train.groupby(S.USER_ID).indices
    fields = [*data.profile_fields, *data.item_fields]
    rng = np.random.default_rng(seed)
    out = []
    for ids in users:
        idx = np.concatenate([rows_of.get(u, np.empty(0, dtype=np.int64)) for u in ids] or [[]])
        picked = train.iloc[rng.permutation(idx.astype(np.int64))]
        y = picked[LABEL].astype(bool).to_numpy()
        shown = picked.iloc[alternate(np.flatnonzero(y).tolist(), np.flatnonzero(~y).tolist())[:k]]
        recs = []
        for rec in shown.to_dict("records"):
            ex = {f: rec[f] for f in fields}
            text = data.item_text.get(str(rec[S.APP_ID]))
            if text is not None:
                ex[S.DESCRIPTION] = text
            ex[S.CLICKED] = bool(rec[LABEL])
            recs.append(ex)
        out.append(recs)
    return out


def _profile_schema(data: EvalData, rows: int) -> dict:
    from llm_client import schemas

    if tuple(data.profile_fields) == S.PROFILE_FIELDS:
        return schemas.profile_schema(rows)
    item = {
        "type": "object",
        "properties": {f: {"type": "string", "enum": v} for f, v in data.vocab.items()},
        "required": list(data.profile_fields),
        "additionalProperties": False,
    }
    arr = {"type": "array", "items": item, "minItems": rows, "maxItems": rows}
    return {"type": "object", "properties": {"profiles": arr}, "required": ["profiles"]}


def _requests(
    llm: LLMSettings,
    model: str,
    version: str,
    task: str,
    messages: list[list[dict]],
    fmts: list,
    seed: int,
):
    """The daily job's sampling (``llm.effective()``: temperature, top_p) and, as there,
    ``max_tokens`` sized from each reply's schema and capped by ``llm.max_tokens``: a
    fixed 4,096 let a CPU model write for many minutes past a bounded reply."""
    from llm_client.cache import request_hash
    from llm_client.client import LLMRequest
    from llm_client.schemas import max_tokens_for

    llm = llm.effective()
    out = []
    for i, (msgs, fmt) in enumerate(zip(messages, fmts, strict=True)):
        cap = max_tokens_for(fmt["json_schema"]["schema"], llm.max_tokens)
        sampling = {"temperature": llm.temperature, "top_p": llm.top_p, "max_tokens": cap, "n": 1}
        sampling["seed"] = (seed * 1_000_003 + i * 7919 + len(task)) & 0x7FFFFFFF
        out.append(
            LLMRequest(request_hash(model, version, msgs, sampling, fmt), msgs, sampling, fmt)
        )
    return out


def _send(cfg: Any, requests: list, label: str, figures: dict, max_share: float) -> list[Any]:
    """Replies in request order (None where failed); aborts above ``max_share`` failed.

    The failed count goes into ``figures`` and the report's stage-1 table: a
    failed request is rows the arm does not have.
    """
    from llm_client.client import run_batch

    results = run_batch(cfg, requests, label=label)
    failed = [r for r in results if not r.success]
    figures[f"{label}_requests"] = len(requests)
    figures[f"{label}_failed"] = len(failed)
    if len(failed) > max_share * max(len(requests), 1):
        raise LLMError(
            f"evaluation stage 1: {len(failed)}/{len(requests)} {label} requests failed "
            f"(llm.max_failure_share {max_share}); first: {failed[0].error}"
        )
    return [r.parsed[0] if r.success and r.parsed else None for r in results]


def _valid_profiles(data: EvalData, doc: Any, exemplars: list[dict], drops: Counter) -> list[dict]:
    from llm_client import schemas

    keys = [tuple(str(e[f]) for f in data.profile_fields) for e in exemplars]
    if tuple(data.profile_fields) == S.PROFILE_FIELDS:
        v = schemas.validate_profiles(doc, seed_keys=keys)
        drops.update(v.dropped)
        return v.items
    vocab, out = data.vocab, []
    for item in (doc or {}).get("profiles", []) if isinstance(doc, dict) else []:
        ok = isinstance(item, dict) and all(item.get(f) in vocab[f] for f in data.profile_fields)
        if not ok or tuple(item[f] for f in data.profile_fields) in keys:
            drops[schemas.BAD_VALUE if not ok else schemas.SEED_COPY] += 1
            continue
        out.append({f: item[f] for f in data.profile_fields})
    return out


def llm_stage1(
    spark: SparkSession,
    data: EvalData,
    settings: Settings,
    endpoint: Endpoint,
    n_rows: int,
    *,
    exemplars: str,
    seed: int,
) -> Stage1:
    """Profiles from exemplars (``cluster`` or ``random``), then click judgements on cold items."""
    from jobs.stage1.budgets import app_batches
    from llm_client import prompts, schemas
    from llm_client.client import ClientConfig

    cfg = settings.evaluate
    b, m = cfg.rows_per_request, min(cfg.items_per_click_request, len(data.cold_items))
    q = max(2, math.ceil(n_rows / (b * m)))
    if exemplars == "cluster":
        ex = cluster_exemplars(spark, data, settings, q, seed)
    else:
        ex = random_exemplars(data, q, cfg.exemplars_per_request, seed)
    app_store = tuple(data.profile_fields) == S.PROFILE_FIELDS
    pset = prompts.load_prompts(settings.synthesize.prompt_version) if app_store else None
    version = pset.prompt_version if pset else "eval-generic-v1"
    ccfg = ClientConfig.from_settings(settings.llm, endpoint.base_url, endpoint.model)
    figures: dict[str, Any] = {"exemplars": exemplars, "requests": q}
    fmt = schemas.response_format(schemas.PROFILE_SCHEMA_NAME, _profile_schema(data, b))
    msgs = [
        prompts.profile_messages(pset, e, b) if pset else generic_profile_messages(data, e, b)
        for e in ex
    ]
    docs = _send(
        ccfg,
        _requests(settings.llm, endpoint.model, version, "profiles", msgs, [fmt] * q, seed),
        "profiles",
        figures,
        settings.llm.max_failure_share,
    )
    drops: Counter = Counter()
    profiles = [_valid_profiles(data, d, e, drops) for d, e in zip(docs, ex, strict=True)]
    items = data.cold_items.to_dict("records")
    batches = app_batches(items, m, seed)
    shown = request_examples(data, [[e[S.USER_ID] for e in x] for x in ex],
                             settings.synthesize.click_exemplars, seed)  # fmt: skip
    work = [(p, batches[r % len(batches)], shown[r]) for r, p in enumerate(profiles)]
    rows = _judge(data, pset, endpoint, ccfg, version, work, seed, figures, drops,
                  settings.llm.max_failure_share, settings.llm)  # fmt: skip
    rows = with_context(data, rows, [[e[S.USER_ID] for e in x] for x in ex], seed, figures)
    figures["dropped"] = dict(drops)
    figures["rows"] = len(rows)
    return Stage1(rows, f"llm:{endpoint.model}:{exemplars}", figures)


def with_context(
    data: EvalData, rows: pd.DataFrame, users: list[list[Any]], seed: int, figures: dict
) -> pd.DataFrame:
    """Impression context (hour, weekday, network, slot: whichever the data set has) of
    a real training row with the same label: the row's own user's (candidates mode),
    else one of its request's exemplar users (``users[_req]``), else any user's;
    the last is counted as ``context_fallback_rows``. The daily job does the same in
    Spark (``jobs.stage1.context``); without it the DNN would see LLM rows' context
    only in the out-of-vocabulary slot, a tell of "synthetic"."""
    fields = [f for f in S.CONTEXT_FIELDS if f in data.features]
    if rows.empty or not fields:
        return rows.drop(columns="_req", errors="ignore")
    train = data.train
    by_user = train.groupby([S.USER_ID, LABEL]).indices
    by_label = train.groupby(LABEL).indices
    rng = np.random.default_rng(seed)
    own = rows[S.USER_ID] if S.USER_ID in rows else pd.Series([None] * len(rows))
    picked, fallback = np.empty(len(rows), dtype=np.int64), 0
    for i, (req, y, user) in enumerate(zip(rows["_req"], rows[LABEL], own, strict=True)):
        who = [user] if user is not None and not pd.isna(user) else users[int(req)]
        pools = [by_user[(u, y)] for u in who if (u, y) in by_user]
        if not pools:
            fallback += 1
            pools = [by_label[y]]
        pool = np.concatenate(pools)
        picked[i] = pool[rng.integers(len(pool))]
    figures["context_fallback_rows"] = fallback
    ctx = train.iloc[picked][fields].reset_index(drop=True)
    return pd.concat([rows.drop(columns="_req").reset_index(drop=True), ctx], axis=1)


def _judge(
    data, pset, endpoint, ccfg, version, work, seed, figures, drops, max_share, llm
) -> pd.DataFrame:
    """Click judgements of every (profiles, apps) request in ``work``, as rows.

    A profile may carry a ``user_id`` (candidates mode: a real user); it is not
    shown to the LLM and comes back on the row.
    """
    from llm_client import prompts, schemas

    facts = {"base_ctr": data.facts.get("base_ctr", 0.05)}
    item_cols = [S.APP_ID, *[c for c in data.cold_items.columns if c != S.APP_ID]]
    msgs, fmts, ctx = [], [], []
    for req, (profs, batch, examples) in enumerate(work):
        if not profs:
            continue
        refd = [{"ref": f"u{i}", **{f: p[f] for f in data.profile_fields}}
                for i, p in enumerate(profs)]  # fmt: skip
        ids_of = {f"u{i}": p.get(S.USER_ID) for i, p in enumerate(profs)}
        apps = [{c: a[c] for c in item_cols} for a in batch]
        ids = [str(a[S.APP_ID]) for a in apps]
        fmts.append(
            schemas.response_format(
                schemas.CLICK_SCHEMA_NAME, schemas.click_schema([p["ref"] for p in refd], ids)
            )
        )
        msgs.append(
            prompts.click_messages(pset, apps, refd, facts, examples)
            if pset
            else generic_click_messages(data, apps, refd, facts, examples)
        )
        ctx.append((refd, apps, ids, ids_of, req))
    docs = _send(
        ccfg, _requests(llm, endpoint.model, version, "clicks", msgs, fmts, seed), "clicks",
        figures, max_share,
    )  # fmt: skip
    out = []
    for doc, (refd, apps, ids, ids_of, req) in zip(docs, ctx, strict=True):
        v = schemas.validate_clicks(doc, [p["ref"] for p in refd], ids)
        drops.update(v.dropped)
        by_ref, by_app = {p["ref"]: p for p in refd}, {str(a[S.APP_ID]): a for a in apps}
        for j in v.items:
            prof, app = by_ref[j["user"]], by_app[j["app_id"]]
            row = {f: prof[f] for f in data.profile_fields}
            row.update({f: app[f] for f in data.item_fields})
            row.update({S.APP_ID: j["app_id"], LABEL: j["clicked"], "click_prob": j["click_prob"]})
            if ids_of[j["user"]] is not None:
                row[S.USER_ID] = ids_of[j["user"]]
            row["_req"] = req  # which request: with_context draws from its users
            out.append(row)
    return pd.DataFrame(out)


def candidate_stage1(
    data: EvalData,
    settings: Settings,
    endpoint: Endpoint,
    candidates: pd.DataFrame,
    *,
    users_per_request: int,
    seed: int,
) -> Stage1:
    """ColdLLM / LLM-Ins candidates mode: the LLM confirms or rejects (real user, cold app).

    ``candidates``: one row per pair (``user_id``, the profile fields,
    ``app_id``), e.g. the content tower's top N users of each cold app. One
    request per app and ``users_per_request`` users, so the calls grow with
    cold apps x N and never with the number of users; the rows keep the real
    user's id and profile.
    """
    from llm_client import prompts
    from llm_client.client import ClientConfig

    need = [S.USER_ID, S.APP_ID, *data.profile_fields]
    missing = [c for c in need if c not in candidates.columns]
    if missing:
        raise InputError(f"candidate pairs: missing columns {missing}; expected {need}")
    items = {str(a[S.APP_ID]): a for a in data.cold_items.to_dict("records")}
    unknown = sorted(set(candidates[S.APP_ID].astype(str)) - set(items))
    if unknown:
        raise InputError(f"candidate pairs: app_id {unknown[:5]} not among the cold items")
    app_store = tuple(data.profile_fields) == S.PROFILE_FIELDS
    pset = prompts.load_prompts(settings.synthesize.prompt_version) if app_store else None
    version = pset.prompt_version if pset else "eval-generic-v1"
    ccfg = ClientConfig.from_settings(settings.llm, endpoint.base_url, endpoint.model)
    work, users = [], []
    for app_id, group in candidates.groupby(S.APP_ID, sort=True):
        profs = group[[S.USER_ID, *data.profile_fields]].to_dict("records")
        for start in range(0, len(profs), users_per_request):
            chunk = profs[start : start + users_per_request]
            work.append((chunk, [items[str(app_id)]]))
            users.append([p[S.USER_ID] for p in chunk])
    # The candidates' own labelled history: the evidence ColdLLM's filter used too.
    shown = request_examples(data, users, settings.synthesize.click_exemplars, seed)
    work = [(p, b, e) for (p, b), e in zip(work, shown, strict=True)]
    n_apps = int(candidates[S.APP_ID].nunique())
    figures: dict[str, Any] = {
        "mode": "candidates", "pairs": len(candidates), "cold_apps": n_apps,
        "calls_per_cold_app": round(len(work) / max(n_apps, 1), 2),
    }  # fmt: skip
    drops: Counter = Counter()
    rows = _judge(data, pset, endpoint, ccfg, version, work, seed, figures, drops,
                  settings.llm.max_failure_share, settings.llm)  # fmt: skip
    rows = with_context(data, rows, users, seed, figures)
    figures["dropped"] = dict(drops)
    figures["rows"] = len(rows)
    return Stage1(rows, f"llm:{endpoint.model}:candidates", figures)


# -- SDV --------------------------------------------------------------------------


def sdv_stage1(
    data: EvalData, kind: str, n_rows: int, *, epochs: int, max_rows: int, seed: int
) -> Stage1:
    """Fit an SDV single-table synthesizer on a bounded training sample, sample ``n_rows``."""
    import torch
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    cols = [*data.features, LABEL]
    fit_rows = data.train[cols].sample(n=min(max_rows, len(data.train)), random_state=seed)
    fit_rows = fit_rows.reset_index(drop=True).astype({LABEL: str})
    # In the frame's column order (SDV warns and may reorder otherwise).
    numeric = set(data.numeric)
    columns = {
        c: {"sdtype": "numerical" if c in numeric else "categorical"} for c in fit_rows.columns
    }
    meta = Metadata.load_from_dict({"tables": {"rows": {"columns": columns}}})
    np.random.seed(seed)
    torch.manual_seed(seed)
    if kind == "gaussian_copula":
        model = GaussianCopulaSynthesizer(meta)
    elif kind == "ctgan":
        model = CTGANSynthesizer(meta, epochs=epochs)
    elif kind == "tvae":
        model = TVAESynthesizer(meta, epochs=epochs)
    else:
        raise ValueError(f"unknown SDV synthesizer {kind!r}; expected one of {SDV_KINDS}")
    model.fit({"rows": fit_rows})
    rows = model.sample(num_rows=n_rows)
    rows = rows["rows"] if isinstance(rows, dict) else rows
    rows[LABEL] = pd.to_numeric(rows[LABEL], errors="coerce").fillna(0).astype(int)
    return Stage1(rows, f"sdv:{kind}", {"fit_rows": len(fit_rows), "rows": len(rows)})
