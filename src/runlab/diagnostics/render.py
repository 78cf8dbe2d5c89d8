"""The built-in diagnostics' figures, drawn from numpy arrays in the drawing process.

A diagnostic computes in the run's process and returns a `Drawing` naming one of
these functions (`"runlab.diagnostics.render:latent_space"`) with its arrays; the
background worker (`runlab.background`) imports this module and draws there. So this
module must not import torch, and the run's process never imports matplotlib unless
a writer (TensorBoard, wandb) wants the figure itself.

Only the object API (`matplotlib.figure.Figure`), never pyplot: figures made here
are not registered anywhere, so they are freed with their last reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter


def new_figure(width: float, height: float) -> Figure:
    """A figure laid out by matplotlib (for long tick labels and legends beside axes)."""
    return Figure(figsize=(width, height), layout="constrained")


def fixed_figure(width: float, height: float, *, left: float = 0.55, right: float = 0.15,
                 bottom: float = 0.45, top: float = 0.45, wspace: float = 0.15,
                 hspace: float = 0.45) -> Figure:
    """A figure with fixed margins in inches: half the drawing time of a laid-out one
    (constrained layout measures every text artist, twice), for figures whose labels
    are short and known."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=wspace, hspace=hspace)
    return fig


def image_rows(rows: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str] | None = None,
               title: str | None = None) -> Figure:
    """Draw (R, K, C, H, W) as R labelled rows of K images, one shared intensity scale."""
    r, k, c, h, w = rows.shape
    imgs = rows.astype(np.float32)
    lo, hi = imgs.min(), imgs.max()
    imgs = (imgs - lo) / max(hi - lo, 1e-12)
    imgs = imgs.transpose(0, 1, 3, 4, 2) if c == 3 else imgs[:, :, 0, :, :, None]  # (R,K,H,W,ch)
    pad = np.ones((r, k, h, 1, imgs.shape[-1]), dtype=imgs.dtype)  # white gap between images
    strips = np.concatenate([imgs, pad], axis=3).transpose(0, 2, 1, 3, 4)  # (R,H,K,W+1,ch)
    strips = strips.reshape(r, h, k * (w + 1), imgs.shape[-1])
    width, height = min(1.0 + 0.6 * k, 14), 0.4 + 0.9 * r
    fig = fixed_figure(width, height, left=0.75, right=0.1, bottom=0.3 if col_labels else 0.1,
                       top=0.35 if title else 0.1, hspace=0.15)
    axes = fig.subplots(r, 1, squeeze=False)[:, 0]
    for ax, strip, label in zip(axes, strips, row_labels, strict=True):
        ax.imshow(strip if c == 3 else strip[..., 0], cmap=None if c == 3 else "gray",
                  vmin=0, vmax=1, interpolation="nearest")
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_xticks([(w + 1) * (i + 0.5) - 1 for i in range(k)] if col_labels else [])
        if col_labels:
            ax.set_xticklabels(col_labels, fontsize=7)
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def signal_panels(panels: np.ndarray, curve_labels: Sequence[str] | None = None,
                  titles: Sequence[str] | None = None, colormap: bool = False,
                  title: str | None = None) -> Figure:
    """Draw (P, M, *shape) as P panels, each overlaying M signals (every channel).

    `colormap` colours the M curves along viridis (for traversals), else by cycle.
    """
    p, m = panels.shape[:2]
    x = panels.astype(np.float32)
    # (P, M, C, L): (C, L) signals keep their channels, anything else becomes one channel
    sig = x if x.ndim == 4 else x.reshape(p, m, 1, -1)
    cols = min(p, 4)
    rows = math.ceil(p / cols)
    fig = fixed_figure(3.0 * cols, 2.0 * rows, left=0.5, right=0.1, bottom=0.35,
                       top=0.6 if title else 0.3, wspace=0.06, hspace=0.3)
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
            ax.set_title(titles[i], fontsize=8, y=1.0)  # a fixed y: no measuring of ticks
    if curve_labels:
        axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def latent_space(embedding: np.ndarray, labels: np.ndarray | None, class_names: Sequence[str],
                 title: str) -> Figure:
    """Scatter of a (B, 2) embedding: one colour per class, or a colour scale for a
    continuous target."""
    fig = fixed_figure(6, 4.2, right=1.2, top=0.35)  # the legend goes in the right margin
    ax = fig.add_subplot()
    x, y = embedding[:, 0], embedding[:, 1]
    if labels is None:
        ax.scatter(x, y, s=8)
    elif labels.dtype.kind in "iub":  # classes: one colour each, with a legend
        classes = np.unique(labels)
        for c in classes:
            name = class_names[c] if c < len(class_names) else str(c)
            ax.scatter(x[labels == c], y[labels == c], s=8, label=name, color=f"C{c % 10}")
        if len(classes) <= 20:  # beside the axes: loc="best" would test every point
            ax.legend(fontsize=7, markerscale=1.5, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        points = ax.scatter(x, y, s=8, c=labels, cmap="viridis")
        fig.colorbar(points, ax=ax)
    ax.set_title(title, fontsize=9, y=1.0)
    return fig


def jacobian_spectra(spectra: dict[str, np.ndarray], step: int) -> Figure:
    """One panel per map: each input's singular values (faint) and their mean, log scale."""
    fig = fixed_figure(4.2 * len(spectra), 3.4, left=0.85, bottom=0.5, top=0.35, wspace=0.35)
    axes = fig.subplots(1, len(spectra), squeeze=False)[0]
    for ax, (name, sv) in zip(axes, spectra.items(), strict=True):
        index = np.arange(1, sv.shape[1] + 1)
        for row in sv:
            ax.plot(index, row, color="C0", alpha=0.3, linewidth=0.8)
        ax.plot(index, sv.mean(axis=0), color="C1", linewidth=2, label="mean")
        ax.set_yscale("log")
        # ticks at 1, 2, 5 x 10^k labelled as plain numbers: legible within one decade,
        # and no mathtext (the slowest text matplotlib draws)
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("index")
        ax.set_ylabel("singular value")
        ax.set_title(f"{name} Jacobian, step {step}", fontsize=9, y=1.0)
        ax.legend(fontsize=7, loc="upper right")
    return fig


def confusion(counts: np.ndarray, shown: np.ndarray, class_names: Sequence[str], step: int) -> Figure:
    """Heat map of `shown` (raw or row-normalised) with the raw counts written in."""
    k = len(counts)
    names = list(class_names) or [str(i) for i in range(k)]
    fig = new_figure(1.5 + 0.45 * k, 1.2 + 0.4 * k)
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8)
    if k <= 20:  # numbers stay legible
        for i, j in np.ndindex(k, k):
            ax.text(j, i, counts[i, j], ha="center", va="center", fontsize=7,
                    color="white" if shown[i, j] > shown.max() / 2 else "black")
    ax.set_xticks(range(k), names, rotation=90, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion, step {step}", fontsize=9)
    return fig


def activation_stats(names: Sequence[str], table: np.ndarray,
                     histograms: dict[str, tuple[np.ndarray, np.ndarray]], step: int) -> Figure:
    """Mean +- std and dead fraction per layer (`table`: layers x (mean, std, dead, units))
    and the value histograms of the first layers."""
    fig = new_figure(11, 3.6)
    stat_ax, dead_ax, hist_ax = fig.subplots(1, 3)
    pos = np.arange(len(table))
    stat_ax.errorbar(pos, table[:, 0], yerr=table[:, 1], fmt="o", capsize=3)
    stat_ax.set_xticks(pos, names, rotation=90, fontsize=6)
    stat_ax.set_title(f"mean ± std, step {step}", fontsize=9)
    dead_ax.bar(pos, table[:, 2], color="C3")
    dead_ax.set_ylim(0, 1)
    dead_ax.set_xticks(pos, names, rotation=90, fontsize=6)
    dead_ax.set_title("fraction of dead units", fontsize=9)
    for i, (name, (counts, edges)) in enumerate(histograms.items()):
        hist_ax.stairs(counts, edges, color=f"C{i}", label=name)
    hist_ax.set_yscale("log")
    hist_ax.legend(fontsize=6)
    hist_ax.set_title("activation values", fontsize=9)
    return fig


def weights_and_grads(w_norms: dict[str, float], g_norms: dict[str, float],
                      arrays: dict[str, np.ndarray], step: int) -> Figure:
    """L2 norms per parameter (bars) and histograms of all weights and gradients."""
    fig = new_figure(12, 3.6)
    bars, w_ax, g_ax = fig.subplots(1, 3)
    pos = np.arange(len(w_norms))
    bars.barh(pos - 0.2, list(w_norms.values()), height=0.4, label="weight")
    if g_norms:
        bars.barh(pos + 0.2, [g_norms.get(k, 0.0) for k in w_norms], height=0.4, label="grad")
    bars.set_yticks(pos, list(w_norms), fontsize=6)
    bars.invert_yaxis()
    bars.set_xscale("log")
    bars.set_title(f"L2 norms, step {step}", fontsize=9)
    bars.legend(fontsize=7)
    for ax, kind, color in ((w_ax, "weight", "C0"), (g_ax, "grad", "C1")):
        if f"{kind}_hist" in arrays:  # stairs: one artist, not one patch per bin
            ax.stairs(arrays[f"{kind}_hist"], arrays[f"{kind}_edges"], fill=True, color=color)
            ax.set_yscale("log")
        ax.set_title(f"{kind} values" if f"{kind}_hist" in arrays else "no gradients", fontsize=9)
    return fig
