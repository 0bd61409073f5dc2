"""Why a layer or operation is refused: the reasons a student reads."""

from __future__ import annotations

# Layers that stay refused, with the reason shown to the student.
_CODE = "it runs arbitrary Python code, which the grader never executes"
REFUSED: dict[str, str] = {
    "Lambda": _CODE,
    "JaxLayer": "it wraps a JAX function, i.e. " + _CODE,
    "FlaxLayer": "it wraps a Flax module, i.e. " + _CODE,
    "TorchModuleWrapper": "it unpickles a PyTorch module, i.e. " + _CODE,
    "TFSMLayer": "it loads a TensorFlow SavedModel from a folder on disk",
    "StringLookup": "its vocabulary can be read from a file, and it works on text, not images",
    "IntegerLookup": "its vocabulary can be read from a file, and it works on categories",
    "TextVectorization": "its vocabulary can be read from a file, and it works on text",
    "Hashing": "it hashes strings and categories; it has no meaning on image tensors",
    "HashedCrossing": "it crosses categorical features; it has no meaning on image tensors",
    "CategoryEncoding": "it encodes integer categories; it has no meaning on image tensors",
    "MelSpectrogram": "it turns audio waveforms into spectrograms, not part of an image model",
    "STFTSpectrogram": "it turns audio waveforms into spectrograms, not part of an image model",
    "TFOpLambda": "tf.keras writes it for a TensorFlow function called between layers (x + y, "
    "tf.concat, ...), which it runs by name. Use keras.layers.Add, Multiply, Concatenate, ... "
    "instead, or save the model from Keras 3, which stores such steps as vetted operations",
    "SlicingOpLambda": "tf.keras writes it for slicing a tensor between layers (x[:, 1:]), which "
    "it runs by name. Use keras.layers.Cropping2D or Reshape instead, or save from Keras 3",
    "Layer": "it is the abstract base class of layers and computes nothing",
    "Wrapper": "it is the abstract base class of wrapper layers",
    "InputSpec": "it is not a layer",
    "GRUCell": "a recurrent cell is only accepted inside an RNN layer",
    "LSTMCell": "a recurrent cell is only accepted inside an RNN layer",
    "SimpleRNNCell": "a recurrent cell is only accepted inside an RNN layer",
    "StackedRNNCells": "stacked cells are only accepted inside an RNN layer",
}


def refusal(class_name: str, module: str | None = None) -> str:
    """The message for a class that is not accepted, saying why for that class."""
    if class_name in {"Lambda", "__lambda__", "function"}:
        return (
            "The model contains a Lambda layer (or a Python function). Lambda layers run "
            "arbitrary code, so they cannot be graded: use built-in Keras layers only."
        )
    if class_name in REFUSED:
        return f"The model contains a {class_name} layer, which cannot be graded: " + (
            REFUSED[class_name] + "."
        )
    if module and module.startswith("keras.src.ops."):
        return (
            f"The model's graph uses the operation {module.rsplit('.', 1)[-1]}.{class_name}, "
            "which is not on the grader's list of vetted tensor operations. Use a Keras layer "
            "for this step instead."
        )
    return (
        f"The model contains a layer of type '{class_name}', which is not a built-in Keras "
        "layer (custom and registered classes run their own code, so they cannot be graded). "
        "Use built-in Keras layers only."
    )
