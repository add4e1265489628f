"""What the measured views say about the paper's claims, in a sentence for the page."""

from __future__ import annotations

from collections.abc import Sequence

from explorer.models import get_model_spec
from explorer.paper.inside.responses import Responses, mean_std


def responses_verdict(results: Sequence[Responses], registry_names: Sequence[str]) -> str:
    """Fig. 7's two claims checked on ``results`` (mean std over the 3×3 layers of each net):
    residual responses smaller than plain ones of the same depth, and smaller in deeper ResNets."""
    means = {name: mean_std(result) for result, name in zip(results, registry_names)}
    sentences = []
    for name, value in means.items():
        spec = get_model_spec(name)
        if spec.residual and spec.twin in means:
            smaller = value < means[spec.twin]
            sentences.append(f"ResNet-{spec.depth}'s responses (mean std {value:.3f}) are "
                             f"{'smaller' if smaller else 'not smaller'} than plain-{spec.depth}'s "
                             f"({means[spec.twin]:.3f}): {'as' if smaller else 'unlike'} the paper.")
    residual = sorted((get_model_spec(name).depth, value) for name, value in means.items() if get_model_spec(name).residual)
    if len(residual) >= 2:
        (shallow, shallow_std), (deep, deep_std) = residual[0], residual[-1]
        smaller = deep_std < shallow_std
        sentences.append(f"ResNet-{deep} ({deep_std:.3f}) is {'below' if smaller else 'not below'} ResNet-{shallow} "
                         f"({shallow_std:.3f}): {'as' if smaller else 'unlike'} the paper's “deeper ResNets have "
                         "smaller responses”.")
    return " ".join(sentences) or "Pick a plain net and its ResNet twin, or two ResNets, to check the paper's claims."
