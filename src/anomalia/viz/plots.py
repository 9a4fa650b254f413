"""ROC curves drawn with OpenCV, so evaluation needs no plotting library."""

from __future__ import annotations

import cv2
import numpy as np

_COLOURS = [(200, 80, 0), (0, 140, 255), (60, 160, 60), (160, 0, 160)]


def roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], size: int = 480) -> np.ndarray:
    """BGR image of ROC curves; ``curves`` maps a label to ``(fpr, tpr, auroc)``."""
    margin = 50
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    side = size - 2 * margin

    def point(x: float, y: float) -> tuple[int, int]:
        return int(margin + x * side), int(size - margin - y * side)

    cv2.rectangle(canvas, point(0, 0), point(1, 1), (0, 0, 0), 1)
    cv2.line(canvas, point(0, 0), point(1, 1), (180, 180, 180), 1, cv2.LINE_AA)
    for step in range(0, 11, 2):
        cv2.putText(canvas, f"{step / 10:.1f}", (point(step / 10, 0)[0] - 10, size - margin + 18),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(canvas, f"{step / 10:.1f}", (8, point(0, step / 10)[1] + 4),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, "false positive rate", (size // 2 - 70, size - 10), cv2.FONT_HERSHEY_SIMPLEX,
                0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (label, (fpr, tpr, area)) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        if len(fpr) > 2000:
            keep = np.linspace(0, len(fpr) - 1, 2000).astype(int)
            fpr, tpr = fpr[keep], tpr[keep]
        points = np.array([point(float(x), float(y)) for x, y in zip(fpr, tpr)], dtype=np.int32)
        cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
        cv2.putText(canvas, f"{label} AUROC {area:.3f}", (margin + 10, margin + 20 + 20 * i),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return canvas
