"""Seed apportionment (largest remainder, >= 1 per cluster) and the seeded pick."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from jobs.platform import schema as S
from jobs.stage1.seeds import apportion, pick_seeds


def test_apportion__hand_checked_largest_remainder():
    # quotas 7 * (60, 25, 15) / 100 = 4.2, 1.75, 1.05 -> floors 4, 1, 1 (sum 6);
    # the one seat left goes to the largest fraction (.75, cluster 1).
    assert apportion({0: 60, 1: 25, 2: 15}, 7) == {0: 4, 1: 2, 2: 1}


def test_apportion__minimum_one_overshoot_taken_back_from_largest():
    # quotas 6 * (97, 1, 1, 1) / 100 = 5.82, .06, .06, .06: the three small
    # clusters are pinned at 1 seed, the other 3 seats all go to cluster 0.
    assert apportion({0: 97, 1: 1, 2: 1, 3: 1}, 6) == {0: 3, 1: 1, 2: 1, 3: 1}


def test_apportion__sums_to_target_every_cluster_seeded_proportional():
    rng = np.random.default_rng(3)
    sizes = {c: int(n) for c, n in enumerate(rng.pareto(1.2, 1000) * 20 + 1)}
    sizes[1000] = 0  # an empty cluster gets nothing
    total = 3000
    alloc = apportion(sizes, total)
    users = sum(sizes.values())
    assert sum(alloc.values()) == total
    assert 1000 not in alloc
    assert all(alloc[c] >= 1 for c in sizes if sizes[c] > 0)
    assert all(alloc[c] <= sizes[c] for c in alloc)
    # Bigger clusters never get fewer seeds; unpinned ones sit within one seat
    # of their quota re-scaled to the seats left after the pinned clusters.
    by_size = sorted(alloc, key=lambda c: sizes[c])
    pairs = itertools.pairwise(by_size)
    assert all(alloc[a] <= alloc[b] for a, b in pairs if sizes[a] < sizes[b])
    free = [c for c in alloc if alloc[c] > 1]
    seats, weight = sum(alloc[c] for c in free), sum(sizes[c] for c in free)
    assert all(abs(alloc[c] - seats * sizes[c] / weight) < 1 for c in free)
    assert users > total


def test_apportion__no_pinning_is_plain_hamilton():
    sizes = {c: 10 + 7 * c for c in range(40)}
    alloc = apportion(sizes, 200)
    users = sum(sizes.values())
    assert sum(alloc.values()) == 200
    assert all(abs(alloc[c] - 200 * n / users) < 1 for c, n in sizes.items())


def test_apportion__fewer_seeds_than_clusters_gives_one_each():
    assert apportion({0: 10, 1: 5, 2: 1}, 2) == {0: 1, 1: 1, 2: 1}


def test_apportion__target_above_users_takes_everyone():
    assert apportion({0: 3, 1: 2}, 50) == {0: 3, 1: 2}


@pytest.fixture(scope="module")
def assigned(spark):
    rows = [(f"u{i:04d}", i % 5) for i in range(300)]
    return spark.createDataFrame(rows, [S.USER_ID, S.CLUSTER_ID])


def test_pick_seeds__counts_match_quotas_and_are_reproducible(assigned):
    quotas = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5}
    seeds = pick_seeds(assigned, quotas, seed=5)
    counts = {r[S.CLUSTER_ID]: r["count"] for r in seeds.groupBy(S.CLUSTER_ID).count().collect()}
    assert counts == quotas
    again = pick_seeds(assigned.repartition(7), quotas, seed=5)
    users = {r[S.USER_ID] for r in seeds.collect()}
    assert users == {r[S.USER_ID] for r in again.collect()}
    other = {r[S.USER_ID] for r in pick_seeds(assigned, quotas, seed=6).collect()}
    assert other != users
    assert math.isclose(len(users), sum(quotas.values()))
