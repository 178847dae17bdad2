"""SampleLLM stage 1: seeds -> LLM-written profiles -> LLM click judgements.

    coldstart synthesize --ds 2026-11-23
    coldstart synthesize --ds 2026-11-23 --refine-instruction   # eq. 4 first, stored
    spark-submit jobs/stage1/synthesize.py --ds 2026-11-23

Reads stage.seeds[ds], ref.apps (cold-start apps), the day's base CTR from
stage.sampled_logs (sample weights undone; raw.user_logs if not sampled) and
writes stage.synthetic_raw[ds]. The impression context of each synthetic row
(hour, weekday, network, slot) is drawn from the real rows of its exemplar
cluster with the same label (``jobs.stage1.context``, stage.user_clusters[ds]).
Every request is built in Spark and sent from the executors
(``spark_udfs.llm_calls``); every reply lands in stage.llm_responses, keyed by
request hash, one committed wave at a time, so a re-run or a run killed
half-way never pays twice for a cached request.
Requests carry a per-request seed, so a replay reproduces.

``synthesize.mode``: ``profiles`` (the above), ``candidates`` (ColdLLM /
LLM-Ins: the LLM judges the content filter's top N real users of each cold app,
``jobs.stage1.candidates``; rows keep the real user's context) or ``both``.
Profile mode's click requests are split across the cold apps' categories
(``jobs.stage1.budgets``), so no cold category starves.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError, InputError, LLMError, ValidationFailedError
from jobs.stage1.budgets import plan_batches

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from configs.llm import LLMSettings
    from configs.settings import Settings
    from jobs.platform.common import RunLog
    from jobs.platform.tables import WriteResult
    from llm_client.client import ClientConfig
    from llm_client.endpoint import Endpoint
    from spark_udfs.llm_calls import RequestSpec

log = logging.getLogger(__name__)

SYNTHETIC_RAW_COLUMNS: tuple[str, ...] = (
    S.SYNTH_ID,
    *S.PROFILE_FIELDS,
    S.APP_ID,
    S.CATEGORY,
    S.PRICE,
    S.RATING,
    *S.CONTEXT_FIELDS,
    S.CLICKED,
    "click_prob",
    "exemplar_cluster_ids",
    "request_hash",
    "model",
    "prompt_version",
)
APP_PROMPT_COLUMNS = (S.APP_ID, S.CATEGORY, S.DESCRIPTION, S.PRICE, S.RATING)


# -- exemplars ----------------------------------------------------------------


def allocate_slots(
    seeds_per_cluster: Mapping[int, int], requests: int, per_request: int, seed: int
) -> list[tuple[int, int, int]]:
    """(cluster_id, first slot, slots) so clusters get exemplar slots in seed share.

    Slots 0..Q*a-1 are laid out cluster after cluster; slot j goes to request
    j mod Q. A cluster holds at most Q consecutive slots, so the clusters of
    one request are always distinct; counts follow the seed shares by largest
    remainder (a cluster above 1/a of the seeds is capped at Q).
    """
    if len(seeds_per_cluster) < per_request:
        raise InputError(
            f"stage.seeds has {len(seeds_per_cluster)} clusters; "
            f"synthesize.exemplars_per_request={per_request} needs at least that many"
        )
    quota = _capped_quota(seeds_per_cluster, requests * per_request, requests)
    counts = {c: math.floor(q) for c, q in quota.items()}
    rng = random.Random(seed)
    ties = {c: rng.random() for c in sorted(counts)}
    left = requests * per_request - sum(counts.values())
    open_ = sorted(
        (c for c in counts if counts[c] < requests), key=lambda c: (counts[c] - quota[c], ties[c])
    )
    for c in open_[:left]:
        counts[c] += 1
    order = [c for c in sorted(counts) if counts[c] > 0]
    rng.shuffle(order)
    out, start = [], 0
    for c in order:
        out.append((int(c), start, counts[c]))
        start += counts[c]
    return out


def _capped_quota(sizes: Mapping[int, int], total: int, cap: int) -> dict[int, float]:
    """Pro-rata quotas; clusters over ``cap`` are pinned there, the excess re-shared."""
    pinned: dict[int, float] = {}
    while True:
        free = {c: n for c, n in sizes.items() if c not in pinned}
        seats, weight = total - cap * len(pinned), sum(free.values())
        quota = {c: seats * n / weight for c, n in free.items()}
        over = {c for c, q in quota.items() if q > cap}
        if not over:
            return {**quota, **pinned}
        pinned.update(dict.fromkeys(over, float(cap)))


def exemplar_plan(
    seeds: DataFrame, slots: Sequence[tuple[int, int, int]], requests: int, seed: int
) -> DataFrame:
    """(request_idx, exemplars_json): a seeded seed-row per slot, grouped per request."""
    from pyspark.sql import functions as F

    rows = exemplar_members(seeds, slots, requests, seed)
    member = F.struct("slot", S.CLUSTER_ID, *S.PROFILE_FIELDS)
    return rows.groupBy("request_idx").agg(
        F.to_json(F.sort_array(F.collect_list(member))).alias("exemplars_json")
    )


def exemplar_members(
    seeds: DataFrame, slots: Sequence[tuple[int, int, int]], requests: int, seed: int
) -> DataFrame:
    """(request_idx, slot, cluster_id, seed_no, user_id, profile fields): who fills each slot."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = seeds.sparkSession
    layout = spark.createDataFrame(list(slots), "cluster_id int, start long, cnt long")
    layout = layout.select(
        S.CLUSTER_ID,
        F.explode(F.sequence("start", F.col("start") + F.col("cnt") - 1)).alias("slot"),
    ).withColumn("request_idx", F.col("slot") % F.lit(requests))
    numbered = seeds.select(S.CLUSTER_ID, S.USER_ID, *S.PROFILE_FIELDS).withColumn(
        "seed_no", F.row_number().over(Window.partitionBy(S.CLUSTER_ID).orderBy(S.USER_ID)) - 1
    )
    sizes = numbered.groupBy(S.CLUSTER_ID).agg(F.count("*").alias("n_seeds"))
    picked = layout.join(sizes, S.CLUSTER_ID).withColumn(
        "seed_no", F.pmod(F.xxhash64(F.lit(seed), F.col("slot")), F.col("n_seeds"))
    )
    return picked.join(numbered, [S.CLUSTER_ID, "seed_no"])


