"""Feature groups from an interaction map (paper eq. 12).

Pairs whose strength exceeds ``gamma * max(Gamma)`` are merged with
union-find, so overlapping pairs ({a, b}, {b, c}) become one group; every
field that is in no strong pair stays its own group. Groups are returned in
field order (by their first member), members in field order too, so the
same map always gives the same JSON.
"""

from __future__ import annotations

import numpy as np

from jobs.platform.errors import InputError


class UnionFind:
    """Disjoint sets over ``0..n-1`` with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def sets(self) -> list[list[int]]:
        by_root: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            by_root.setdefault(self.find(i), []).append(i)
        return sorted(by_root.values(), key=lambda members: members[0])


def strong_pairs(matrix: np.ndarray, gamma: float) -> list[tuple[int, int]]:
    """Index pairs ``i < j`` with ``|Gamma_ij| > gamma * max |Gamma|`` (diagonal ignored)."""
    m = np.abs(np.asarray(matrix, dtype=np.float64))
    m = np.maximum(m, m.T)
    np.fill_diagonal(m, 0.0)
    top = m.max() if m.size else 0.0
    if top <= 0:
        return []
    rows, cols = np.nonzero(np.triu(m > gamma * top, k=1))
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True))


def feature_groups(matrix: np.ndarray, fields: list[str], gamma: float) -> list[list[str]]:
    """All groups (singletons included) of ``fields`` under threshold ``gamma * max``."""
    m = np.asarray(matrix)
    k = len(fields)
    if m.shape != (k, k):
        raise InputError(
            f"interaction matrix is {m.shape}, expected ({k}, {k}) for fields {fields}"
        )
    if not 0 < gamma <= 1:
        raise InputError(f"gamma {gamma}: expected 0 < gamma <= 1")
    if not np.all(np.isfinite(m)):
        raise InputError("interaction matrix has non-finite entries")
    uf = UnionFind(k)
    for i, j in strong_pairs(m, gamma):
        uf.union(i, j)
    return [[fields[i] for i in members] for members in uf.sets()]


def top_pairs(matrix: np.ndarray, fields: list[str], n: int) -> list[tuple[str, str, float]]:
    """The ``n`` strongest off-diagonal pairs as ``(field_a, field_b, strength)``."""
    m = np.abs(np.asarray(matrix, dtype=np.float64))
    m = np.maximum(m, m.T)
    rows, cols = np.triu_indices(len(fields), k=1)
    order = np.argsort(-m[rows, cols], kind="stable")[:n]
    return [(fields[rows[o]], fields[cols[o]], float(m[rows[o], cols[o]])) for o in order]
