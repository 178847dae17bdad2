"""Candidates mode's content filter: the global top N users per cold app, across partitions."""

from __future__ import annotations

import pytest

from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError
from jobs.stage1.candidates import candidate_pairs

CHESS, BANK = "A chess puzzle game with daily tactics", "A banking app for budgets and bills"


def _day(spark, users: dict[str, str]):
    """One click per user on a warm app (chess or bank), profile and context per user."""
    logs = [(u, f"e{i}", "warm-chess" if kind == "chess" else "warm-bank", 1,
             *(["x"] * len(S.PROFILE_FIELDS)), *([1] * len(S.CONTEXT_FIELDS)))
            for i, (u, kind) in enumerate(sorted(users.items()))]  # fmt: skip
    cols = [S.USER_ID, S.EVENT_ID, S.APP_ID, S.CLICKED, *S.PROFILE_FIELDS, *S.CONTEXT_FIELDS]
    sampled = spark.createDataFrame(logs, cols)
    apps = spark.createDataFrame(
        [("warm-chess", CHESS, False), ("warm-bank", BANK, False),
         ("cold-chess", "Chess tactics puzzles for club players", True),
         ("cold-bank", "Track your budget and pay bills from your bank", True)],
        [S.APP_ID, S.DESCRIPTION, S.IS_COLD_START],
    )  # fmt: skip
    clusters = spark.createDataFrame([(u, 0) for u in users], [S.USER_ID, S.CLUSTER_ID])
    cold = [{S.APP_ID: "cold-bank"}, {S.APP_ID: "cold-chess"}]
    return sampled, clusters, apps, cold


def test_candidate_pairs__global_top_n_even_when_users_span_partitions(spark) -> None:
    users = {f"u{i:02d}": "chess" if i in (3, 11) else "bank" for i in range(16)}
    sampled, clusters, apps, cold = _day(spark, users)
    conf = "spark.sql.adaptive.coalescePartitions.enabled"
    before = spark.conf.get(conf)
    spark.conf.set(conf, "false")  # keep 4 shuffle partitions: each keeps its own top N
    try:
        pairs, figures = candidate_pairs(sampled, clusters, apps, cold, 2, None)
        got = pairs.select(S.APP_ID, S.USER_ID, S.CLUSTER_ID, *S.CONTEXT_FIELDS).toPandas()
    finally:
        spark.conf.set(conf, before)

    chess = set(got.loc[got[S.APP_ID] == "cold-chess", S.USER_ID])
    bank = set(got.loc[got[S.APP_ID] == "cold-bank", S.USER_ID])
    assert chess == {"u03", "u11"}
    assert len(bank) == 2 and not bank & {"u03", "u11"}
    assert figures == {"candidate_users": 16, "candidates_per_app": 2, "candidate_cold_apps": 2}
    assert (got[S.CLUSTER_ID] == 0).all() and (got[list(S.CONTEXT_FIELDS)] == 1).all().all()


def test_candidate_pairs__a_cold_app_missing_from_the_catalogue_is_an_error(spark) -> None:
    sampled, clusters, apps, _ = _day(spark, {"u1": "chess", "u2": "bank"})
    with pytest.raises(EmptyInputError, match=r"cold apps \['cold-nope'\] have no row"):
        candidate_pairs(sampled, clusters, apps, [{S.APP_ID: "cold-nope"}], 2, None)


def test_shown_examples__round_robin_over_users_then_interleaved_labels() -> None:
    import json

    from jobs.stage1.candidates import shown_examples

    def ex(user: str, n: int, clicked: bool) -> dict:
        return {"_keep": n, S.DESCRIPTION: f"{user}{n}", S.CLICKED: clicked}

    a_examples = [ex("a", 1, True), ex("a", 2, False), ex("a", 3, False)]
    part = [
        {S.USER_ID: "a", "examples_json": json.dumps(a_examples)},
        {S.USER_ID: "b", "examples_json": json.dumps([ex("b", 1, False)])},
        {S.USER_ID: "c"},  # no impressions on warm apps: no examples
    ]
    shown = shown_examples(part, 3)
    # Round-robin pools a1, b1, a2, a3; interleaving labels keeps a1 (click), b1, a2.
    assert [e[S.DESCRIPTION] for e in shown] == ["a1", "b1", "a2"]
    assert all("_keep" not in e for e in shown) and shown_examples(part[2:], 3) == []