def labelled_examples(
    members: DataFrame,
    real: DataFrame,
    apps: DataFrame,
    per_request: int,
    seed: int,
    key: str = "request_idx",
) -> DataFrame:
    """(key, examples_json): labelled real impressions of each request's seed users
    (``key`` = ``user_id``: of each user, for candidates mode).

    Few-shot evidence for the click judgement (SampleLLM shows labelled rows;
    a zero-shot judge has only the base CTR): the seed users' own impressions
    of the day on warm apps, with the app's fields and ``clicked``. Balanced,
    ``ceil(k/2)`` clicks and the rest non-clicks where the request has them (so
    the rows show what drives a click, not the click rate, which the prompt
    states separately), drawn by a seeded hash. All in Spark: one join of the
    day with the request's few seed users, and a window per request and label.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    app_cols = [S.CATEGORY, S.DESCRIPTION, S.PRICE, S.RATING]
    warm = apps.where(~F.coalesce(F.col(S.IS_COLD_START), F.lit(False)))
    ids = list(dict.fromkeys([key, S.USER_ID]))
    users = members.select(*ids, *S.PROFILE_FIELDS).dropDuplicates(ids)
    seen = real.select(S.USER_ID, S.APP_ID, F.col(S.CLICKED).cast("boolean").alias(S.CLICKED))
    rows = users.join(seen, S.USER_ID).join(F.broadcast(warm.select(S.APP_ID, *app_cols)), S.APP_ID)
    draw = F.xxhash64(F.lit(seed), F.lit("examples"), *ids, S.APP_ID)
    rank = F.row_number().over(Window.partitionBy(key, S.CLICKED).orderBy(draw, S.APP_ID))
    ranked = rows.withColumn("_rank", rank).where(F.col("_rank") <= per_request)
    # Interleave the labels (click, non-click, ...), then keep the first k: balanced
    # where both labels exist, all of one label where only it does.
    order = F.col("_rank") * 2 + F.when(F.col(S.CLICKED), 0).otherwise(1)
    ranked = ranked.withColumn("_order", order)
    keep = F.row_number().over(Window.partitionBy(key).orderBy("_order", draw))
    kept = ranked.withColumn("_keep", keep).where(F.col("_keep") <= per_request)
    member = F.struct("_keep", *S.PROFILE_FIELDS, *app_cols, S.CLICKED)
    return kept.groupBy(key).agg(
        F.to_json(F.sort_array(F.collect_list(member))).alias("examples_json")
    )


# -- day facts ----------------------------------------------------------------


def base_ctr(spark: SparkSession, settings: Settings, ds: str) -> tuple[float, str]:
    """The day's real CTR: weighted on sampled logs (undoing the sampling), else raw."""
    from pyspark.sql import functions as F

    from jobs.platform.tables import partition_exists, read_table

    writer = settings.io.delta_writer
    sampled = settings.table_path(settings.tables.sampled_logs)
    if partition_exists(spark, sampled, ds, writer):
        df = read_table(spark, sampled, ds, writer)
        w = F.col("sample_weight")
        row = df.agg((F.sum(F.col(S.CLICKED) * w) / F.sum(w)).alias("ctr")).first()
        source = settings.tables.sampled_logs
    else:
        df = read_table(spark, settings.table_path(settings.tables.user_logs), ds, writer)
        row = df.agg(F.avg(S.CLICKED).alias("ctr")).first()
        source = settings.tables.user_logs
    if row is None or row["ctr"] is None:
        raise EmptyInputError(f"table {source}: no rows for ds={ds}")
    return float(row["ctr"]), source


