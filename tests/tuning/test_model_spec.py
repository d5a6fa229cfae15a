import json

import numpy as np
import pytest
import tensorflow as tf
from pydantic import ValidationError

from app.tuning.model_spec import ModelSpec, ModelSpecError, check_keras_json
from app.tuning.train import DPParams, train


def _sequential_json(*layers: tf.keras.layers.Layer) -> str:
    model = tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=(6,)), *layers])
    return model.to_json()


def test_lambda_layer_is_rejected_before_keras_sees_it() -> None:
    text = _sequential_json(tf.keras.layers.Lambda(lambda x: x * 2), tf.keras.layers.Dense(1))
    with pytest.raises(ModelSpecError, match="Lambda"):
        check_keras_json(text)
    with pytest.raises(ValidationError, match="Lambda"):
        ModelSpec(keras_json=text)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["config"]["layers"][1].update(class_name="MyCustomLayer"), "not an allowed"),
        (lambda c: c["config"]["layers"][1].update(module="evil.module"), "custom object"),
        (lambda c: c["config"]["layers"][1].update(registered_name="Custom>Dense"), "custom registered"),
        (lambda c: c["config"]["layers"][1]["config"].update(activation="my_activation"), "activation"),
        (lambda c: c["config"]["layers"][1].update(class_name="BatchNormalization"), "not an allowed"),
    ],
)
def test_custom_objects_are_rejected(mutate, message) -> None:  # type: ignore[no-untyped-def]
    config = json.loads(_sequential_json(tf.keras.layers.Dense(1)))
    mutate(config)
    with pytest.raises(ModelSpecError, match=message):
        check_keras_json(json.dumps(config))


def test_garbage_json_is_rejected() -> None:
    with pytest.raises(ModelSpecError, match="not valid JSON"):
        check_keras_json("{not json")
    with pytest.raises(ModelSpecError, match="Sequential or functional"):
        check_keras_json(json.dumps({"class_name": "Dense"}))


def test_standard_keras_json_trains_with_dp() -> None:
    text = _sequential_json(tf.keras.layers.Dense(4, activation="relu"), tf.keras.layers.Dense(1))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    trained = train(ModelSpec(keras_json=text, epochs=1, batch_size=16), x, y, 2, DPParams(1.0, 0.5), seed=0)
    assert trained.clipping in {"single_pass", "ghost"}
    proba = trained.predict_proba(x)
    assert proba.shape == (64, 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_keras_json_with_wrong_input_width_is_rejected() -> None:
    text = _sequential_json(tf.keras.layers.Dense(1))
    x = np.zeros((8, 3), dtype=np.float32)
    with pytest.raises(ModelSpecError, match="input shape"):
        train(ModelSpec(keras_json=text, epochs=1), x, np.array([0, 1] * 4), 2, None, seed=0)


def test_invalid_spec_values_are_rejected() -> None:
    for bad in ({"epochs": -1}, {"dropout": 1.0}, {"hidden": [0]}, {"optimizer": "rmsprop"}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            ModelSpec(**bad)


def test_deeply_nested_json_is_rejected_not_a_crash() -> None:
    with pytest.raises(ModelSpecError, match="nested too deeply"):
        check_keras_json("[" * 100_000 + "]" * 100_000)
    nested: dict = {"class_name": "Sequential", "config": {}}
    node = nested["config"]
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ModelSpecError, match="nested too deeply"):
        check_keras_json(json.dumps(nested))
