"""A contact sheet of stick figures (``gaitsearch synth --preview FILE.png``).

One row per walker: several frames spread over the sequence, each scaled to the same cell,
y down as in the image, with the key attributes written under the row's first cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model.skeleton import BONES
from PIL import Image, ImageDraw

CELL = 150
FRAMES_PER_ROW = 6
LABEL_H = 30
_RIGHT_BONES = {(1, 2), (2, 3), (3, 4), (1, 8), (8, 9), (9, 10), (0, 14), (14, 16)}
_KEYS = ("gender", "age", "pace", "carrying", "footwear", "impairment", "energy", "view")


def _label(attrs: Mapping[str, Any]) -> str:
    vals = [str(attrs[k]) for k in _KEYS if k in attrs]
    return " ".join(v for v in vals if v not in ("none", "nothing", "neutral", "flat"))


def draw_contact_sheet(
    items: Sequence[tuple[str, np.ndarray, Mapping[str, Any]]],
    path: Path,
    frames_per_row: int = FRAMES_PER_ROW,
) -> Path:
    """Draw ``(id, sequence, attributes)`` items to ``path`` (PNG); returns the path."""
    rows = max(len(items), 1)
    img = Image.new("RGB", (CELL * frames_per_row, rows * (CELL + LABEL_H)), "white")
    draw = ImageDraw.Draw(img)
    for r, (seq_id, seq, attrs) in enumerate(items):
        top = r * (CELL + LABEL_H)
        conf = seq[..., 2] > 0
        pts = seq[..., :2][conf]
        if pts.size == 0:
            continue
        # One scale per row (fitted to the largest frame) so that approaching and receding
        # walkers keep their change of size and nothing is cut off.
        heights = []
        for f in range(len(seq)):
            ys = seq[f, conf[f], 1]
            if ys.size >= 2:
                heights.append(ys.max() - ys.min())
        scale = (CELL * 0.88) / max(float(np.percentile(heights, 95)) if heights else 1.0, 1.0)
        picks = np.linspace(0, len(seq) - 1, frames_per_row).astype(int)
        for c, f in enumerate(picks):
            ok = conf[f]
            if not ok.any():
                continue
            xy = seq[f, :, :2]
            centre = xy[ok].mean(0)
            ys = xy[ok, 1]
            mid_y = (ys.max() + ys.min()) / 2
            ox = c * CELL + CELL / 2 - centre[0] * scale
            oy = top + CELL / 2 - mid_y * scale
            draw.rectangle([c * CELL, top, (c + 1) * CELL - 1, top + CELL - 1], outline="#ddd")
            for a, b in BONES:
                if ok[a] and ok[b]:
                    colour = "#d33" if (a, b) in _RIGHT_BONES else "#36c"
                    draw.line(
                        [
                            (xy[a, 0] * scale + ox, xy[a, 1] * scale + oy),
                            (xy[b, 0] * scale + ox, xy[b, 1] * scale + oy),
                        ],
                        fill=colour,
                        width=2,
                    )
            for j in np.nonzero(ok)[0]:
                x, y = xy[j, 0] * scale + ox, xy[j, 1] * scale + oy
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill="black")
        draw.text((4, top + CELL + 2), f"{seq_id}: {_label(attrs)}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
