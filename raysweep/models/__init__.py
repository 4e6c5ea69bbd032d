"""The model zoo: a timm-style registry of the CNNs from the seed reports.

``create_model("lenet", in_channels=1, num_classes=10, image_size=28, dropout=0.5)`` builds a
model; ``catalog()`` lists every model's own kwargs without importing torch. Importing this
package does not import torch: the family modules load on the first ``create_model`` /
``list_models`` call.
"""

from raysweep.models.registry import (
    catalog,
    check_model_kwargs,
    count_params,
    create_model,
    describe_models,
    list_models,
    model_kwargs,
    register_model,
)

__all__ = [
    "catalog",
    "check_model_kwargs",
    "count_params",
    "create_model",
    "describe_models",
    "list_models",
    "model_kwargs",
    "register_model",
]
