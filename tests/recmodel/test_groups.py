"""Feature groups (eq. 12): threshold at gamma * max, union-find merge."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.platform.errors import InputError
from recmodel.groups import UnionFind, feature_groups, strong_pairs, top_pairs


def _matrix(k: int, pairs: dict[tuple[int, int], float]) -> np.ndarray:
    m = np.zeros((k, k))
    for (i, j), v in pairs.items():
        m[i, j] = m[j, i] = v
    return m


def test_union_find__overlapping_pairs_merge():
    uf = UnionFind(4)
    uf.union(1, 2)
    uf.union(2, 3)
    assert uf.sets() == [[0], [1, 2, 3]]


def test_feature_groups__overlapping_pairs_merge_into_one_group():
    # Setup: {1,2} and {2,3} strong, {0,4} weak.
    fields = ["a", "b", "c", "d", "e"]
    m = _matrix(5, {(1, 2): 1.0, (2, 3): 0.8, (0, 4): 0.1})
    # Run
    groups = feature_groups(m, fields, gamma=0.5)
    # Assert: every field exactly once, singletons included.
    assert groups == [["a"], ["b", "c", "d"], ["e"]]


def test_feature_groups__threshold_is_relative_to_max():
    fields = ["a", "b", "c", "d"]
    m = _matrix(4, {(0, 1): 10.0, (2, 3): 4.0})
    assert feature_groups(m, fields, gamma=0.5) == [["a", "b"], ["c"], ["d"]]
    assert feature_groups(m, fields, gamma=0.3) == [["a", "b"], ["c", "d"]]
    assert feature_groups(m * 1e-6, fields, gamma=0.3) == [["a", "b"], ["c", "d"]]


def test_feature_groups__diagonal_and_zero_map_give_singletons():
    fields = ["a", "b", "c"]
    m = np.diag([5.0, 5.0, 5.0])
    assert feature_groups(m, fields, gamma=0.1) == [["a"], ["b"], ["c"]]
    assert strong_pairs(np.zeros((3, 3)), 0.5) == []


def test_feature_groups__bad_input_raises():
    with pytest.raises(InputError, match="expected \\(3, 3\\)"):
        feature_groups(np.zeros((2, 2)), ["a", "b", "c"], 0.5)
    with pytest.raises(InputError, match="gamma"):
        feature_groups(np.zeros((2, 2)), ["a", "b"], 0.0)
    with pytest.raises(InputError, match="non-finite"):
        feature_groups(np.full((2, 2), np.nan), ["a", "b"], 0.5)


def test_top_pairs__strongest_first():
    m = _matrix(4, {(0, 3): 2.0, (1, 2): 5.0, (0, 1): 1.0})
    assert [(a, b) for a, b, _ in top_pairs(m, ["a", "b", "c", "d"], 2)] == [("b", "c"), ("a", "d")]
