"""Layer-similarity maps: groups of similar layers, and the matrix as a PNG heatmap.

Groups come from agglomerative clustering with average linkage on the dissimilarity matrix
(optionally only between neighbouring groups, so groups are contiguous ranges of layers). The
cut: `n_groups` if given, else merge while the linkage is at most `threshold`, else
(automatic) cut at the largest gap between successive merge heights.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grouping:
    groups: list[list[int]]
    heights: list[float]  # linkage of each merge, in merge order
    description: str


def group_layers(
    dissimilarity: np.ndarray, *, contiguous: bool = False, n_groups: int = 0,
    threshold: float = 0.0,
) -> Grouping:  # fmt: skip
    """Average-linkage clustering of n layers from a symmetric [n, n] dissimilarity matrix."""
    d = np.asarray(dissimilarity, dtype=np.float64)
    n = d.shape[0]
    if d.shape != (n, n) or n < 1:
        raise ValueError(f"dissimilarity must be square, got {d.shape}")
    if n_groups < 0 or n_groups > n:
        raise ValueError(f"n_groups must be in 0..{n} (the number of layers)")
    clusters: list[list[int]] = [[i] for i in range(n)]
    history: list[list[list[int]]] = [[list(c) for c in clusters]]
    heights: list[float] = []
    while len(clusters) > 1:
        best: tuple[float, int, int] | None = None
        for i in range(len(clusters)):
            partners = [i + 1] if contiguous else range(i + 1, len(clusters))
            for j in partners:
                if j >= len(clusters):
                    continue
                link = float(d[np.ix_(clusters[i], clusters[j])].mean())
                if best is None or link < best[0]:
                    best = (link, i, j)
        assert best is not None
        link, i, j = best
        clusters[i] = sorted(clusters[i] + clusters[j])
        del clusters[j]
        if not contiguous:
            clusters.sort(key=lambda c: c[0])
        heights.append(link)
        history.append([list(c) for c in clusters])
    method = "contiguous average linkage" if contiguous else "average linkage"
    if n_groups:
        chosen = n - n_groups
        how = f"{n_groups} groups requested"
    elif threshold > 0:
        chosen = sum(1 for h in heights if h <= threshold)
        # with contiguous merges heights need not increase; stop at the first one above
        for k, h in enumerate(heights):
            if h > threshold:
                chosen = k
                break
        how = f"merged while the linkage was <= {threshold:g}"
    elif n <= 2:
        chosen = 0 if n == 2 and heights and heights[0] > 0 else n - 1
        how = "automatic (two layers: kept apart unless identical)"
    else:
        gaps = np.diff(np.asarray([0.0, *heights]))
        # cut before the merge that jumps the most; at least 2 groups when n >= 3
        k = int(np.argmax(gaps[1:])) + 1 if len(gaps) > 1 else 0
        chosen = k
        how = (
            f"automatic: cut before the merge with the largest jump in linkage "
            f"({heights[k - 1] if k else 0:.4g} -> {heights[k]:.4g})"
        )
    groups = sorted(history[chosen], key=lambda c: c[0])
    shown = ", ".join(f"{h:.4g}" for h in heights)
    return Grouping(groups, heights, f"{method} on the dissimilarity matrix; {how}; "
                    f"merge heights [{shown}]")  # fmt: skip


def mean_within(dissimilarity: np.ndarray, group: list[int]) -> float:
    if len(group) < 2:
        return 0.0
    sub = dissimilarity[np.ix_(group, group)]
    return float(sub[~np.eye(len(group), dtype=bool)].mean())


# A perceptual ramp (dark blue -> teal -> yellow), interpolated linearly.
_RAMP = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64
)


def heatmap_png(matrix: np.ndarray, *, cell: int = 16, low_is_dark: bool = True) -> bytes:
    """An RGB PNG of a square matrix, `cell` pixels per entry, min -> dark, max -> bright
    (reversed when low_is_dark is False). Written with zlib and struct only."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError("heatmap needs a non-empty 2-D matrix")
    if not 1 <= cell <= 64:
        raise ValueError("cell must be in 1..64 pixels")
    lo, hi = float(np.nanmin(m)), float(np.nanmax(m))
    t = np.zeros_like(m) if hi <= lo else (m - lo) / (hi - lo)
    if not low_is_dark:
        t = 1.0 - t
    t = np.nan_to_num(t, nan=0.0) * (len(_RAMP) - 1)
    k = np.clip(np.floor(t).astype(int), 0, len(_RAMP) - 2)
    frac = (t - k)[..., None]
    rgb = (_RAMP[k] * (1 - frac) + _RAMP[k + 1] * frac).round().astype(np.uint8)
    pixels = np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)
    height, width = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))  # fmt: skip
