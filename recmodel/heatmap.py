"""A heatmap PNG of the interaction map, for people to look at.

Rendered with matplotlib's non-interactive Agg backend into bytes, so it
works on a headless worker and can be written to any file system.
"""

from __future__ import annotations

import io

import numpy as np


def heatmap_png(
    matrix: np.ndarray, fields: list[str], groups: list[list[str]], title: str
) -> bytes:
    """PNG bytes: the K x K map with field names, strongest cells annotated."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    m = np.asarray(matrix, dtype=float)
    k = len(fields)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k), dpi=110)
    im = ax.imshow(m, cmap="viridis")
    ax.set_xticks(range(k), fields, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), fields, fontsize=8)
    top = m.max() if m.size else 0.0
    for i in range(k):
        for j in range(k):
            if top > 0 and m[i, j] >= 0.3 * top:
                ax.text(
                    j, i, f"{m[i, j] / top:.2f}", ha="center", va="center", fontsize=6, color="w"
                )
    merged = [g for g in groups if len(g) > 1]
    ax.set_title(f"{title}\ngroups: {merged}", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
