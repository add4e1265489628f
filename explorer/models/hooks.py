"""Looking at a forward pass: the one way forward hooks are put on a model and taken off again.

Every view that reads or changes a layer's tensor as the network computes it (the feature
maps, Fig. 7's layer responses, the branch ratios ‖F(x)‖ / ‖x‖, a lesioned block) registers
its hooks through :func:`hooked`, which removes them on leaving the ``with`` whatever
happens: a hook left behind would run in every later forward pass of a shared model. A
model shared by several sessions is hooked only with its lock held, so a hook sees this
caller's pass and no other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

from torch import Tensor, nn

Target = str | nn.Module  # a submodule's name ("layer2.0.bn2") or the module itself
ForwardHook = Callable[[nn.Module, tuple, object], object]  # (module, inputs, output) -> None, or a new output
PreHook = Callable[[nn.Module, tuple], object]  # (module, inputs) -> None, or new inputs


@contextlib.contextmanager
def hooked(model: nn.Module, after: Iterable[tuple[Target, ForwardHook]] = (),
           before: Iterable[tuple[Target, PreHook]] = ()) -> Iterator[nn.Module]:
    """Inside the ``with``, ``model`` runs with a forward hook on each ``after`` module (called
    with its output) and a pre-hook on each ``before`` module (called with its inputs), in the
    order given; all are removed on leaving, also when registering one fails (a name the model
    does not have raises ``AttributeError``) or the forward pass raises. Yields ``model``."""
    handles = []
    try:
        for target, hook in before:
            handles.append(_module(model, target).register_forward_pre_hook(hook))
        for target, hook in after:
            handles.append(_module(model, target).register_forward_hook(hook))
        yield model
    finally:
        for handle in handles:
            handle.remove()


def _module(model: nn.Module, target: Target) -> nn.Module:
    return model.get_submodule(target) if isinstance(target, str) else target


@contextlib.contextmanager
def captured_outputs(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, Tensor]]:
    """Inside the ``with``, each forward pass of ``model`` stores the output of every module
    named in ``names`` (detached) in the yielded dict (see :func:`hooked`)."""
    outputs: dict[str, Tensor] = {}

    def keeper(name: str) -> ForwardHook:
        def keep(_module, _inputs, output):
            outputs[name] = output.detach()
        return keep

    with hooked(model, after=[(name, keeper(name)) for name in names]):
        yield outputs
