"""Drawing helpers shared by the diagnostics: rows of images and panels of signals.

Only the object API (`matplotlib.figure.Figure`), never pyplot: figures made here
are not registered anywhere, so they are freed with their last reference.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

MAX_PANELS = 8  # signal panels per figure: more are slow to draw and hard to read


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def is_image(shape: tuple[int, ...]) -> bool:
    """(C, H, W) inputs are drawn as images; everything else as 1-D signals."""
    return len(shape) == 3


def image_rows(
    rows: torch.Tensor, row_labels: list[str], col_labels: list[str] | None = None
) -> Figure:
    """Draw (R, K, C, H, W) as R labelled rows of K images, one shared intensity scale."""
    r, k, c, h, w = rows.shape
    imgs = rows.detach().float().cpu()
    lo, hi = imgs.min(), imgs.max()
    imgs = ((imgs - lo) / (hi - lo).clamp_min(1e-12)).numpy()
    imgs = imgs.transpose(0, 1, 3, 4, 2) if c == 3 else imgs[:, :, 0, :, :, None]  # (R,K,H,W,ch)
    pad = np.ones((r, k, h, 1, imgs.shape[-1]), dtype=imgs.dtype)  # white gap between images
    strips = np.concatenate([imgs, pad], axis=3).transpose(0, 2, 1, 3, 4)  # (R,H,K,W+1,ch)
    strips = strips.reshape(r, h, k * (w + 1), imgs.shape[-1])
    fig = new_figure(min(1.0 + 0.6 * k, 14), 0.4 + 0.9 * r)
    axes = fig.subplots(r, 1, squeeze=False)[:, 0]
    for ax, strip, label in zip(axes, strips, row_labels, strict=True):
        ax.imshow(
            strip if c == 3 else strip[..., 0],
            cmap=None if c == 3 else "gray",
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_xticks([(w + 1) * (i + 0.5) - 1 for i in range(k)] if col_labels else [])
        if col_labels:
            ax.set_xticklabels(col_labels, fontsize=7)
        ax.set_yticks([])
    return fig


def signal_panels(
    panels: torch.Tensor,
    curve_labels: list[str] | None = None,
    titles: list[str] | None = None,
    colormap: bool = False,
) -> Figure:
    """Draw (P, M, *shape) as P panels, each overlaying M signals (every channel).

    `colormap` colours the M curves along viridis (for traversals), else by cycle.
    """
    p, m = panels.shape[:2]
    x = panels.detach().float().cpu()
    # (P, M, C, L): (C, L) signals keep their channels, anything else becomes one channel
    sig = (x if x.dim() == 4 else x.reshape(p, m, 1, -1)).numpy()
    cols = min(p, 4)
    rows = math.ceil(p / cols)
    fig = new_figure(3.0 * cols, 2.0 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    # One scale for every panel, with tick labels on the first panel only: ticks are most
    # of the drawing time (~30 ms an axes), and the other panels' would repeat them.
    lo, hi = float(sig.min()), float(sig.max())
    margin = 0.05 * (hi - lo) or 1.0
    cmap = colormaps["viridis"]
    for i, ax in enumerate(axes):
        if i >= p:
            ax.set_axis_off()
            continue
        ax.set_xlim(0, max(sig.shape[-1] - 1, 1))
        ax.set_ylim(lo - margin, hi + margin)
        if i > 0:
            ax.set_xticks([])
            ax.set_yticks([])
        for j in range(m):
            color = cmap(j / max(m - 1, 1)) if colormap else f"C{j}"
            style = "--" if (j > 0 and not colormap) else "-"
            for ch in range(sig.shape[2]):
                label = curve_labels[j] if (curve_labels and ch == 0 and i == 0) else None
                ax.plot(sig[i, j, ch], color=color, linestyle=style, linewidth=1, label=label)
        if titles:
            ax.set_title(titles[i], fontsize=8)
    if curve_labels:
        axes[0].legend(fontsize=7)
    return fig
