"""The model spec (the MLP, or a user's Keras JSON) and its checks; train.py builds the Keras model from it.
User input is data, never code: Keras JSON is checked here, before Keras sees it."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.errors import DomainError

# Layers a user's Keras JSON may contain. Trainable ones must allow per-example clipping, so layers that mix
# examples in a batch (BatchNormalization) are out; Lambda and custom objects would execute user code.
ALLOWED_LAYERS = frozenset(
    {
        "Sequential",
        "Functional",
        "Model",
        "InputLayer",
        "Dense",
        "Dropout",
        "Activation",
        "Flatten",
        "Reshape",
        "Embedding",
        "Conv1D",
        "Conv2D",
        "MaxPooling1D",
        "MaxPooling2D",
        "AveragePooling1D",
        "AveragePooling2D",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "LayerNormalization",
        "GaussianNoise",
        "AlphaDropout",
        "GaussianDropout",
        "Concatenate",
        "Add",
        "Multiply",
        "Average",
        "ReLU",
        "LeakyReLU",
        "ELU",
        "Softmax",
    }
)
ALLOWED_HELPERS = frozenset(
    {
        "GlorotUniform",
        "GlorotNormal",
        "HeUniform",
        "HeNormal",
        "LecunUniform",
        "LecunNormal",
        "Zeros",
        "Ones",
        "Constant",
        "RandomNormal",
        "RandomUniform",
        "TruncatedNormal",
        "Orthogonal",
        "Identity",
        "VarianceScaling",
        "L1",
        "L2",
        "L1L2",
        "MaxNorm",
        "NonNeg",
        "UnitNorm",
        "MinMaxNorm",
    }
)
ALLOWED_ACTIVATIONS = frozenset(
    {
        "linear",
        "relu",
        "sigmoid",
        "softmax",
        "tanh",
        "elu",
        "selu",
        "gelu",
        "softplus",
        "softsign",
        "swish",
        "exponential",
        "hard_sigmoid",
        "relu6",
        "leaky_relu",
        "silu",
        "mish",
    }
)
MAX_KERAS_JSON_BYTES = 1_000_000
# A Keras model JSON nests a few levels per layer; far deeper nesting is an attack on the parser.
MAX_KERAS_JSON_DEPTH = 64


class ModelSpecError(DomainError, ValueError):
    """The model spec cannot be built safely or at all; the message names the problem. Always 422 invalid_model."""

    def __init__(self, message: str) -> None:
        super().__init__(422, "invalid_model", message)


class ModelSpec(BaseModel):
    """The target model: an MLP, or a Keras model JSON (`model.to_json()`) of standard layers."""

    model_config = ConfigDict(extra="forbid")

    hidden: list[int] = Field(default=[50, 10], max_length=16, description="Hidden layer sizes.")
    activation: Literal["relu", "tanh", "sigmoid", "elu", "selu", "gelu"] = Field(
        default="relu", description="Activation of the hidden layers."
    )
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout rate after each hidden layer; 0: none.")
    optimizer: Literal["sgd", "adam"] = Field(
        default="sgd", description="The optimizer, in its DP-SGD variant for private training."
    )
    learning_rate: float | None = Field(default=None, gt=0.0, le=10.0, description="Default: Keras' (0.01 / 0.001).")
    epochs: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Passes over the members. More epochs: more steps, so more noise for the same epsilon.",
    )
    batch_size: int = Field(
        default=32, ge=1, le=65536, description="Expected batch size; the sampling rate is batch_size / n."
    )
    keras_json: str | None = Field(
        default=None,
        max_length=MAX_KERAS_JSON_BYTES,
        description="A Keras model.to_json() of standard layers, used instead of the MLP "
        "(hidden, activation and dropout are then ignored). Null: the MLP.",
    )

    @field_validator("hidden")
    @classmethod
    def _hidden_sizes(cls, sizes: list[int]) -> list[int]:
        if any(s < 1 or s > 8192 for s in sizes):
            raise ValueError("hidden layer sizes must be between 1 and 8192")
        return sizes

    @field_validator("keras_json")
    @classmethod
    def _safe_keras_json(cls, text: str | None) -> str | None:
        if text is not None:
            check_keras_json(text)
        return text

    @property
    def effective_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 0.01 if self.optimizer == "sgd" else 0.001


def check_keras_json(text: str) -> dict[str, Any]:
    """Parse a Keras model JSON and reject anything that is not a standard, per-example-clippable layer."""
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelSpecError(f"keras_json is not valid JSON: {exc}") from None
    except RecursionError:
        raise ModelSpecError(f"keras_json is nested too deeply (more than {MAX_KERAS_JSON_DEPTH} levels)") from None
    if json_depth(config) > MAX_KERAS_JSON_DEPTH:  # before the recursive walk below
        raise ModelSpecError(f"keras_json is nested too deeply (more than {MAX_KERAS_JSON_DEPTH} levels)")
    if not isinstance(config, dict) or config.get("class_name") not in {"Sequential", "Functional", "Model"}:
        raise ModelSpecError("keras_json must be a Sequential or functional model from model.to_json()")
    _walk(config, "model")
    return config


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    depth, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            depth = max(depth, level)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return depth


def _walk(node: Any, where: str) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{where}[{i}]")
        return
    if not isinstance(node, dict):
        return
    name = node.get("class_name")
    if name is not None:
        if name == "Lambda":
            raise ModelSpecError(f"keras_json: Lambda layers are not allowed ({where}): they would run user code")
        if name not in ALLOWED_LAYERS and name not in ALLOWED_HELPERS:
            raise ModelSpecError(f"keras_json: '{name}' is not an allowed standard layer ({where})")
        module = node.get("module")
        if module is not None and not str(module).startswith("keras"):
            raise ModelSpecError(f"keras_json: custom object from module '{module}' is not allowed ({where})")
        registered = node.get("registered_name")
        if registered is not None and registered != name:
            raise ModelSpecError(f"keras_json: custom registered object '{registered}' is not allowed ({where})")
    for key in ("function", "function_type", "output_shape_type"):
        if key in node:
            raise ModelSpecError(f"keras_json: '{key}' entries are not allowed ({where}): they would run user code")
    activation = node.get("activation")
    if isinstance(activation, str) and activation not in ALLOWED_ACTIVATIONS:
        raise ModelSpecError(f"keras_json: activation '{activation}' is not allowed ({where})")
    for key, value in node.items():
        _walk(value, f"{where}.{key}" if key != "config" else where)
