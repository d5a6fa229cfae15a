"""Single-pass DP-SGD for stacks of Dense (and Dropout) layers.

TF Privacy's fast clipping runs the model twice per step: one forward and backward pass for the per-example
gradient norms, then a second full pass on the re-weighted loss. For a Dense layer both come from the same two
tensors, the layer's input a and the gradient g of the loss with respect to its pre-activation: the
per-example kernel gradient is a_i g_i^T, so its squared norm is |a_i|^2 |g_i|^2, and the clipped sum is
a^T (w * g). One forward and one backward pass therefore give both ("book-keeping" clipping, Bu et al. 2023).
The result equals TF Privacy's; tests/tuning/test_fast_clipping.py checks it against the DP Keras optimizer.
"""

from __future__ import annotations

from types import SimpleNamespace

import tensorflow as tf

DENSE = tf.keras.layers.Dense
WEIGHTLESS = (tf.keras.layers.Dropout, tf.keras.layers.InputLayer)


def supports_single_pass(model: tf.keras.Model) -> bool:
    """True for a Sequential of Dense and Dropout layers on 2-D inputs, with no regularisation losses."""
    if not isinstance(model, tf.keras.Sequential) or model.losses:
        return False
    shape = model.input_shape
    if not isinstance(shape, tuple) or len(shape) != 2:
        return False
    return all(isinstance(layer, DENSE) or isinstance(layer, WEIGHTLESS) for layer in model.layers) and any(
        isinstance(layer, DENSE) for layer in model.layers
    )


class SinglePassDPSequential(tf.keras.Sequential):
    """A Sequential model whose train_step clips each example's gradient to l2_norm_clip, sums, adds
    N(0, (noise_multiplier * l2_norm_clip)^2) per coordinate, and divides by the expected batch size q * n (as
    Opacus does): the realised size of a Poisson batch depends on who is in it, which the accountant does not
    cover. An empty batch is a noise-only step."""

    def __init__(
        self,
        layers: list[tf.keras.layers.Layer],
        l2_norm_clip: float,
        noise_multiplier: float,
        per_example_loss: tf.keras.losses.Loss,
        expected_batch_size: float = 1.0,
        **kwargs: object,
    ) -> None:
        super().__init__(layers=layers, **kwargs)
        # Variables, not Python floats, so the traced step serves any (clip, noise): a worker reuses one
        # compiled model across trials (train.py). A plain namespace keeps Keras from counting them as weights.
        self.dp = SimpleNamespace(
            clip=tf.Variable(0.0, trainable=False),
            stddev=tf.Variable(0.0, trainable=False),
            expected_batch=tf.Variable(1.0, trainable=False),
        )
        self.set_privacy(l2_norm_clip, noise_multiplier, expected_batch_size)
        self.per_example_loss = per_example_loss  # reduction NONE: one value per example

    def set_privacy(self, l2_norm_clip: float, noise_multiplier: float, expected_batch_size: float) -> None:
        self.dp.clip.assign(float(l2_norm_clip))
        self.dp.stddev.assign(float(noise_multiplier) * float(l2_norm_clip))
        self.dp.expected_batch.assign(float(expected_batch_size))

    def _forward(self, x: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor], list[tf.Tensor]]:
        inputs, pre_activations, h = [], [], x
        for layer in self.layers:
            if isinstance(layer, DENSE):
                inputs.append(h)
                z = tf.matmul(h, layer.kernel)
                if layer.use_bias:
                    z = tf.nn.bias_add(z, layer.bias)
                pre_activations.append(z)
                h = layer.activation(z)
            else:
                h = layer(h, training=True)
        return h, inputs, pre_activations

    def noise_size(self) -> int:
        return int(sum(v.shape.num_elements() for v in self.trainable_variables))

    def train_step(self, data: tuple[tf.Tensor, ...]) -> dict[str, tf.Tensor]:
        """`data` is (x, y) or (x, y, noise): noise of shape [noise_size()] drawn N(0, (z C)^2) by the input
        pipeline, which draws it on another core while this step runs (see train.poisson_dataset)."""
        x, y = data[0], data[1]
        pipeline_noise = data[2] if len(data) > 2 else None
        with tf.GradientTape() as tape:
            out, inputs, pre_activations = self._forward(x)
            losses = self.per_example_loss(y, out)
            total = tf.reduce_sum(losses)
        # The loss is a sum over examples, so row i of each gradient belongs to example i alone.
        grads_pre = tape.gradient(total, pre_activations)
        trainable = [
            (layer, a, g)
            for layer, a, g in zip(
                [layer for layer in self.layers if isinstance(layer, DENSE)], inputs, grads_pre, strict=True
            )
            if layer.trainable
        ]
        squared = tf.zeros_like(losses)
        for layer, a, g in trainable:
            g_sq = tf.reduce_sum(tf.square(g), axis=1)
            squared += tf.reduce_sum(tf.square(a), axis=1) * g_sq + (g_sq if layer.use_bias else 0.0)
        clip = tf.cast(self.dp.clip, losses.dtype)
        weights = clip / tf.maximum(clip, tf.sqrt(squared))
        batch = tf.cast(self.dp.expected_batch, losses.dtype)
        grads = {}
        for layer, a, g in trainable:
            weighted = g * weights[:, tf.newaxis]
            grads[id(layer.kernel)] = tf.matmul(a, weighted, transpose_a=True)
            if layer.use_bias:
                grads[id(layer.bias)] = tf.reduce_sum(weighted, axis=0)
        noisy, offset = [], 0
        for var in self.trainable_variables:
            summed = grads[id(var)]
            if pipeline_noise is not None:
                size = var.shape.num_elements()
                summed += tf.reshape(pipeline_noise[offset : offset + size], var.shape)
                offset += size
            else:  # a graph branch, so a noise-0 trial draws nothing
                stddev = tf.cast(self.dp.stddev, summed.dtype)
                summed = tf.cond(
                    stddev > 0,
                    lambda s=summed, sd=stddev: s + tf.random.normal(tf.shape(s), dtype=s.dtype) * sd,
                    lambda s=summed: s,
                )
            noisy.append(summed / batch)
        self.optimizer.apply_gradients(zip(noisy, self.trainable_variables, strict=True))
        # The mean of an empty (noise-only) batch is NaN; report 0 so Keras' running loss stays readable.
        count = tf.cast(tf.shape(losses)[0], losses.dtype)
        return {"loss": tf.math.divide_no_nan(tf.reduce_sum(losses), count)}
