"""Model registry: ``list_models()``, ``get_model_spec(name)``, ``build_model(name)``,
each model's anatomy (``blocks``, ``counted_layers``, ``weighted_layers``, ``stage_ends``, ...)
and the CIFAR builders of §4.2 (``resnet20()`` … ``plain110()``).

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
# isort: off
from explorer.models import imagenet  # noqa: E402,F401,I001
from explorer.models import cifar  # noqa: E402,F401
# isort: on
from explorer.models.anatomy import (  # noqa: E402
    Block,
    blocks,
    body_stages,
    conv_bn_pairs,
    counted_layers,
    head_stage,
    shortcut_attributes,
    shortcut_modules,
    stage_ends,
    stem_stage,
    weighted_layers,
)
from explorer.models.cifar import (  # noqa: E402
    plain20,
    plain32,
    plain44,
    plain56,
    plain110,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
)

__all__ = [
    "Block",
    "ModelSpec",
    "PaperNumbers",
    "UnknownModelError",
    "blocks",
    "body_stages",
    "build_model",
    "conv_bn_pairs",
    "counted_layers",
    "get_model_spec",
    "head_stage",
    "list_models",
    "model_names",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
    "register_model",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "shortcut_attributes",
    "shortcut_modules",
    "stage_ends",
    "stem_stage",
    "weighted_layers",
]