def cold_apps(apps: DataFrame, limit: int = 5_000) -> list[dict[str, Any]]:
    """Cold-start apps for the prompts (a catalogue slice, bounded, not log volume)."""
    from pyspark.sql import functions as F

    rows = apps.where(F.col(S.IS_COLD_START)).select(*APP_PROMPT_COLUMNS).limit(limit + 1).collect()
    if not rows:
        raise EmptyInputError("table ref.apps: no rows with is_cold_start = true")
    if len(rows) > limit:
        raise InputError(f"table ref.apps: more than {limit} cold-start apps; raise the limit")
    return [r.asDict() for r in sorted(rows, key=lambda r: r[S.APP_ID])]


# -- calling with the cache ---------------------------------------------------


def call_uncached(
    plan: DataFrame,
    cfg: ClientConfig,
    settings: Settings,
    ds: str,
    run: RunLog,
    *,
    task: str,
    version: str,
) -> None:
    """Send every plan request not yet in stage.llm_responses, one committed wave at a time.

    Each wave's mapInPandas output is consumed by exactly one action (the
    append), so no request is sent twice by Spark recomputation; a crash
    loses at most the wave in flight.
    """
    from pyspark.sql import functions as F

    from jobs.platform.tables import write_table
    from llm_client.cache import cached_ok
    from llm_client.local_llm import assert_alive
    from llm_client.progress import ProgressServer
    from spark_udfs.llm_calls import call_fn

    llm, writer = settings.llm.effective(), settings.io.delta_writer
    path = settings.table_path(settings.tables.llm_responses)
    cached = cached_ok(plan.sparkSession, path, writer)
    todo = plan.select("request_hash", "task", "body")
    if cached is not None:
        todo = todo.join(cached.select("request_hash"), "request_hash", "left_anti")
    total, pending = plan.count(), todo.count()
    run.add(**{f"{task}_requests": total, f"{task}_requests_cached": total - pending})
    waves = math.ceil(pending / llm.wave_size)
    parts = call_partitions(llm, plan.sparkSession.sparkContext.defaultParallelism)
    run.add(**{f"{task}_call_partitions": parts})
    with ProgressServer(task, pending, progress_host(plan.sparkSession)) as progress:
        cfg = replace(cfg, progress_url=progress.url)
        for w in range(waves):
            wave = todo.where(F.pmod(F.xxhash64("request_hash"), F.lit(waves)) == w)
            out = wave.repartition(parts).mapInPandas(
                call_fn(cfg, ds, run.run_id, version), _response_ddl()
            )
            write_table(out, path, mode="append", writer=writer)
            assert_alive()
            _check_wave(plan.sparkSession, settings, run.run_id, task, final=w == waves - 1)


