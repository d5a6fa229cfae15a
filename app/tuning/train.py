"""Training: the non-private baseline and DP-SGD (TensorFlow Privacy) with the same architecture."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy.special import expit  # noqa: E402
from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry as tfp_layer_registry  # noqa: E402
from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPModel, DPSequential  # noqa: E402
from tensorflow_privacy.privacy.optimizers import dp_optimizer_keras  # noqa: E402

from app.tuning.accounting import dp_sgd_steps, sampling_rate  # noqa: E402
from app.tuning.dense_loop import DenseTrainer, NoiseSource, poisson_steps  # noqa: E402
from app.tuning.model_spec import ModelSpec, ModelSpecError, check_keras_json  # noqa: E402
from app.tuning.single_pass_clipping import SinglePassDPSequential, supports_single_pass  # noqa: E402

tf.get_logger().setLevel("ERROR")


def configure_threads(threads: int | None) -> None:
    """Cap TensorFlow's thread pools, so N single-threaded workers can share a machine. Call before any op."""
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # already initialised in this process; the first setting stands
            pass


@dataclass(frozen=True)
class DPParams:
    clip: float
    noise: float


Outputs = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


@dataclass
class TrainedModel:
    outputs: Outputs  # the last layer's values: logits when from_logits, else probabilities
    weights: list[npt.NDArray[np.float32]]  # in Keras' get_weights() order
    from_logits: bool
    n_classes: int
    clipping: str  # "none" (baseline), "single_pass", "ghost" or "per_example"
    steps: int
    noise_source: str = "fast"  # dense_loop.NOISE_SOURCES' key; Keras paths draw with TensorFlow's global seed

    def predict_proba(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Class probabilities, shape (n, n_classes) (two columns for binary)."""
        out = self.outputs(x).astype(np.float64)
        if out.shape[1] == 1:
            p = expit(out[:, 0]) if self.from_logits else out[:, 0]  # expit: no overflow on huge logits
            p = np.clip(p, 0.0, 1.0)
            return np.column_stack([1.0 - p, p])
        if self.from_logits:
            out = out - out.max(axis=1, keepdims=True)
            out = np.exp(out)
        probabilities: npt.NDArray[np.float64] = out / out.sum(axis=1, keepdims=True)
        return probabilities


@dataclass
class KerasBuild:
    """A compiled Keras model and how it clips."""

    model: tf.keras.Model
    from_logits: bool
    n_classes: int
    clipping: str


def keras_outputs(model: tf.keras.Model) -> Outputs:
    def outputs(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        # Direct calls in chunks: Model.predict builds a data adapter and traces a function per model,
        # which costs more than the forward pass on data of this size.
        chunks = [model(x[i : i + 8192], training=False).numpy() for i in range(0, len(x), 8192)]
        return np.concatenate(chunks) if chunks else np.zeros((0, model.output_shape[-1]), np.float32)

    return outputs


def output_units(n_classes: int) -> int:
    return 1 if n_classes == 2 else n_classes


def _mlp_layers(spec: ModelSpec, n_features: int, n_classes: int) -> tuple[list[tf.keras.layers.Layer], bool]:
    layers: list[tf.keras.layers.Layer] = [tf.keras.layers.InputLayer(input_shape=(n_features,))]
    for size in spec.hidden:
        layers.append(tf.keras.layers.Dense(size, activation=spec.activation))
        if spec.dropout > 0:
            layers.append(tf.keras.layers.Dropout(spec.dropout))
    layers.append(tf.keras.layers.Dense(output_units(n_classes)))
    return layers, True


def _user_model(spec: ModelSpec, n_features: int, n_classes: int) -> tuple[tf.keras.Model, bool]:
    assert spec.keras_json is not None
    check_keras_json(spec.keras_json)
    try:
        model = tf.keras.models.model_from_json(spec.keras_json)
    except Exception as exc:  # Keras raises many types for a malformed config
        raise ModelSpecError(f"keras_json could not be built: {type(exc).__name__}: {exc}") from None
    in_shape = model.input_shape
    if not isinstance(in_shape, tuple) or len(in_shape) != 2 or in_shape[1] != n_features:
        raise ModelSpecError(f"keras_json input shape {in_shape} does not match the data's {n_features} features")
    units = model.output_shape[-1]
    if units != output_units(n_classes):
        raise ModelSpecError(
            f"keras_json output has {units} units; {n_classes} classes need {output_units(n_classes)}"
        )
    activation = model.layers[-1].get_config().get("activation", "linear")
    from_logits = activation not in {"sigmoid", "softmax"}
    return model, from_logits


def _loss(n_classes: int, from_logits: bool, per_example: bool) -> tf.keras.losses.Loss:
    reduction = tf.keras.losses.Reduction.NONE if per_example else tf.keras.losses.Reduction.AUTO
    if n_classes == 2:
        return tf.keras.losses.BinaryCrossentropy(from_logits=from_logits, reduction=reduction)
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction=reduction)


def _optimizer(spec: ModelSpec, dp: DPParams | None) -> tf.keras.optimizers.Optimizer:
    lr = spec.effective_learning_rate
    if dp is None:
        if spec.optimizer == "sgd":
            return tf.keras.optimizers.SGD(learning_rate=lr)
        return tf.keras.optimizers.Adam(learning_rate=lr)
    cls = (
        dp_optimizer_keras.DPKerasSGDOptimizer if spec.optimizer == "sgd" else dp_optimizer_keras.DPKerasAdamOptimizer
    )
    return cls(l2_norm_clip=dp.clip, noise_multiplier=dp.noise, num_microbatches=None, learning_rate=lr)


CLIPPING_METHODS = ("single_pass", "ghost", "per_example")


def build_model(
    spec: ModelSpec, n_features: int, n_classes: int, dp: DPParams | None, *, clipping: str | None = None
) -> KerasBuild:
    """A compiled Keras model (for a user's keras_json; the built-in MLP trains in dense_loop.py). DP clipping, fastest first: single pass for Dense stacks (single_pass_clipping.py),
    TF Privacy's fast ("ghost") clipping when every trainable layer is in its registry, and the DP Keras
    optimizer (per-example gradients) otherwise. `clipping` forces one method (tests and benchmarks)."""
    if clipping is not None and clipping not in CLIPPING_METHODS:
        raise ValueError(f"clipping must be one of {CLIPPING_METHODS}, got {clipping!r}")
    registry = tfp_layer_registry.make_default_layer_registry()
    if spec.keras_json is None:
        layers, from_logits = _mlp_layers(spec, n_features, n_classes)
        plain: tf.keras.Model = tf.keras.Sequential(layers)
    else:
        plain, from_logits = _user_model(spec, n_features, n_classes)
    if dp is None:
        method = "none"
    elif clipping is not None:
        method = clipping
    elif supports_single_pass(plain):
        method = "single_pass"
    elif all(registry.is_elem(layer) for layer in plain.layers if layer.trainable_weights):
        method = "ghost"
    else:
        method = "per_example"

    # Sequential.layers omits the InputLayer; the DP models need it to have a compute graph at construction
    # (without one TF Privacy silently falls back from ghost to vectorised clipping).
    def with_input() -> list[tf.keras.layers.Layer]:
        return [tf.keras.layers.InputLayer(input_shape=plain.input_shape[1:]), *plain.layers]

    loss = _loss(n_classes, from_logits, per_example=False)
    if dp is None:  # method "none"; every other method has dp set
        model, optimizer = plain, _optimizer(spec, None)
    elif method == "single_pass":
        if not supports_single_pass(plain):
            raise ValueError("single-pass clipping needs a Sequential of Dense and Dropout layers")
        per_example = _loss(n_classes, from_logits, per_example=True)
        model = SinglePassDPSequential(with_input(), dp.clip, dp.noise, per_example)
        optimizer = _optimizer(spec, None)
    elif method == "ghost":
        common = dict(l2_norm_clip=dp.clip, noise_multiplier=dp.noise, layer_registry=registry, use_xla=False)
        if isinstance(plain, tf.keras.Sequential):
            model = DPSequential(layers=with_input(), **common)
        else:
            model = DPModel(inputs=plain.inputs, outputs=plain.outputs, **common)
        if not model._enable_fast_peg_computation:  # TF Privacy's own decision, not just ours
            method = "per_example"  # it clips with vectorised per-example gradients instead
        optimizer = _optimizer(spec, None)
    else:
        model, optimizer = plain, _optimizer(spec, dp)
        loss = _loss(n_classes, from_logits, per_example=True)
    model.compile(optimizer=optimizer, loss=loss)
    return KerasBuild(model=model, from_logits=from_logits, n_classes=n_classes, clipping=method)


def label_tensor(y: npt.NDArray[np.int64], n_classes: int) -> npt.NDArray[np.float32] | npt.NDArray[np.int64]:
    """Binary labels as float (n, 1): fast clipping needs the loss unreduced over a batch axis only."""
    if n_classes == 2:
        return y.astype(np.float32).reshape(-1, 1)
    return y.astype(np.int64)


def poisson_batches(
    n: int, batch_size: int, epochs: int, rng: np.random.Generator, *, keep_empty: bool = True
) -> Iterator[npt.NDArray[np.int64]]:
    """dense_loop.poisson_steps' batches; `keep_empty=False` skips empty draws, for TF Privacy's own clipping,
    which divides by the realised batch size (the chance of an empty draw is about e^-batch_size)."""
    for idx in poisson_steps(n, batch_size, epochs, rng):
        if idx.size or keep_empty:
            yield idx


def poisson_dataset(
    x: npt.NDArray[np.float32],
    labels: npt.NDArray[np.float32] | npt.NDArray[np.int64],  # label_tensor's
    batch_size: int,
    epochs: int,
    rng: np.random.Generator,
    noise: tuple[int, float] | None = None,
    keep_empty: bool = True,
) -> tf.data.Dataset:
    """Poisson batches gathered inside the tf.data graph (no Python per step): the batches' indices are
    concatenated once and each step slices its own range. With `noise=(size, stddev)` each element also
    carries that step's DP noise, drawn by tf.data's threads while the previous step trains: sampling
    N(0, (zC)^2) for every parameter at every step costs about as much as a non-private step does."""
    batches = list(poisson_batches(len(x), batch_size, epochs, rng, keep_empty=keep_empty))
    order = tf.constant(np.concatenate(batches).astype(np.int64))
    ends = np.cumsum([len(b) for b in batches])
    bounds = tf.constant(np.column_stack([ends - [len(b) for b in batches], ends]).astype(np.int64))
    features, targets = tf.constant(x), tf.constant(labels)
    noise_seed = tf.constant(rng.integers(0, 2**31 - 1, size=2), dtype=tf.int64)

    def gather(step: tf.Tensor, bound: tf.Tensor) -> tuple[tf.Tensor, ...]:
        idx = order[bound[0] : bound[1]]
        if noise is None:
            return tf.gather(features, idx), tf.gather(targets, idx)
        size, stddev = noise
        step_seed = noise_seed + tf.stack([step, tf.constant(0, tf.int64)])
        return (
            tf.gather(features, idx),
            tf.gather(targets, idx),
            tf.random.stateless_normal([size], seed=step_seed, stddev=stddev),
        )

    return tf.data.Dataset.from_tensor_slices(bounds).enumerate().map(gather).prefetch(2)


def train(
    spec: ModelSpec,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    n_classes: int,
    dp: DPParams | None,
    seed: int,
    noise_source: NoiseSource = "fast",
) -> TrainedModel:
    """Train from a seeded initialisation. Baseline: shuffled fixed-size batches. DP: Poisson-sampled batches,
    so the accounted epsilon applies. The built-in MLP trains in the compiled loop (dense_loop.py)."""
    if spec.keras_json is None:
        return train_many(spec, x, y, n_classes, dp, [seed], noise_source=noise_source)[0]
    return _train_keras(spec, x, y, n_classes, dp, seed)


def train_many(
    spec: ModelSpec,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    n_classes: int,
    dp: DPParams | None,
    seeds: list[int],
    *,
    rows: list[npt.NDArray[np.int64]] | None = None,
    noise_source: NoiseSource = "fast",
) -> list[TrainedModel]:
    """K models of one spec and one (clip, noise), model k on x[rows[k]] (all of x if rows is None) from
    seeds[k]. The built-in MLP trains all K in one computation; a user's Keras model one after the other."""
    if spec.keras_json is not None:
        subsets = rows if rows is not None else [np.arange(len(x))] * len(seeds)
        return [_train_keras(spec, x[r], y[r], n_classes, dp, s) for r, s in zip(subsets, seeds, strict=True)]
    trainer = dense_trainer(spec, x, y, n_classes, dp, seeds, rows=rows, noise_source=noise_source)
    trainer.train()
    return dense_models(trainer, dp, noise_source)


def dense_trainer(
    spec: ModelSpec,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    n_classes: int,
    dp: DPParams | None,
    seeds: list[int],
    *,
    rows: list[npt.NDArray[np.int64]] | None = None,
    noise_source: NoiseSource = "fast",
) -> DenseTrainer:
    """The built-in MLP's compiled loop, untrained, exactly as train_many builds it: train it in pieces
    (train_until), read it between them (dense_models), and it ends where one train_many call would."""
    return DenseTrainer(
        spec,
        x,
        y,
        n_classes,
        seeds,
        rows=rows,
        clip=None if dp is None else [dp.clip] * len(seeds),
        noise=None if dp is None else [dp.noise] * len(seeds),
        noise_source=noise_source,
    )


def dense_models(
    trainer: DenseTrainer, dp: DPParams | None, noise_source: NoiseSource = "fast"
) -> list[TrainedModel]:
    """The trainer's K models as they stand now (after its last train_until)."""
    return [
        TrainedModel(
            outputs=weights.logits,
            weights=weights.arrays,
            from_logits=True,
            n_classes=trainer.n_classes,
            clipping="none" if dp is None else "single_pass",
            steps=trainer.state.next_step,
            noise_source=noise_source,
        )
        for weights in trainer.weights()
    ]


def _train_keras(
    spec: ModelSpec,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    n_classes: int,
    dp: DPParams | None,
    seed: int,
) -> TrainedModel:
    """A user's Keras model: Keras fit for the baseline, TF Privacy's or single-pass clipping for DP-SGD."""
    labels = label_tensor(y, n_classes)
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)
    built = build_model(spec, x.shape[1], n_classes, dp)
    model = built.model
    if dp is None:
        model.fit(x, labels, batch_size=spec.batch_size, epochs=spec.epochs, shuffle=True, verbose=0)
    else:
        noise = None
        single_pass = isinstance(model, SinglePassDPSequential)
        if single_pass:
            model.set_privacy(dp.clip, dp.noise, sampling_rate(len(x), spec.batch_size) * len(x))
            if dp.noise > 0:
                noise = (model.noise_size(), dp.noise * dp.clip)
        dataset = poisson_dataset(
            x, labels, spec.batch_size, spec.epochs, np.random.default_rng(seed), noise, keep_empty=single_pass
        )
        model.fit(dataset, epochs=1, verbose=0)
    return TrainedModel(
        outputs=keras_outputs(model),
        weights=model.get_weights(),
        from_logits=built.from_logits,
        n_classes=n_classes,
        clipping=built.clipping,
        steps=dp_sgd_steps(len(x), spec.batch_size, spec.epochs),
    )


def export_model(trained: TrainedModel, spec: ModelSpec, n_features: int) -> tf.keras.Model:
    """A plain Keras model with the trained weights, ending in probabilities (sigmoid or softmax), that
    tf.keras.models.load_model reads without any dptune or TF Privacy class."""
    if spec.keras_json is None:
        layers, from_logits = _mlp_layers(spec, n_features, trained.n_classes)
        plain: tf.keras.Model = tf.keras.Sequential(layers)
    else:
        plain, from_logits = _user_model(spec, n_features, trained.n_classes)
    plain.set_weights(trained.weights)
    if from_logits:
        activation = "sigmoid" if trained.n_classes == 2 else "softmax"
        plain = tf.keras.Model(
            plain.inputs, tf.keras.layers.Activation(activation, name="probabilities")(plain.outputs[0])
        )
    return plain
