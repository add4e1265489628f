"""Grad-CAM maps as pictures: a map coloured over the image the net saw, and a strip of those.

:mod:`explorer.paper.gradcam` computes the maps (data, in [0, 1]); this module decides how they
look, for the CLI's ``cam`` PNG. The Inspect page draws the same palette as a plotly heatmap
(:func:`explorer.present.figures.cam_overlays_figure`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw
from plotly.colors import sample_colorscale
from torch import Tensor

CAM_COLOURSCALE = "Jet"  # the usual Grad-CAM palette: red = most important


def overlay(image: Tensor, cam: Tensor, opacity: float = 0.5) -> Tensor:
    """uint8 (3, H, W): ``cam`` (H, W, in [0, 1]) coloured with the Grad-CAM palette over ``image``."""
    palette = torch.tensor([[int(v) for v in colour[4:-1].split(",")]
                            for colour in sample_colorscale(CAM_COLOURSCALE, [i / 255 for i in range(256)])],
                           dtype=torch.float32)  # 256 × RGB
    colours = palette[(cam.clamp(0, 1) * 255).round().long()].permute(2, 0, 1)
    return ((1 - opacity) * image.float() + opacity * colours).round().clamp(0, 255).to(torch.uint8)


def overlay_strip(panels: Sequence[tuple[str, Tensor]], min_height: int = 224) -> Image.Image:
    """Panels (title, uint8 (3, H, W)) side by side under their titles, as one RGB image.

    A 32×32 CIFAR input is scaled up by whole pixels (nearest) so that it stays readable
    and every pixel the network saw is still visible as a square.
    """
    height, width = panels[0][1].shape[-2:]
    scale = max(1, -(-min_height // height))
    title_height, gap = 18, 6
    strip = Image.new("RGB", (len(panels) * (width * scale + gap) - gap, height * scale + title_height), "white")
    draw = ImageDraw.Draw(strip)
    for index, (title, pixels) in enumerate(panels):
        left = index * (width * scale + gap)
        panel = Image.fromarray(pixels.permute(1, 2, 0).contiguous().numpy())
        strip.paste(panel.resize((width * scale, height * scale), Image.Resampling.NEAREST), (left, title_height))
        draw.text((left + 2, 3), title, fill="black")
    return strip
