"""Per-domain synthesis budgets: no cold category starves; splits are exact and recorded."""

from __future__ import annotations

import pytest

from jobs.platform import schema as S
from jobs.platform.errors import ConfigError
from jobs.stage1.budgets import domain_requests, plan_batches


def _apps(**per_category: int) -> list[dict]:
    return [{S.APP_ID: f"{c}-{i}", S.CATEGORY: c}
            for c, n in per_category.items() for i in range(n)]  # fmt: skip


def test_domain_requests__proportional_with_a_floor_by_largest_remainder() -> None:
    split, warning = domain_requests({"games": 90, "tools": 8, "music": 2}, 20, "proportional", 1)
    assert split == {"games": 17, "music": 1, "tools": 2} and warning is None
    equal, _ = domain_requests({"a": 10, "b": 1}, 5, "equal", 0)
    assert sum(equal.values()) == 5 and abs(equal["a"] - equal["b"]) == 1
    with pytest.raises(ConfigError, match=r"synthesize\.domain_budget: 'most'"):
        domain_requests({"a": 1}, 3, "most", 1)


def test_domain_requests__a_floor_the_day_cannot_pay_is_lowered_with_a_warning() -> None:
    split, warning = domain_requests({"a": 5, "b": 5, "c": 5}, 2, "proportional", 1)
    assert sum(split.values()) == 2 and sorted(split.values()) == [0, 1, 1]
    assert "needs 3 click requests, the day has 2: floor lowered to 0" in warning
    assert "no click request for the cold apps of" in warning


def test_plan_batches__the_pooled_list_starves_a_small_category_the_budget_does_not() -> None:
    apps = _apps(games=40, music=3)
    pooled = plan_batches(apps, 8, 3, "none", 1, seed=0)
    domains = plan_batches(apps, 8, 3, "proportional", 1, seed=0)

    assert len(pooled.batches) == len(domains.batches) == 3
    assert len(pooled.unjudged) == 43 - 24 and pooled.warnings
    assert "music-2" in pooled.unjudged  # this seed's pooled list leaves a music app out
    judged = {a[S.APP_ID] for b in domains.batches for a in b}
    assert {f"music-{i}" for i in range(3)} <= judged  # the small category gets its request
    assert domains.requests == {"games": 2, "music": 1}
    assert all(len({a[S.CATEGORY] for a in b}) == 1 for b in domains.batches)
    assert domains.figures()["cold_apps_unjudged"] == 40 - 16
    assert plan_batches(apps, 8, 3, "proportional", 1, seed=0).batches == domains.batches
