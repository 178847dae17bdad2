"""Candidates mode (ColdLLM / LLM-Ins, WSDM'25): the LLM confirms or rejects real users.

    synthesize.mode: candidates | both   (profiles: SampleLLM only, the default)

Instead of inventing users, a coupled content filter cuts the candidate users
of each cold app to ``synthesize.candidates_per_app`` (N) real users of the
day, and the LLM judges each (real profile, app description) pair. The kept
judgements are synthetic rows keyed to the real user (``synth_id`` =
``cand:<user_id>:<app_id>``, ``exemplar_cluster_ids`` = the user's own
cluster) with that user's real impression context, and flow through stage 2
like the profile rows. Cost per cold app is ceil(N / users per request) calls,
whatever the number of users.

The content filter: an app is its MiniLM description vector
(``recmodel.text_embed``), a user the mean vector of the apps they clicked in
the day's sample; candidates are the N users with the largest cosine. Users
without a click that day have no content profile and are not candidates (the
count is reported). Scoring runs in Spark (``mapInPandas``: each partition
keeps its own top N per cold app, one window keeps the global top N); only the
cold apps' and the clicked apps' vectors (catalogue-sized) are on the driver.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from spark_udfs.llm_calls import RequestSpec

CANDIDATE_PREFIX = "cand:"
SCORE_DDL = f"{S.APP_ID} string, {S.USER_ID} string, score double"
_CLICKED_APPS = "_clicked_apps"


def app_vectors(apps: DataFrame, app_ids: DataFrame, table: str | None) -> dict[str, np.ndarray]:
    """Description vectors of the apps in ``app_ids`` (a catalogue slice: bounded)."""
    from recmodel.text_embed import description_vectors

    pdf = apps.join(app_ids.distinct(), S.APP_ID).select(S.APP_ID, S.DESCRIPTION).toPandas()
    emb = description_vectors(pdf, table)
    return dict(zip(pdf[S.APP_ID].astype(str), emb.vectors, strict=True))


def score_fn(vectors: dict[str, np.ndarray], cold_ids: Sequence[str], n: int):
    """(user_id, clicked app ids) -> each partition's top ``n`` users per cold app."""
    cold = np.stack([vectors[a] for a in cold_ids]).astype(np.float32)  # (C, d)
    cold_arr = np.asarray(cold_ids, dtype=object)

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        users, mats = [], []
        for pdf in batches:
            for uid, clicked in zip(pdf[S.USER_ID], pdf[_CLICKED_APPS], strict=True):
                vecs = [vectors[a] for a in clicked if a in vectors]
                if vecs:
                    users.append(uid)
                    mats.append(np.mean(vecs, axis=0))
        if not users:
            return
        u = np.stack(mats).astype(np.float32)
        u /= np.linalg.norm(u, axis=1, keepdims=True).clip(1e-12)
        scores = u @ cold.T  # (users in this partition, C): bounded by the partition
        k = min(n, len(users))
        top = np.argpartition(-scores, k - 1, axis=0)[:k]  # (k, C)
        cols = np.broadcast_to(np.arange(len(cold_ids)), top.shape)
        yield pd.DataFrame({
            S.APP_ID: cold_arr[cols.ravel()],
            S.USER_ID: np.asarray(users, dtype=object)[top.ravel()],
            "score": scores[top.ravel(), cols.ravel()].astype(float),
        })  # fmt: skip

    return fn


