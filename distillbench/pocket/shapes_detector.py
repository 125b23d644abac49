"""A programmatic object detector for pocket-shapes images: boxes, shape, colour and confidence.

It plays the role Mask2Former plays in GenEval, and is exact on clean renders:

1. each pixel takes the nearest colour (Euclidean RGB) among the background and the palette;
2. each palette colour's pixels split into 8-connected components (a scene's shapes are
   at least one pixel apart, so one component is one shape); components smaller than
   `min_area` pixels are specks, not objects;
3. a component's box is its pixel bounding box; its shape is the template (`shape_mask`
   of the box's side) it overlaps best, and its confidence is that overlap (IoU) times
   the share of its pixels within `color_tolerance` (40, half the closest two palette
   colours' distance) of the palette colour.

On a clean render every component matches its template and colour exactly (confidence
1.0). On a generated image, blur, noise or a wrong silhouette lower the confidence, which
GenEval's thresholds (0.3, and 0.9 for counting) then act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from distillbench.core.registry import POCKET_NETWORKS
from distillbench.pocket.shapes import BACKGROUND, COLORS, PALETTE, SHAPES, shape_mask

_REFERENCE = np.array([BACKGROUND] + [PALETTE[c] for c in COLORS], dtype=np.float64)
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


@dataclass(frozen=True)
class ShapeDetection:
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1), pixel edges, x1 and y1 exclusive
    shape: str
    color: str
    confidence: float
    mask: np.ndarray = field(repr=False, compare=False)  # (height, width) bool, the component's pixels


def nearest_colors(image: np.ndarray) -> np.ndarray:
    """Per pixel: 0 for the background, 1 + index into `COLORS` for a palette colour."""
    pixels = np.asarray(image, dtype=np.float64)[..., :3]
    distances = ((pixels[..., None, :] - _REFERENCE) ** 2).sum(-1)
    return distances.argmin(-1)


def components(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected components of a boolean mask, each as an array of (row, column) pixels."""
    unvisited = mask.copy()
    height, width = mask.shape
    found = []
    for start in zip(*np.nonzero(mask)):
        if not unvisited[start]:
            continue
        unvisited[start] = False
        stack, pixels = [start], []
        while stack:
            row, column = stack.pop()
            pixels.append((row, column))
            for dy, dx in _NEIGHBOURS:
                r, c = row + dy, column + dx
                if 0 <= r < height and 0 <= c < width and unvisited[r, c]:
                    unvisited[r, c] = False
                    stack.append((r, c))
        found.append(np.array(pixels))
    return found


def _best_template(window: np.ndarray) -> tuple[str, float]:
    side = window.shape[0]
    scores = {}
    for kind in SHAPES:
        template = shape_mask(kind, side)
        scores[kind] = (window & template).sum() / (window | template).sum()
    kind = max(SHAPES, key=lambda k: scores[k])  # ties go to the first in SHAPES
    return kind, float(scores[kind])


@POCKET_NETWORKS.register("shapes-detector", summary="the programmatic pocket-shapes detector (shape, box, mask, "
                          "colour of every shape in an image): GenEval's pocket detector")
def detect(image, *, min_area: int = 4, color_tolerance: float = 40.0) -> list[ShapeDetection]:
    """The shapes in an RGB image (array ``(H, W, 3)`` or PIL image), most confident first."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"expected an (height, width, 3) RGB image, got shape {image.shape}")
    labels = nearest_colors(image)
    pixels = image[..., :3].astype(np.float64)
    detections = []
    for index, color in enumerate(COLORS, start=1):
        for component in components(labels == index):
            if len(component) < min_area:
                continue
            rows, columns = component[:, 0], component[:, 1]
            y0, x0, y1, x1 = rows.min(), columns.min(), rows.max() + 1, columns.max() + 1
            side = max(x1 - x0, y1 - y0)
            window = np.zeros((side, side), dtype=bool)
            window[rows - y0, columns - x0] = True
            kind, overlap = _best_template(window)
            distance = np.sqrt(((pixels[rows, columns] - PALETTE[color]) ** 2).sum(-1))
            purity = float((distance <= color_tolerance).mean())
            mask = np.zeros(labels.shape, dtype=bool)
            mask[rows, columns] = True
            detections.append(ShapeDetection((float(x0), float(y0), float(x1), float(y1)), kind, color,
                                             overlap * purity, mask))
    return sorted(detections, key=lambda d: -d.confidence)
