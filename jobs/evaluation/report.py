"""The run folder: results tables in the paper's layout, figures, Markdown + HTML.

A report is a list of blocks (heading, paragraph, table, image) rendered
twice, to ``report.md`` and ``report.html``, so both always say the same.
Figures are PNGs next to them (matplotlib, Agg backend: no display needed).
"""

from __future__ import annotations

import html
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs.evaluation import metrics
from jobs.evaluation.arms import LABELS, ArmData


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "p" | "table" | "img"
    text: str = ""
    header: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()


def fmt(mean: float | None, std: float | None, digits: int = 4) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def render_markdown(blocks: Sequence[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            out.append(("# " if b.kind == "h1" else "## ") + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "table":
            out.append("| " + " | ".join(b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out.extend("| " + " | ".join(r) + " |" for r in b.rows)
        elif b.kind == "img":
            out.append(f"![{b.text}]({b.header[0]})")
        out.append("")
    return "\n".join(out)


def render_html(blocks: Sequence[Block], title: str) -> str:
    e = html.escape
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>body{{font-family:sans-serif;max-width:1100px;"
        "margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}img{max-width:100%}</style></head><body>",
    ]
    for b in blocks:
        if b.kind in ("h1", "h2"):
            out.append(f"<{b.kind}>{e(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{e(b.text)}</p>")
        elif b.kind == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in b.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b.rows
            )
            out.append(f"<table><tr>{head}</tr>{body}</table>")
        elif b.kind == "img":
            out.append(
                f"<figure><img src='{e(b.header[0])}'><figcaption>{e(b.text)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out)


# -- figures ----------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(matrix: np.ndarray, fields: Sequence[str], path: Path, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1 + 0.45 * len(fields), 0.8 + 0.4 * len(fields)))
    im = ax.imshow(matrix, cmap="viridis")
    ax.set_xticks(range(len(fields)), fields, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(fields)), fields, fontsize=8)
    ax.set_title(textwrap.fill(title, 60), fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _onehot(
    frames: list[pd.DataFrame], categorical: list[str], numeric: list[str]
) -> list[np.ndarray]:
    both = pd.concat(frames, ignore_index=True)
    parts = [pd.get_dummies(both[categorical].astype(str), dtype=float)] if categorical else []
    for c in numeric:
        x = pd.to_numeric(both[c], errors="coerce").fillna(0.0)
        parts.append(((x - x.mean()) / (x.std() or 1.0)).to_frame())
    mat = pd.concat(parts, axis=1).to_numpy()
    cuts = np.cumsum([len(f) for f in frames])[:-1]
    return np.split(mat, cuts)


def tsne_grid(
    real: pd.DataFrame,
    arms: Sequence[tuple[str, pd.DataFrame, list[str], list[str]]],
    path: Path,
    *,
    points: int,
    seed: int,
) -> None:
    """One t-SNE panel per arm: real vs synthetic rows on the fields the arm writes."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    plt = _plt()
    n = max(1, len(arms))
    cols = min(4, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, syn, cat, num) in zip(axes.flat, arms, strict=False):
        r = metrics.bounded(real, points, seed)
        s = metrics.bounded(syn, points, seed + 1)
        xr, xs = _onehot([r, s], cat, num)
        perplexity = min(30.0, (len(r) + len(s) - 1) / 3)
        # One OpenMP thread: on a busy machine spinning threads cost more than they give.
        with threadpool_limits(limits=1):
            tsne = TSNE(2, perplexity=perplexity, init="pca", max_iter=500, random_state=seed)
            emb = tsne.fit_transform(np.vstack([xr, xs]))
        ax.scatter(emb[: len(r), 0], emb[: len(r), 1], s=3, alpha=0.5, label="real")
        ax.scatter(emb[len(r) :, 0], emb[len(r) :, 1], s=3, alpha=0.5, label="synthetic")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7, markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def weight_histogram(arms: Sequence[ArmData], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for arm in arms:
        w = arm.weights[arm.weights > 0]
        ax.hist(np.log10(w), bins=50, alpha=0.5, label=arm.label)
    ax.set_xlabel("log10 importance weight (mean 1)")
    ax.set_ylabel("synthetic rows")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _binned(real: pd.Series, syn: pd.Series, bins: int = 10) -> tuple[pd.Series, pd.Series]:
    """Numbers -> the index of their real-data quantile bin (same cut points both sides)."""
    r = pd.to_numeric(real, errors="coerce")
    cuts = np.unique(np.nanquantile(r, np.linspace(0, 1, bins + 1)[1:-1]))
    s = pd.to_numeric(syn, errors="coerce")
    return pd.Series(np.searchsorted(cuts, r)), pd.Series(np.searchsorted(cuts, s))


def alignment_table(
    real: pd.DataFrame, arm: ArmData, fields: Sequence[str], numeric: Sequence[str] = ()
) -> list[tuple]:
    """(field, TVD unweighted, TVD weighted) of the arm's synthetic marginals vs real.

    Numeric fields are compared on real-data quantile bins, as stage 2 sees them.
    """
    rows = []
    for f in fields:
        if f not in arm.syn.columns:
            continue
        r, s = _binned(real[f], arm.syn[f]) if f in numeric else (real[f], arm.syn[f])
        rows.append((f, metrics.tvd(r, s), metrics.tvd(r, s, arm.weights)))
    return rows


def alignment_figure(rows: list[tuple], path: Path, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(rows), 3.2))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r[1] for r in rows], 0.4, label="before (weight 1)")
    ax.bar(x + 0.2, [r[2] for r in rows], 0.4, label="after (stage-2 weights)")
    ax.set_xticks(x, [r[0] for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("TVD to real marginal")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(
    out_dir: Path, blocks: Sequence[Block], summary: dict[str, Any], title: str
) -> dict[str, str]:
    """report.md, report.html and summary.json in ``out_dir``; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, page, js = out_dir / "report.md", out_dir / "report.html", out_dir / "summary.json"
    md.write_text(render_markdown(blocks), encoding="utf-8")
    page.write_text(render_html(blocks, title), encoding="utf-8")
    js.write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return {"markdown": str(md), "html": str(page), "summary": str(js)}


def results_rows(
    arms: Sequence[str], table: dict[str, dict[str, Any]], auc_key: str, loss_key: str
) -> list[list[str]]:
    """Paper layout: arm | AUC mean ± std | p | Logloss mean ± std | p.

    A mean over fewer finite repeats than were run says so: "(n=3 of 5)".
    """

    def cell(t: dict[str, Any], key: str) -> str:
        n, runs = t.get(f"n_{key}"), t.get("repeats")
        text = fmt(*t[key])
        return text if n is None or runs is None or n == runs else f"{text} (n={n} of {runs})"

    rows = []
    for a in arms:
        t = table.get(a)
        if t is None:
            continue
        rows.append(
            [
                LABELS[a],
                cell(t, auc_key),
                fmt_p(t.get(f"p_{auc_key}")),
                cell(t, loss_key),
                fmt_p(t.get(f"p_{loss_key}")),
            ]
        )
    return rows