def candidate_pairs(sampled: DataFrame, clusters: DataFrame, apps: DataFrame,
                    cold: Sequence[dict[str, Any]], n: int,
                    text_table: str | None) -> tuple[DataFrame, dict[str, Any]]:  # fmt: skip
    """(user_id, app_id, score, profile fields, cluster_id, context fields), top ``n`` per app.

    ``sampled``: the day's impressions; ``clusters``: user_id -> cluster_id.
    A user's profile and context come from their first impression (by event_id).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cold_ids = [str(a[S.APP_ID]) for a in cold]
    clicks = sampled.where(F.col(S.CLICKED) == 1).select(S.USER_ID, S.APP_ID)
    vectors = app_vectors(apps, clicks.select(S.APP_ID).unionByName(
        apps.where(F.col(S.APP_ID).isin(cold_ids)).select(S.APP_ID)), text_table)  # fmt: skip
    missing = [a for a in cold_ids if a not in vectors]
    if missing:
        raise EmptyInputError(f"table ref.apps: cold apps {missing[:5]} have no row to embed")
    per_user = clicks.groupBy(S.USER_ID).agg(F.collect_set(S.APP_ID).alias(_CLICKED_APPS))
    scored = per_user.mapInPandas(score_fn(vectors, cold_ids, n), SCORE_DDL)
    rank = Window.partitionBy(S.APP_ID).orderBy(F.desc("score"), S.USER_ID)
    top = scored.withColumn("_rank", F.row_number().over(rank)).where(F.col("_rank") <= n)
    first = Window.partitionBy(S.USER_ID).orderBy(S.EVENT_ID)
    users = (
        sampled.withColumn("_first", F.row_number().over(first))
        .where(F.col("_first") == 1)
        .select(S.USER_ID, *S.PROFILE_FIELDS, *S.CONTEXT_FIELDS)
        .join(clusters.select(S.USER_ID, S.CLUSTER_ID), S.USER_ID)
    )
    pairs = top.drop("_rank").join(users, S.USER_ID)
    figures = {"candidate_users": per_user.count(), "candidates_per_app": n,
               "candidate_cold_apps": len(cold_ids)}  # fmt: skip
    return pairs, figures


def shown_examples(part: Sequence[dict], k: int) -> list[dict]:
    """The request's labelled examples: the candidates' own (``examples_json``, each
    interleaved click / non-click by ``labelled_examples``), taken round-robin over
    the users and then by label, first ``k``."""
    per_user = [json.loads(p["examples_json"]) for p in part if p.get("examples_json")]
    pooled = alternate(*per_user)
    mixed = alternate([e for e in pooled if e[S.CLICKED]], [e for e in pooled if not e[S.CLICKED]])
    return [{c: v for c, v in e.items() if c != "_keep"} for e in mixed[:k]]


def alternate(*sides: Sequence[Any]) -> list[Any]:
    """One item of each side in turn, then the rest of the longer ones (round-robin).

    How labelled examples are shown everywhere: users in turn, clicks and
    non-clicks in turn, so a prompt's first examples are never all one label.
    """
    rounds = itertools.zip_longest(*sides, fillvalue=_GAP)
    return [x for rnd in rounds for x in rnd if x is not _GAP]


_GAP = object()


def candidate_plan_fn(spec: RequestSpec, apps: dict[str, dict], facts: dict, per_request: int,
                      n: int, examples_per_request: int = 0):  # fmt: skip
    """(app_id, candidates_json) -> one click request per ``per_request`` candidates.

    Request index = app ordinal x ceil(n / per_request) + chunk: stable per
    (app, chunk), so the per-request sampling seed replays.
    """
    from llm_client import prompts, schemas
    from spark_udfs.llm_calls import CANDIDATE_TASK, REQUEST_DDL, columns

    order = {a: i for i, a in enumerate(sorted(apps))}
    slots = math.ceil(n / per_request)
    spec_k = examples_per_request

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            rows = []
            for app_id, cand_json in zip(pdf[S.APP_ID], pdf["candidates_json"], strict=True):
                cands = sorted(json.loads(cand_json), key=lambda c: str(c[S.USER_ID]))
                chunks = math.ceil(len(cands) / per_request)
                for c in range(chunks):
                    part = cands[c * per_request : (c + 1) * per_request]
                    profiles = [{
                        "ref": f"u{i}", "profile_id": f"{CANDIDATE_PREFIX}{p[S.USER_ID]}",
                        "exemplar_cluster_ids": [int(p[S.CLUSTER_ID])],
                        **{f: p[f] for f in S.PROFILE_FIELDS},
                    } for i, p in enumerate(part)]  # fmt: skip
                    fmt = schemas.response_format(
                        schemas.CLICK_SCHEMA_NAME,
                        schemas.click_schema([p["ref"] for p in profiles], [app_id]),
                    )
                    examples = shown_examples(part, spec_k)
                    msgs = prompts.click_messages(
                        spec.prompts, [apps[app_id]], profiles, facts, examples
                    )
                    idx = order[app_id] * slots + c
                    key, body = spec.request(CANDIDATE_TASK, idx, msgs, fmt)
                    context = json.dumps({"profiles": profiles, "app_ids": [app_id]})
                    rows.append((key, idx, CANDIDATE_TASK, body, [], context))
            yield pd.DataFrame(rows, columns=columns(REQUEST_DDL))

    return fn


def candidate_plan(pairs: DataFrame, spec: RequestSpec, cold: Sequence[dict], facts: dict,
                   per_request: int, n: int, examples: int = 0) -> DataFrame:  # fmt: skip
    """The candidate pairs grouped per cold app -> click requests (REQUEST_DDL); with
    ``examples`` > 0 and an ``examples_json`` column, that many labelled examples each."""
    from pyspark.sql import functions as F

    from spark_udfs.llm_calls import REQUEST_DDL

    shown = ["examples_json"] if "examples_json" in pairs.columns else []
    member = F.struct(S.USER_ID, S.CLUSTER_ID, *S.PROFILE_FIELDS, *shown)
    as_json = F.to_json(F.collect_list(member)).alias("candidates_json")
    grouped = pairs.groupBy(S.APP_ID).agg(as_json)
    apps = {str(a[S.APP_ID]): a for a in cold}
    fn = candidate_plan_fn(spec, apps, facts, per_request, n, examples)
    return grouped.mapInPandas(fn, REQUEST_DDL)


def with_real_context(rows: DataFrame, pairs: DataFrame) -> DataFrame:
    """Candidate rows + the real user's own context (their first impression of the day)."""
    from pyspark.sql import functions as F

    ctx = pairs.select(
        F.concat(F.lit(CANDIDATE_PREFIX), S.USER_ID, F.lit(":"), S.APP_ID).alias(S.SYNTH_ID),
        *S.CONTEXT_FIELDS,
    )
    return rows.join(ctx, S.SYNTH_ID)
