"""The catalogue of Keras layers and operations the grader understands, and those it refuses.

Every class in ``keras.layers`` is either here with a shape function, which
infers the output shape and weight count from the configuration alone, or in
``REFUSED`` with the reason a student reads. Functional graphs also serialize
Keras *operations* (``x + y`` is ``keras.src.ops.numpy.Add``); the vetted ones
are in ``OPS``. Families of layers register themselves from their own modules
(``layers_*.py``, ``ops.py``), so this module stays the index.
"""

from __future__ import annotations

# The family modules register their shape functions on import.
from grader.inspection import layers_core, layers_sequence, ops  # noqa: F401
from grader.inspection.refusals import REFUSED, refusal
from grader.inspection.registry import LAYERS, OPS

__all__ = ["ALIASES", "APPLICATION_LAYERS", "LAYERS", "OPS", "REFUSED", "refusal"]


# Layers defined inside keras.applications (Keras' own code, not the student's): accepted
# from that module only.
APPLICATION_LAYERS = frozenset(
    {
        ("keras.src.applications.convnext", "LayerScale"),
        ("keras.src.applications.inception_resnet_v2", "CustomScaleLayer"),
    }
)

# Other names Keras exports for the same class; the layer table shows the class's own name.
ALIASES = {
    **{f"Convolution{r}D": f"Conv{r}D" for r in (1, 2, 3)},
    **{f"Convolution{r}DTranspose": f"Conv{r}DTranspose" for r in (1, 2, 3)},
    **{f"SeparableConvolution{r}D": f"SeparableConv{r}D" for r in (1, 2)},
    **{f"MaxPool{r}D": f"MaxPooling{r}D" for r in (1, 2, 3)},
    **{f"AvgPool{r}D": f"AveragePooling{r}D" for r in (1, 2, 3)},
    **{f"GlobalAvgPool{r}D": f"GlobalAveragePooling{r}D" for r in (1, 2, 3)},
    **{f"GlobalMaxPool{r}D": f"GlobalMaxPooling{r}D" for r in (1, 2, 3)},
    "GroupQueryAttention": "GroupedQueryAttention",
}
