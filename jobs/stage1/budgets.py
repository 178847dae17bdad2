"""Per-domain synthesis budgets: which cold apps each click request judges.

Why: with one pooled list of cold apps, the day's click requests go to
whatever apps the shuffle puts first, so a category with few cold apps can
get no judgement at all (multi-domain synthesis, the seed on LLM-generated
data for multi-domain recommendation: cold domains get budgets of their own).
Here the domain is the app category. ``synthesize.domain_budget``:

* ``proportional``: click requests in proportion to a category's cold apps;
* ``equal``: the same number of requests per category;
* ``none``: the pooled list (request r judges batch r mod n, the old rule);

and every category with cold apps gets at least ``domain_min_requests``.
Each request judges ``apps_per_click_request`` apps of one category. The
split and the apps no request reaches are returned for the run report.
Pure Python over the cold-app catalogue slice (bounded, not log volume).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.platform import schema as S
from jobs.platform.errors import ConfigError

RULES = ("proportional", "equal", "none")


@dataclass
class DomainPlan:
    """One app batch per click request (request r judges ``batches[r]``) and its figures."""

    batches: list[list[dict[str, Any]]]
    requests: dict[str, int]  # category -> click requests
    cold_apps: dict[str, int]  # category -> cold apps
    unjudged: list[str] = field(default_factory=list)  # cold apps no request reaches
    warnings: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {"domain_requests": self.requests, "domain_cold_apps": self.cold_apps,
                "cold_apps_unjudged": len(self.unjudged)}  # fmt: skip


def domain_requests(cold: Mapping[str, int], requests: int, rule: str,
                    min_requests: int) -> tuple[dict[str, int], str | None]:  # fmt: skip
    """(click requests per domain, warning): at least the floor each, the rest by ``rule``.

    Largest remainder on the quota above the floor, ties by domain name, so
    the split sums to ``requests`` exactly and is deterministic. When the day's
    requests cannot give every category the floor, the floor shrinks to what
    they can, and the warning says so (it goes into the run report).
    """
    if rule not in ("proportional", "equal"):
        raise ConfigError(f"synthesize.domain_budget: {rule!r}; expected one of {RULES}")
    domains = sorted(d for d, n in cold.items() if n > 0)
    floor = min(min_requests, requests // len(domains))
    warning = None
    if floor < min_requests:
        warning = (
            f"synthesize.domain_min_requests {min_requests} x {len(domains)} categories with "
            f"cold apps needs {min_requests * len(domains)} click requests, the day has "
            f"{requests}: floor lowered to {floor}"
        )
    total = sum(cold[d] for d in domains)
    share = {d: cold[d] / total if rule == "proportional" else 1 / len(domains) for d in domains}
    out = {d: floor for d in domains}
    rest = requests - floor * len(domains)
    want = {d: max(share[d] * requests - floor, 0.0) for d in domains}
    scale = sum(want.values())
    quota = {d: (want[d] / scale if scale else share[d]) * rest for d in domains}
    for d in domains:
        out[d] += math.floor(quota[d])
    left = requests - sum(out.values())
    for d in sorted(domains, key=lambda d: (-(quota[d] - math.floor(quota[d])), d))[:left]:
        out[d] += 1
    starved = [d for d in domains if out[d] == 0]
    if starved and warning:
        warning += f"; no click request for the cold apps of {starved}"
    return out, warning


def app_batches(apps: Sequence[dict], size: int, seed: int) -> list[list[dict]]:
    """Seeded shuffle, then fixed batches: click request r judges batch r mod n."""
    order = list(apps)
    random.Random(seed).shuffle(order)
    return [order[i : i + size] for i in range(0, len(order), size)]


def plan_batches(apps: Sequence[dict[str, Any]], size: int, requests: int, rule: str,
                 min_requests: int, seed: int) -> DomainPlan:  # fmt: skip
    """``requests`` app batches of at most ``size`` apps, split across categories by ``rule``."""
    by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in apps:
        by_domain[str(a.get(S.CATEGORY))].append(a)
    cold = {d: len(v) for d, v in sorted(by_domain.items())}
    rng = random.Random(seed)
    warnings = []
    if rule == "none":
        pool = app_batches(apps, size, seed)
        batches = [pool[r % len(pool)] for r in range(requests)]
    else:
        split, warning = domain_requests(cold, requests, rule, min_requests)
        warnings += [warning] if warning else []
        batches = []
        for d, k in split.items():
            pool = app_batches(by_domain[d], size, rng.randrange(2**31))
            batches += [pool[r % len(pool)] for r in range(k)]
        rng.shuffle(batches)  # spread each category over the profile requests
    counts: dict[str, int] = defaultdict(int)
    for b in batches:  # requests that judge at least one app of the category
        for d in {str(a.get(S.CATEGORY)) for a in b}:
            counts[d] += 1
    seen = {str(a[S.APP_ID]) for b in batches for a in b}
    unjudged = sorted(str(a[S.APP_ID]) for a in apps if str(a[S.APP_ID]) not in seen)
    if unjudged:
        warnings.append(
            f"{len(unjudged)} of {len(apps)} cold apps get no click judgement today "
            f"({requests} click requests x {size} apps); e.g. {unjudged[:3]}"
        )
    return DomainPlan(batches, {d: counts.get(d, 0) for d in cold}, cold, unjudged, warnings)
