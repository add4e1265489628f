"""Model registry: ``list_models()``, ``get_model_spec(name)``, ``build_model(name)``.

Importing this package registers every model the app knows.
"""

from explorer.models.registry import (
    ModelSpec,
    PaperNumbers,
    UnknownModelError,
    build_model,
    get_model_spec,
    list_models,
    model_names,
    register_model,
)
# Registration order is display order: the ImageNet zoo first, then the CIFAR nets.
from explorer.models import imagenet  # noqa: E402,F401,I001
from explorer.models import cifar  # noqa: E402,F401

__all__ = [
    "ModelSpec",
    "PaperNumbers",
    "UnknownModelError",
    "build_model",
    "get_model_spec",
    "list_models",
    "model_names",
    "register_model",
]