def call_partitions(llm: LLMSettings, executor_cores: int) -> int:
    """Partitions of one wave of LLM calls: the executors' cores (or ``llm.partitions``),
    capped so that partitions x ``partition_concurrency`` stays within ``concurrency``."""
    cap = max(1, llm.concurrency // llm.partition_concurrency)
    return max(1, min(llm.partitions or executor_cores, cap))


def progress_host(spark: SparkSession) -> str:
    """Where executors reach the driver's progress counter: loopback in local mode."""
    master = spark.sparkContext.master
    if master.startswith("local"):
        return "127.0.0.1"
    return spark.conf.get("spark.driver.host", "127.0.0.1")


def _response_ddl() -> str:
    from llm_client.cache import RESPONSE_DDL

    return RESPONSE_DDL


def _check_wave(spark: SparkSession, settings: Settings, run_id: str, task: str, final: bool):
    """Fail fast on errors that retries cannot fix; at the end, on too many failures."""
    from pyspark.sql import functions as F

    from jobs.platform.tables import read_table
    from llm_client.cache import STATUS_ERROR

    path = settings.table_path(settings.tables.llm_responses)
    mine = read_table(spark, path, writer=settings.io.delta_writer).where(
        (F.col("run_id") == run_id) & (F.col("task") == task)
    )
    failed = F.col("status") == STATUS_ERROR
    permanent = failed & F.col("http_status").between(400, 499)
    permanent = permanent & ~F.col("http_status").isin(408, 409, 429)
    # One small aggregate per wave (not one query per question).
    row = mine.agg(
        F.count("*").alias("n"),
        F.sum(failed.cast("int")).alias("bad"),
        F.min(F.when(permanent, F.col("error"))).alias("permanent"),
        F.min(F.when(failed, F.col("error"))).alias("first_error"),
    ).first()
    if row["permanent"] is not None:
        raise LLMError(
            f"LLM endpoint rejected a {task} request ({row['permanent']}); "
            f"retrying cannot fix this: check llm.model / llm.endpoint / the API key"
        )
    n, bad = row["n"], row["bad"] or 0
    if final and n and bad / n > settings.llm.max_failure_share:
        raise LLMError(
            f"{bad}/{n} {task} requests failed after retries (> llm.max_failure_share="
            f"{settings.llm.max_failure_share}); first error: {row['first_error']}; "
            "re-run to retry only the failed ones"
        )


def with_replies(plan: DataFrame, settings: Settings) -> DataFrame:
    """Plan rows joined with their cached successful reply."""
    from llm_client.cache import cached_ok

    cached = cached_ok(plan.sparkSession, settings.table_path(settings.tables.llm_responses))
    return plan.join(cached, "request_hash")


def _count_drops(parsed: DataFrame, run: RunLog, prefix: str) -> None:
    from pyspark.sql import functions as F

    drops = parsed.where(F.col("drop_reason").isNotNull()).groupBy("drop_reason").sum("n")
    for row in drops.collect():  # one row per reason: bounded
        run.drop(f"{prefix}{row[0]}", int(row[1]))


# -- the two tasks ------------------------------------------------------------


def synthesize_profiles(
    plan: DataFrame, seeds: DataFrame, settings: Settings, run: RunLog
) -> DataFrame:
    """Parse + validate profile replies; drop (and count) copies of any real seed."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from spark_udfs.llm_calls import PROFILE_ROWS_DDL, profile_parse_fn

    replies = with_replies(plan, settings).select(
        "request_hash", "request_idx", "exemplar_cluster_ids", "context", "response", "model",
        "status",
    )  # fmt: skip
    parsed = replies.mapInPandas(profile_parse_fn(), PROFILE_ROWS_DDL)
    # Parsed twice (drop counts, rows): keep it rather than re-parse every reply.
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    _count_drops(parsed, run, "profile.")
    valid = parsed.where(F.col("drop_reason").isNull()).drop("drop_reason", "n")
    real = seeds.select(*S.PROFILE_FIELDS).distinct().withColumn("_seed", F.lit(True))
    marked = valid.join(real, list(S.PROFILE_FIELDS), "left")
    copies = marked.where(F.col("_seed").isNotNull()).count()
    run.drop("profile.copy_of_seed", copies)
    return marked.where(F.col("_seed").isNull()).drop("_seed")


def click_plan(
    profiles: DataFrame,
    spec: RequestSpec,
    batches: list,
    facts: dict,
    examples: DataFrame | None = None,
) -> DataFrame:
    """One click request per profile request: its valid profiles x one app batch
    (+ the request's labelled examples, ``labelled_examples``, when given)."""
    from pyspark.sql import functions as F

    from spark_udfs.llm_calls import REQUEST_DDL, click_plan_fn

    member = F.struct("profile_id", *S.PROFILE_FIELDS, "exemplar_cluster_ids")
    grouped = profiles.groupBy("request_idx").agg(
        F.to_json(F.collect_list(member)).alias("profiles_json")
    )
    if examples is not None:
        grouped = grouped.join(examples, "request_idx", "left")
    return grouped.mapInPandas(click_plan_fn(spec, batches, facts), REQUEST_DDL)


def synthetic_rows(
    plan: DataFrame,
    apps: DataFrame,
    settings: Settings,
    run: RunLog,
    version: str,
    prefix: str = "click.",
) -> DataFrame:
    """Click replies -> stage.synthetic_raw rows (app fields from ref.apps)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from spark_udfs.llm_calls import CLICK_ROWS_DDL, click_parse_fn

    replies = with_replies(plan, settings).select(
        "request_hash", "context", "response", "model", "status"
    )
    parsed = replies.mapInPandas(click_parse_fn(), CLICK_ROWS_DDL)
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    _count_drops(parsed, run, prefix)
    valid = parsed.where(F.col("drop_reason").isNull()).drop("drop_reason", "n")
    app_cols = apps.select(S.APP_ID, S.CATEGORY, S.PRICE, S.RATING)
    rows = valid.join(F.broadcast(app_cols), S.APP_ID).withColumn("prompt_version", F.lit(version))
    return rows


def synthesize_candidates(spark: SparkSession, settings: Settings, ds: str, run: RunLog,
                          spec: RequestSpec, cfg: ClientConfig, version: str, apps: DataFrame,
                          cold: list[dict], facts: dict) -> DataFrame:  # fmt: skip
    """Candidates mode: content filter -> click requests of real users -> rows, real context."""
    from pyspark import StorageLevel

    from jobs.platform.tables import read_table
    from jobs.stage1.candidates import candidate_pairs, candidate_plan, with_real_context
    from spark_udfs.llm_calls import CANDIDATE_TASK

    syn, writer, tables = settings.synthesize, settings.io.delta_writer, settings.tables
    name, real = _real_day(spark, settings, ds)
    clusters = read_table(spark, settings.table_path(tables.user_clusters), ds, writer)
    pairs, figures = candidate_pairs(real, clusters, apps, cold, syn.candidates_per_app,
                                     syn.text_table)  # fmt: skip
    pairs = pairs.persist(StorageLevel.MEMORY_AND_DISK)
    n_pairs = pairs.count()
    if n_pairs == 0:
        raise EmptyInputError(f"table {name}: no user with a click on ds={ds}; candidates mode "
                              "needs clicked apps to describe a user")  # fmt: skip
    if syn.click_exemplars:
        users = pairs.select(S.USER_ID, *S.PROFILE_FIELDS).dropDuplicates([S.USER_ID])
        shown = labelled_examples(users, real, apps, syn.click_exemplars, syn.seed, S.USER_ID)
        pairs = pairs.join(shown, S.USER_ID, "left")
    plan = candidate_plan(pairs, spec, cold, facts, syn.candidate_users_per_request,
                          syn.candidates_per_app, syn.click_exemplars).persist()  # fmt: skip
    call_uncached(plan, cfg, settings, ds, run, task=CANDIDATE_TASK, version=version)
    rows = synthetic_rows(plan, apps, settings, run, version, prefix="candidate.")
    n_requests = int(run.figures.get(f"{CANDIDATE_TASK}_requests", 0))
    run.add(**figures, candidate_pairs=n_pairs, candidate_source=name,
            candidate_calls_per_cold_app=round(n_requests / max(len(cold), 1), 2))  # fmt: skip
    return with_real_context(rows, pairs).select(*SYNTHETIC_RAW_COLUMNS)


def _real_day(spark: SparkSession, settings: Settings, ds: str) -> tuple[str, DataFrame]:
    """(name, rows) of the day's real impressions: the sample if written, else the raw logs."""
    from jobs.platform.tables import partition_exists, read_table

    writer, tables = settings.io.delta_writer, settings.tables
    sampled = settings.table_path(tables.sampled_logs)
    name = tables.sampled_logs if partition_exists(spark, sampled, ds, writer) else tables.user_logs
    return name, read_table(spark, settings.table_path(name), ds, writer)


def _warn(run: RunLog, ds: str, note: str) -> None:
    """A warning in the log and in the run report (never a log line only)."""
    log.warning("synthesize ds=%s: %s", ds, note)
    run.add(warnings=[*run.figures.get("warnings", []), note])


def with_context(
    spark: SparkSession, settings: Settings, ds: str, rows: DataFrame, run: RunLog
) -> DataFrame:
    """Context fields drawn from the real day (``jobs.stage1.context``); fallbacks reported."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.platform.tables import read_table
    from jobs.stage1.context import FALLBACK, fill_context

    writer, tables = settings.io.delta_writer, settings.tables
    name, real = _real_day(spark, settings, ds)
    clusters = read_table(spark, settings.table_path(tables.user_clusters), ds, writer)
    filled = fill_context(rows, real, clusters, settings.synthesize.seed, source=name)
    filled = filled.persist(StorageLevel.MEMORY_AND_DISK)
    fallback = filled.where(F.col(FALLBACK)).count()
    run.add(context_source=name, context_fallback_rows=fallback)
    if fallback:
        note = (f"{fallback} synthetic rows got their context from the whole day: their "
                f"exemplar cluster had no real rows with the same label in {name}")  # fmt: skip
        _warn(run, ds, note)
    return filled.select(*SYNTHETIC_RAW_COLUMNS)


# -- the day ------------------------------------------------------------------


def request_spec(settings: Settings, ep: Endpoint, prompts_: Any, ds: str) -> RequestSpec:
    from spark_udfs.llm_calls import RequestSpec

    llm, syn = settings.llm.effective(), settings.synthesize
    return RequestSpec(
        ep.cache_model, prompts_, syn.rows_per_request, llm.temperature, llm.top_p,
        llm.max_tokens, syn.seed, ds,
    )  # fmt: skip


def choose_prompts(
    spark: SparkSession, settings: Settings, ep: Endpoint, seeds: DataFrame, refine: bool
) -> Any:
    """The stored instruction (or template); refine first only when asked to."""
    from llm_client.prompts import load_prompts
    from llm_client.refine import prompts_in_force
    from llm_client.refine import refine as run_refine

    syn = settings.synthesize
    if not refine:
        return prompts_in_force(settings.warehouse, syn.prompt_version)
    drawn = refine_samples(seeds, syn.refine_samples, syn.seed).select(*S.PROFILE_FIELDS)
    samples = [r.asDict() for r in drawn.collect()]  # refine_samples rows: bounded
    cfg = ep.client_config(settings.llm, min(settings.llm.effective().concurrency, 8))
    base = load_prompts(syn.prompt_version)
    return run_refine(cfg, base, samples, syn.refine_rounds, settings.warehouse, syn.seed,
                      select_requests=syn.select_requests,
                      exemplars_per_request=syn.exemplars_per_request,
                      rows_per_request=syn.rows_per_request)  # fmt: skip


def refine_samples(seeds: DataFrame, n: int, seed: int) -> DataFrame:
    """``n`` seed profiles drawn across clusters: one per cluster (largest first) in
    seeded order, then a second round, ..., so the refiner sees the population's
    spread rather than whichever seeds a plain ``limit`` returns first."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    draw = F.xxhash64(F.lit(seed), F.lit("refine"), S.USER_ID)
    within = F.row_number().over(Window.partitionBy(S.CLUSTER_ID).orderBy(draw, S.USER_ID))
    ranked = seeds.withColumn("_within", within).withColumn("_draw", draw)
    order = [F.col("_within"), F.desc(S.CLUSTER_SIZE), F.col("_draw"), F.col(S.CLUSTER_ID)]
    return ranked.orderBy(*order).limit(n).select(S.CLUSTER_ID, *S.PROFILE_FIELDS)


def synthesize_day(
    spark: SparkSession,
    settings: Settings,
    ep: Endpoint,
    ds: str,
    run: RunLog,
    *,
    refine: bool = False,
    requests: int | None = None,
) -> DataFrame:
    """Profiles: extract -> profile requests -> calls -> profiles -> click requests -> calls
    -> rows; candidates: content filter -> click requests of real users -> calls -> rows."""
    from pyspark.sql import functions as F

    from jobs.platform.tables import read_table
    from llm_client.prompts import text_hash
    from spark_udfs.llm_calls import CLICK_TASK, PROFILE_TASK, REQUEST_DDL, profile_plan_fn

    syn, writer = settings.synthesize, settings.io.delta_writer
    seeds = read_table(spark, settings.table_path(settings.tables.seeds), ds, writer)
    apps = read_table(spark, settings.table_path(settings.tables.apps), writer=writer)
    ctr, ctr_source = base_ctr(spark, settings, ds)
    prompts_ = choose_prompts(spark, settings, ep, seeds, refine)
    version = prompts_.prompt_version
    spec = request_spec(settings, ep, prompts_, ds)
    cfg = ep.client_config(settings.llm, settings.llm.effective().partition_concurrency)
    facts = {"base_ctr": round(ctr, 5), "source": ctr_source}
    cold = cold_apps(apps)
    run.add(
        model=ep.model,
        model_identity=ep.cache_model,
        dialect=ep.dialect,
        standin=ep.is_standin,
        prompt_version=version,
        instruction_hash=text_hash(prompts_.instruction),
        base_ctr=round(ctr, 5),
        mode=syn.mode,
    )
    parts = []
    if syn.mode in ("profiles", "both"):
        q = requests or syn.requests or math.ceil(syn.target_profiles / syn.rows_per_request)
        per_cluster = {
            int(r[0]): int(r[1]) for r in seeds.groupBy(S.CLUSTER_ID).count().collect()
        }  # one row per cluster: bounded by the cluster count, not the day
        if not per_cluster:
            raise EmptyInputError(f"table {settings.tables.seeds}: no seeds for ds={ds}")
        slots = allocate_slots(per_cluster, q, syn.exemplars_per_request, syn.seed)
        plan = exemplar_plan(seeds, slots, q, syn.seed).mapInPandas(
            profile_plan_fn(spec), REQUEST_DDL
        )
        examples = None
        if syn.click_exemplars:
            members = exemplar_members(seeds, slots, q, syn.seed)
            examples = labelled_examples(members, _real_day(spark, settings, ds)[1], apps,
                                         syn.click_exemplars, syn.seed)  # fmt: skip
        plan = plan.persist()
        call_uncached(plan, cfg, settings, ds, run, task=PROFILE_TASK, version=version)
        profiles = synthesize_profiles(plan, seeds, settings, run).persist()
        domains = plan_batches(cold, syn.apps_per_click_request, q, syn.domain_budget,
                               syn.domain_min_requests, syn.seed)  # fmt: skip
        for note in domains.warnings:
            _warn(run, ds, note)
        clicks = click_plan(profiles, spec, domains.batches, facts, examples).persist()
        call_uncached(clicks, cfg, settings, ds, run, task=CLICK_TASK, version=version)
        parts.append(with_context(
            spark, settings, ds, synthetic_rows(clicks, apps, settings, run, version), run
        ))  # fmt: skip
        run.add(requests=q, clusters=len(per_cluster), profiles=profiles.count(),
                domain_budget=syn.domain_budget, **domains.figures())  # fmt: skip
    if syn.mode in ("candidates", "both"):
        parts.append(synthesize_candidates(spark, settings, ds, run, spec, cfg, version, apps,
                                           cold, facts))  # fmt: skip
    rows = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    return rows.withColumn(S.DS, F.lit(ds))


def _run_figures(spark: SparkSession, settings: Settings, run: RunLog) -> None:
    """Tokens, latency and failures of this run's calls, from stage.llm_responses."""
    from pyspark.sql import functions as F

    from jobs.platform.tables import read_table, table_exists

    path = settings.table_path(settings.tables.llm_responses)
    if not table_exists(spark, path, settings.io.delta_writer):
        return
    mine = read_table(spark, path, writer=settings.io.delta_writer).where(
        F.col("run_id") == run.run_id
    )
    row = mine.agg(
        F.count("*").alias("calls"),
        F.sum((F.col("status") != "ok").cast("int")).alias("failed"),
        F.sum("prompt_tokens").alias("prompt_tokens"),
        F.sum("completion_tokens").alias("completion_tokens"),
        F.avg("latency_s").alias("mean_latency_s"),
        F.sum(F.col("attempts") - 1).alias("retries"),
    ).first()
    run.add(**{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.asDict().items()})


def write_nonempty(rows: DataFrame, out: str, ds: str, writer: str) -> WriteResult:
    """Replace ``out[ds]`` with ``rows`` only if there is at least one row.

    Counted before the write (rows persisted, so the LLM plan is not run twice):
    a day with 0 valid rows raises and leaves the previous partition, if any,
    untouched, never an empty one. The write itself is one Delta commit.
    """
    from jobs.platform.tables import write_partition

    rows = rows.persist()
    if rows.count() == 0:
        rows.unpersist()
        raise ValidationFailedError(f"table {out}: ds={ds} got 0 valid synthetic rows; not written")
    try:
        return write_partition(rows, out, ds, writer=writer)
    finally:
        rows.unpersist()


def record_lineage(settings: Settings, ds: str, ep: Endpoint, run: RunLog, version: int) -> str:
    """What is constant over ``stage.synthetic_raw[ds]``: run, endpoint, model, prompt."""
    from jobs.platform.lineage import write_lineage

    keys = ("model", "standin", "prompt_version", "instruction_hash", "rows_out", "clusters",
            "mode")  # fmt: skip
    doc = {k: run.figures.get(k) for k in keys}
    doc.update(run_id=run.run_id, endpoint=ep.base_url, table_version=version)
    doc["row_lineage"] = ["model", "prompt_version", "exemplar_cluster_ids", "request_hash"]
    return write_lineage(settings.warehouse, settings.tables.synthetic_raw, ds, doc)


def main(argv: Sequence[str] | None = None) -> int:
    """``coldstart synthesize``: stage.seeds[ds] -> stage.synthetic_raw[ds]."""
    from configs.settings import load_config
    from jobs.platform.common import RunLog, job_parser
    from jobs.platform.spark import get_spark
    from llm_client.endpoint import open_endpoint

    parser = job_parser("synthesize", "LLM stage 1: synthetic profiles and click judgements.")
    parser.add_argument(
        "--refine-instruction",
        action="store_true",
        help="first refine the instruction (eq. 4, synthesize.refine_rounds) and store it",
    )
    parser.add_argument("--requests", type=int, default=None, help="Q (default: from config)")
    args = parser.parse_args(argv)
    if args.requests is not None and args.requests < 1:
        parser.error(f"--requests {args.requests}: expected a positive number")
    settings = load_config(args.config)
    run = RunLog("synthesize", args.ds)
    spark = get_spark(settings.spark)
    out = settings.table_path(settings.tables.synthetic_raw)
    with open_endpoint(settings.llm) as ep:
        rows = synthesize_day(
            spark, settings, ep, args.ds, run, refine=args.refine_instruction,
            requests=args.requests,
        )  # fmt: skip
        result = write_nonempty(rows, out, args.ds, settings.io.delta_writer)
    _run_figures(spark, settings, run)
    run.add(rows_out=result.rows, table=out, version=result.version)
    record_lineage(settings, args.ds, ep, run, result.version)
    run.emit()
    marker = " (OFFLINE STAND-IN, not an LLM)" if ep.is_standin else ""
    print(f"synthesized {result.rows} rows for ds={args.ds} into {out} with {ep.model}{marker}")
    return 0


if __name__ == "__main__":
    import sys

    from jobs.cli import main as cli_main

    sys.exit(cli_main(["synthesize", *sys.argv[1:]]))
