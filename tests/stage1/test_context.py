"""Context of synthetic rows: drawn from the real rows of their cluster and label."""

from __future__ import annotations

import pytest

from jobs.platform import schema as S
from jobs.platform.errors import EmptyInputError
from jobs.stage1.context import FALLBACK, fill_context

CTX_COLS = list(S.CONTEXT_FIELDS)


def _real(spark, clicked_slot: dict[int, str]):
    """Users u1 (cluster 1), u2 (cluster 2): each label has one slot per cluster."""
    rows = []
    for i in range(200):
        cluster = 1 + i % 2
        clicked = int(i % 4 < 2)
        slot = clicked_slot[cluster] if clicked else "category_list"
        rows.append((f"u{cluster}", i, clicked, 10 + cluster, 3, "wifi", slot))
    real = spark.createDataFrame(
        rows, [S.USER_ID, S.EVENT_ID, S.CLICKED, S.HOUR, S.WEEKDAY, S.NETWORK, S.SLOT]
    )
    clusters = spark.createDataFrame([("u1", 1), ("u2", 2)], [S.USER_ID, S.CLUSTER_ID])
    return real, clusters


def _syn(spark, n: int = 60):
    rows = [(f"s{i}", [1 + i % 3], int(i % 2 == 0)) for i in range(n)]
    return spark.createDataFrame(rows, f"{S.SYNTH_ID} string, exemplar_cluster_ids array<int>, "
                                       f"{S.CLICKED} int")  # fmt: skip


def test_fill_context__cluster_and_label_cells_with_counted_fallback(spark):
    real, clusters = _real(spark, {1: "banner", 2: "search"})
    out = fill_context(_syn(spark), real, clusters, seed=3).collect()
    assert len(out) == 60
    for r in out:
        assert all(r[c] is not None for c in CTX_COLS)
        cluster = r["exemplar_cluster_ids"][0]
        if not r[S.CLICKED]:
            assert r[S.SLOT] == "category_list"
        elif cluster in (1, 2):
            assert (r[S.SLOT], r[S.HOUR], r[FALLBACK]) == (
                {1: "banner", 2: "search"}[cluster],
                10 + cluster,
                False,
            )
        else:  # cluster 3 has no real rows: the whole day's clicked rows
            assert r[FALLBACK] and r[S.SLOT] in ("banner", "search")
    assert sum(r[FALLBACK] for r in out) == 20


def test_fill_context__same_draw_on_any_partitioning(spark):
    real, clusters = _real(spark, {1: "banner", 2: "search"})
    a = fill_context(_syn(spark), real, clusters, seed=3).select(S.SYNTH_ID, *CTX_COLS)
    b = fill_context(_syn(spark).repartition(5), real.repartition(3), clusters, seed=3)
    b = b.select(S.SYNTH_ID, *CTX_COLS)
    assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0


def test_fill_context__day_without_clicks_is_named(spark):
    real, clusters = _real(spark, {1: "banner", 2: "search"})
    with pytest.raises(EmptyInputError, match=r"table stage.sampled_logs: .*clicked in \[1\]"):
        fill_context(_syn(spark), real.where(f"{S.CLICKED} = 0"), clusters, seed=3)
