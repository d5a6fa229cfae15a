"""One compiled training loop for the built-in MLP: K models of one spec trained at once, non-private or DP-SGD.

The whole training is one `tf.function` over a `tf.while_loop` of steps: no Python per step and no Keras `fit`.
Batches are drawn up front in numpy (Poisson for DP-SGD, as the accountant assumes; shuffled fixed-size
batches for the non-private baseline, as Keras `fit` draws them) and each step slices its own columns.

K models are stacked on a leading model axis (weights (K, in, out), a batched matmul per layer). Each model has
its own rows of the shared data, its own seed, clip, noise multiplier and Poisson draws; a step's batches are
padded to the largest of the K, and padded entries have weight 0. Model k therefore gets the same update as it
would alone, up to float summation order (tests/tuning/test_dense_loop.py).

DP-SGD clips per example in one forward and one backward pass (single_pass_clipping.py's identity: a Dense
layer's per-example kernel gradient is a_i g_i^T, of squared norm |a_i|^2 |g_i|^2), adds
N(0, (z C)^2) per coordinate and divides by the expected batch size q n. The noise is drawn in the graph by
TensorFlow's stateless Philox generator, one stream per model and step; it depends on nothing the step
computes, so the executor draws it while the step's matmuls run. Non-private training is the same loop
without the clipping and the noise, divided by the realised batch size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from app.tuning.accounting import dp_sgd_steps, sampling_rate
from app.tuning.model_spec import ModelSpec

NoiseSource = Literal["fast", "secure"]
# What privacy.json states about each noise source.
NOISE_SOURCES: dict[str, str] = {
    "fast": (
        "TensorFlow's stateless Philox-4x32-10 generator (tf.random.stateless_normal), keyed from the training "
        "seed: exact Gaussian draws, reproducible per seed, not a cryptographically secure generator"
    ),
    "secure": (
        "TensorFlow's stateless Philox-4x32-10 generator keyed with 64 bits per model from os.urandom (not "
        "reproducible); each coordinate is the sum of four draws of std z C / 2 (Holohan and Braghin 2021, as "
        "Opacus' secure_mode), against floating-point attacks on the Gaussian's low bits. Philox itself is not "
        "a cryptographically secure generator"
    ),
}
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7  # Keras' defaults, which the baseline used


@dataclass(frozen=True)
class Architecture:
    """What a compiled loop depends on besides the data's sizes (one traced function per value)."""

    sizes: tuple[int, ...]  # input width, hidden sizes, output units
    activation: str
    dropout: float
    optimizer: str
    binary: bool
    models: int
    private: bool
    noisy: bool
    secure: bool


