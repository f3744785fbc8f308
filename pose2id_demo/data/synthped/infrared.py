"""The infrared task's near-infrared look (SYSU-MM01-like IR cameras): grey levels mostly from
luminance, perturbed by a dye reflectance unrelated to hue; the illuminator's vignette and extra noise
are applied in :func:`pose2id_demo.data.synthped.render.render_image`."""

from __future__ import annotations

import numpy as np

IR_LUMA = 0.9          # share of visible luminance in the near-infrared grey (the rest: dye reflectance)
IR_VIGNETTE = 0.4      # strength of the illuminator's fall-off towards the corners
IR_NOISE = 2.0         # extra sensor noise (0..255 scale)
IR_BACKGROUND = 0.75   # background brightness relative to the lit person


def _ir_map(col: np.ndarray) -> np.ndarray:
    """Near-infrared grey of a colour: partly its visible luminance, partly a dye reflectance that is a
    smooth function of the colour unrelated to its hue order (so colour order is not preserved)."""
    col = np.asarray(col, np.float32)
    r, g, b = col[..., 0], col[..., 1], col[..., 2]
    v = 0.5 + 0.5 * np.sin(5.1 * r - 3.7 * g + 4.3 * b + 1.1) * np.cos(2.3 * r + 3.1 * g - 1.7 * b)
    refl = 0.12 + 0.78 * v * (0.55 + 0.45 * np.maximum(np.maximum(r, g), b))
    lum = 0.1 + 0.85 * (0.3 * r + 0.59 * g + 0.11 * b)
    grey = (1.0 - IR_LUMA) * refl + IR_LUMA * lum
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
