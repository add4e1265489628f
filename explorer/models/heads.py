"""Classifier heads for transfer learning, put in place of a ResNet's ``fc``.

Replacing ``fc`` (instead of wrapping the backbone) keeps every module name of the
backbone, so Table 1's stages, Grad-CAM, feature maps and the gradient plot work on a
fine-tuned model exactly as on the model it came from.
"""

from __future__ import annotations

from torch import nn

HEADS = ("linear", "seed")
# The seed notebook's head (Keras): BatchNorm, Dense + ReLU, Dropout, twice, then the classes.
SEED_HIDDEN = (256, 128)
SEED_DROPOUT = 0.5


def build_head(kind: str, in_features: int, num_classes: int) -> nn.Module:
    """``linear``: one fc layer, as the paper's own classifier (§3.4). ``seed``: the
    BN-Dense-Dropout stack of the usual transfer-learning notebook."""
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    if kind == "seed":
        layers: list[nn.Module] = []
        width = in_features
        for hidden in SEED_HIDDEN:
            layers += [nn.BatchNorm1d(width), nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(SEED_DROPOUT)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        return nn.Sequential(*layers)
    raise ValueError(f"Unknown head {kind!r}: use one of {', '.join(HEADS)}.")


def replace_head(model: nn.Module, kind: str, num_classes: int) -> nn.Module:
    """``model`` with a new ``kind`` head of ``num_classes`` outputs in place of its ``fc``:
    how a fine-tuned checkpoint's architecture is rebuilt before its weights are loaded."""
    model.fc = build_head(kind, feature_width(model), num_classes)
    return model


def feature_width(model: nn.Module) -> int:
    """How many features a ResNet's global pooling hands to its classifier."""
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return fc.in_features
    raise ValueError(f"{type(model).__name__} has no fc layer to replace: pick a ResNet backbone.")
