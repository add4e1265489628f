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
from explorer.models import cifar, imagenet  # noqa: E402,F401  (registers the models)

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