@dataclass(frozen=True)
class DenseWeights:
    """One trained model: a kernel and a bias per Dense layer, in Keras' get_weights() order."""

    arrays: list[npt.NDArray[np.float32]]
    activation: str

    def logits(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The forward pass without dropout, in TensorFlow, in chunks."""
        act = tf.keras.activations.get(self.activation)
        out = []
        for start in range(0, len(x), 8192):
            h = tf.constant(x[start : start + 8192])
            pairs = list(zip(self.arrays[0::2], self.arrays[1::2], strict=True))
            for i, (kernel, bias) in enumerate(pairs):
                h = tf.matmul(h, kernel) + bias
                if i < len(pairs) - 1:
                    h = act(h)
            out.append(h.numpy())
        return np.concatenate(out) if out else np.zeros((0, self.arrays[-1].shape[0]), np.float32)


@dataclass(frozen=True)
class Batches:
    """Every step's batch of every model, padded per step to the largest of the K and laid end to end."""

    rows: npt.NDArray[np.int64]  # (K, columns): rows of the shared data
    weights: npt.NDArray[np.float32]  # (K, columns): 1 / divisor for real entries, 0 for padding
    bounds: npt.NDArray[np.int64]  # (steps, 2): each step's column range

    @property
    def steps(self) -> int:
        return len(self.bounds)


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> npt.NDArray[np.float32]:
    """Keras' default kernel initialiser, drawn with numpy (a Keras build per model costs more than training)."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def initial_weights(sizes: list[int], seed: int) -> list[npt.NDArray[np.float32]]:
    rng = np.random.default_rng([seed, 0])
    arrays: list[npt.NDArray[np.float32]] = []
    for fan_in, fan_out in pairwise(sizes):
        arrays += [glorot_uniform(rng, fan_in, fan_out), np.zeros(fan_out, np.float32)]
    return arrays


def _padded(per_model: list[list[npt.NDArray[np.int64]]], divisors: list[npt.NDArray[np.float64]]) -> Batches:
    """Lay K models' per-step index batches side by side, each step padded to its largest batch."""
    sizes = np.array([[len(b) for b in batches] for batches in per_model])  # (K, steps)
    widths = sizes.max(axis=0)
    starts = np.concatenate([[0], np.cumsum(widths)])
    rows = np.zeros((len(per_model), int(starts[-1])), np.int64)
    weights = np.zeros_like(rows, dtype=np.float32)
    for k, batches in enumerate(per_model):
        flat = np.concatenate(batches) if batches else np.zeros(0, np.int64)
        offsets = np.arange(len(flat)) - np.repeat(np.cumsum(sizes[k]) - sizes[k], sizes[k])
        columns = np.repeat(starts[:-1], sizes[k]) + offsets
        rows[k, columns] = flat
        weights[k, columns] = np.repeat(1.0 / divisors[k], sizes[k])
    return Batches(rows=rows, weights=weights, bounds=np.column_stack([starts[:-1], starts[1:]]).astype(np.int64))


def poisson_steps(n: int, batch_size: int, epochs: int, rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
    """Every example joins each step independently with probability batch_size / n, for dp_sgd_steps steps;
    an empty draw is a noise-only step."""
    rate = sampling_rate(n, batch_size)
    return [np.flatnonzero(rng.random(n) < rate) for _ in range(dp_sgd_steps(n, batch_size, epochs))]


def shuffled_steps(n: int, batch_size: int, epochs: int, rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
    """Keras fit's batches: a fresh permutation each epoch, cut into batch_size pieces (the last one smaller)."""
    steps = []
    for _ in range(epochs):
        order = rng.permutation(n)
        steps += [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return steps


def batches_for(
    rows: list[npt.NDArray[np.int64]], batch_size: int, epochs: int, seeds: list[int], private: bool
) -> Batches:
    per_model, divisors = [], []
    for model_rows, seed in zip(rows, seeds, strict=True):
        rng = np.random.default_rng([seed, 1])
        n = len(model_rows)
        draw = poisson_steps if private else shuffled_steps
        steps = [model_rows[b] for b in draw(n, batch_size, epochs, rng)]
        per_model.append(steps)
        # DP-SGD divides by the expected batch q n (the realised size depends on who is in it, which the
        # accountant does not cover); the baseline by the realised size, as a mean loss does.
        expected = sampling_rate(n, batch_size) * n
        divisors.append(np.full(len(steps), expected) if private else np.array([max(len(b), 1) for b in steps]))
    return _padded(per_model, divisors)


def _per_example_loss(logits: tf.Tensor, labels: tf.Tensor, binary: bool) -> tf.Tensor:
    if binary:
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, logits.dtype), logits=logits[..., 0])
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


_LOOPS: dict[Architecture, Any] = {}


def _compiled_loop(arch: Architecture) -> Any:
    """The traced training loop for one architecture; reused by every later call (a worker traces once)."""
    if arch in _LOOPS:
        return _LOOPS[arch]
    activation = tf.keras.activations.get(arch.activation)
    layers = len(arch.sizes) - 1
    keep = 1.0 - arch.dropout

    def noise_for(model_seed: tf.Tensor, step: tf.Tensor, size: int) -> tf.Tensor:
        seed = tf.stack([model_seed, tf.cast(step, tf.int64)])
        if not arch.secure:
            return tf.random.stateless_normal([size], seed=seed)
        # Four independent draws of std 1/2 sum to std 1 (Holohan and Braghin 2021).
        draws = tf.random.stateless_normal([4, size], seed=seed, stddev=0.5)
        return tf.reduce_sum(draws, axis=0)

    def step(
        t: tf.Tensor,
        params: list[tf.Tensor],
        slots: list[tf.Tensor],
        x: tf.Tensor,
        y: tf.Tensor,
        rows: tf.Tensor,
        example_weights: tf.Tensor,
        bounds: tf.Tensor,
        clip: tf.Tensor,
        noise_std: tf.Tensor,
        noise_seeds: tf.Tensor,
        dropout_seeds: tf.Tensor,
        learning_rate: tf.Tensor,
    ) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        begin, end = bounds[t, 0], bounds[t, 1]
        idx = rows[:, begin:end]  # (K, L)
        weight = example_weights[:, begin:end]
        h = tf.gather(x, idx)  # (K, L, d)
        inputs, pre_activations = [], []
        with tf.GradientTape() as tape:
            for layer in range(layers):
                inputs.append(h)
                z = tf.matmul(h, params[2 * layer]) + params[2 * layer + 1][:, tf.newaxis, :]
                tape.watch(z)
                pre_activations.append(z)
                if layer == layers - 1:
                    break
                h = activation(z)
                if arch.dropout > 0:
                    masks = [
                        tf.random.stateless_uniform(
                            tf.shape(h)[1:], seed=tf.stack([dropout_seeds[k], tf.cast(t, tf.int64) * 64 + layer])
                        )
                        for k in range(arch.models)
                    ]
                    h = h * tf.cast(tf.stack(masks) < keep, h.dtype) / keep
            losses = _per_example_loss(z, tf.gather(y, idx), arch.binary)  # (K, L)
            total = tf.reduce_sum(losses)
        # The loss is a sum over examples, so row i of each gradient belongs to example i alone.
        grads_pre = tape.gradient(total, pre_activations)
        if arch.private:
            squared = tf.zeros_like(losses)
            for a, g in zip(inputs, grads_pre, strict=True):
                g_sq = tf.reduce_sum(tf.square(g), axis=-1)
                squared += (tf.reduce_sum(tf.square(a), axis=-1) + 1.0) * g_sq  # kernel and bias
            limit = clip[:, tf.newaxis]
            weight = weight * limit / tf.maximum(limit, tf.sqrt(squared))
        grads = []
        for a, g in zip(inputs, grads_pre, strict=True):
            weighted = g * weight[..., tf.newaxis]
            grads += [tf.matmul(a, weighted, transpose_a=True), tf.reduce_sum(weighted, axis=1)]
        if arch.noisy:
            sizes = [n for fan_in, fan_out in pairwise(arch.sizes) for n in (fan_in * fan_out, fan_out)]
            total_size = sum(sizes)
            noise = tf.stack([noise_for(noise_seeds[k], t, total_size) for k in range(arch.models)])
            noise = noise * noise_std[:, tf.newaxis]  # z C / (q n), per model
            pieces = tf.split(noise, sizes, axis=1)
            grads = [g + tf.reshape(piece, tf.shape(g)) for g, piece in zip(grads, pieces, strict=True)]
        if arch.optimizer == "sgd":
            return [p - learning_rate * g for p, g in zip(params, grads, strict=True)], slots
        # Adam, as Keras 2.15 applies it.
        iteration = tf.cast(t + 1, tf.float32)
        alpha = learning_rate * tf.sqrt(1.0 - ADAM_BETA_2**iteration) / (1.0 - ADAM_BETA_1**iteration)
        n = len(params)
        m = [m + (g - m) * (1.0 - ADAM_BETA_1) for m, g in zip(slots[:n], grads, strict=True)]
        v = [v + (tf.square(g) - v) * (1.0 - ADAM_BETA_2) for v, g in zip(slots[n:], grads, strict=True)]
        updated = [p - alpha * mi / (tf.sqrt(vi) + ADAM_EPSILON) for p, mi, vi in zip(params, m, v, strict=True)]
        return updated, m + v

    def run(
        params: list[tf.Tensor],
        slots: list[tf.Tensor],
        first_step: tf.Tensor,
        stop_step: tf.Tensor,
        *tensors: tf.Tensor,
    ) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        def body(
            t: tf.Tensor, params: list[tf.Tensor], slots: list[tf.Tensor]
        ) -> tuple[tf.Tensor, list[tf.Tensor], list[tf.Tensor]]:
            new_params, new_slots = step(t, params, slots, *tensors)
            return t + 1, new_params, new_slots

        _, params, slots = tf.while_loop(lambda t, *_: t < stop_step, body, (first_step, params, slots))
        return params, slots

    _LOOPS[arch] = tf.function(run, reduce_retracing=True)
    return _LOOPS[arch]


@dataclass
class LoopState:
    """Where K models stand between calls: pruning trains some epochs, reads validation, then goes on."""

    params: list[tf.Tensor]
    slots: list[tf.Tensor]
    next_step: int


class DenseTrainer:
    """K models of one spec on rows of one data set, trained by the compiled loop in one or more pieces."""

    def __init__(
        self,
        spec: ModelSpec,
        x: npt.NDArray[np.float32],
        y: npt.NDArray[np.int64],
        n_classes: int,
        seeds: list[int],
        *,
        rows: list[npt.NDArray[np.int64]] | None = None,
        clip: list[float] | None = None,
        noise: list[float] | None = None,
        noise_source: NoiseSource = "fast",
    ) -> None:
        if spec.keras_json is not None:
            raise ValueError("the compiled loop trains the built-in MLP only")
        if (clip is None) != (noise is None):
            raise ValueError("give both clip and noise (DP-SGD) or neither (non-private)")
        models = len(seeds)
        rows = rows if rows is not None else [np.arange(len(x)) for _ in range(models)]
        if len(rows) != models or len({len(r) for r in rows}) != 1:
            raise ValueError("each model needs rows, all of one size (they share the step count)")
        private = clip is not None
        clip_values = np.asarray(clip if clip is not None else [1.0] * models, np.float32)
        noise_values = np.asarray(noise if noise is not None else [0.0] * models, np.float32)
        if len(clip_values) != models or len(noise_values) != models:
            raise ValueError("one clip and one noise multiplier per model")
        self.spec, self.n_classes, self.models = spec, n_classes, models
        self.n = len(rows[0])
        self.sizes = [x.shape[1], *spec.hidden, 1 if n_classes == 2 else n_classes]
        self.arch = Architecture(
            sizes=tuple(self.sizes),
            activation=spec.activation,
            dropout=spec.dropout,
            optimizer=spec.optimizer,
            binary=n_classes == 2,
            models=models,
            private=private,
            noisy=private and bool(np.any(noise_values > 0)),
            secure=noise_source == "secure",
        )
        self.batches = batches_for(rows, spec.batch_size, spec.epochs, seeds, private)
        if noise_source == "secure":
            noise_seeds = [int.from_bytes(os.urandom(8), "little") >> 1 for _ in seeds]
        else:
            noise_seeds = [int(np.random.default_rng([s, 2]).integers(0, 2**62)) for s in seeds]
        dropout_seeds = [int(np.random.default_rng([s, 3]).integers(0, 2**62)) for s in seeds]
        expected_batch = sampling_rate(self.n, spec.batch_size) * self.n
        self.tensors = (
            tf.constant(x, tf.float32),
            tf.constant(y.astype(np.int32)),
            tf.constant(self.batches.rows),
            tf.constant(self.batches.weights),
            tf.constant(self.batches.bounds),
            tf.constant(clip_values),
            tf.constant(noise_values * clip_values / np.float32(expected_batch)),
            tf.constant(noise_seeds, tf.int64),
            tf.constant(dropout_seeds, tf.int64),
            tf.constant(spec.effective_learning_rate, tf.float32),
        )
        starts = [initial_weights(self.sizes, s) for s in seeds]
        params = [tf.constant(np.stack(column)) for column in zip(*starts, strict=True)]
        slots = [tf.zeros_like(p) for p in params] * 2 if spec.optimizer == "adam" else []
        self.state = LoopState(params=params, slots=slots, next_step=0)

    @property
    def steps(self) -> int:
        return self.batches.steps

    def train_until(self, stop_step: int) -> None:
        """Run steps up to `stop_step` (exclusive) from where the last call stopped."""
        stop_step = min(stop_step, self.steps)
        if stop_step <= self.state.next_step:
            return
        run = _compiled_loop(self.arch)
        params, slots = run(
            self.state.params,
            self.state.slots,
            tf.constant(self.state.next_step, tf.int64),
            tf.constant(stop_step, tf.int64),
            *self.tensors,
        )
        self.state = LoopState(params=list(params), slots=list(slots), next_step=stop_step)

    def train(self) -> list[DenseWeights]:
        self.train_until(self.steps)
        return self.weights()

    def weights(self) -> list[DenseWeights]:
        arrays = [p.numpy() for p in self.state.params]
        return [DenseWeights([a[k] for a in arrays], self.spec.activation) for k in range(self.models)]
