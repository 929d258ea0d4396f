"""The network as training runs it: each frozen convolution and the frozen BatchNormalization
after it computed as one convolution.

A frozen BatchNormalization runs in inference mode (Keras 3), where it is an affine map of its
input: y = (x - mean) * gamma / sqrt(variance + epsilon) + beta. After a convolution it folds into
the convolution's kernel and bias, exactly. Keras computes it instead as separate element-wise
operations over every activation of the frozen trunk (90% of ResNet-101's layers with the
original's recipe), in float32 even under mixed_bfloat16, with a cast to float32 and back around
each one: that is where a bf16 training step lost what its faster convolutions gained
(bench/RESULTS.md, "bf16 training that pays").

    trainer, pairs = folded_for_training(model)  # the same variables, fewer operations
    trainer.compile(...); trainer.fit(...)       # trains `model`'s weights; save `model`

The trainer shares every variable with the model (the folded convolutions read the frozen
convolution's and BatchNormalization's own variables at each step), so training it trains the
model, and the saved model stays the standard one. Layers that are trainable are the model's own.
"""
from __future__ import annotations

import keras
from keras import layers, ops


class FoldedConvolution(layers.Layer):
    """A frozen Conv2D followed by its frozen BatchNormalization, as one convolution with a bias.

    The folded kernel and bias are made from the two layers' variables in float32 at each call (a
    multiply over the kernel, small beside the convolution), so they follow the variables
    whatever restores them (a resumed run's backup); the convolution then runs in the layer's
    compute dtype (bfloat16 under mixed_bfloat16) with its bias added in one fused operation.
    """

    def __init__(self, convolution: layers.Conv2D, batchnorm: layers.BatchNormalization, **kwargs):
        # autocast=False: the variables are read in float32 for the folding, cast once after it
        super().__init__(name=f"{convolution.name}_bn_folded", trainable=False,
                         dtype=convolution.dtype_policy, autocast=False, **kwargs)
        self.convolution, self.batchnorm = convolution, batchnorm

    def folded_kernel_and_bias(self):
        conv, bn = self.convolution, self.batchnorm
        scale = ops.rsqrt(ops.cast(bn.moving_variance, "float32") + bn.epsilon)
        if bn.scale:
            scale = scale * ops.cast(bn.gamma, "float32")
        bias = -ops.cast(bn.moving_mean, "float32")
        if conv.use_bias:
            bias = bias + ops.cast(conv.bias, "float32")
        bias = bias * scale
        if bn.center:
            bias = bias + ops.cast(bn.beta, "float32")
        return ops.cast(conv.kernel, "float32") * scale, bias

    def call(self, inputs):
        import tensorflow as tf
        kernel, bias = self.folded_kernel_and_bias()
        conv, dtype = self.convolution, self.compute_dtype
        outputs = ops.conv(ops.cast(inputs, dtype), ops.cast(kernel, dtype), strides=conv.strides,
                           padding=conv.padding, dilation_rate=conv.dilation_rate,
                           data_format=conv.data_format)
        # BiasAdd, not an Add: oneDNN fuses Conv2D + BiasAdd (+ the ReLU after it) into one kernel
        return tf.nn.bias_add(outputs, ops.cast(bias, dtype))

    def compute_output_shape(self, input_shape):
        return self.convolution.compute_output_shape(input_shape)


def foldable_pairs(model: keras.Model) -> dict:
    """{BatchNormalization layer: the Conv2D it follows} for the pairs that fold exactly: both
    frozen, the BatchNormalization over the channels (last axis) of a plain Conv2D with no
    activation, and the convolution's output read by that BatchNormalization only (not by another
    layer, nor an output of the model). The graph is read from the layers' inbound nodes, as
    Keras's own cloning reads it."""
    readers: dict[int, int] = {}
    outputs = {id(tensor) for tensor in model.outputs}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for parent in node.parent_nodes:
                readers[id(parent.operation)] = readers.get(id(parent.operation), 0) + 1
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization) or layer.trainable:
            continue
        if len(layer._inbound_nodes) != 1 or len(layer._inbound_nodes[0].parent_nodes) != 1:
            continue
        conv = layer._inbound_nodes[0].parent_nodes[0].operation
        if (type(conv) is layers.Conv2D and not conv.trainable and readers.get(id(conv)) == 1
                and len(conv._inbound_nodes) == 1 and id(conv.output) not in outputs
                and conv.data_format == "channels_last"
                and layer.axis in (-1, 3) and conv.activation is keras.activations.linear
                and conv.groups == 1):
            pairs[layer] = conv
    return pairs


def is_plain_functional(layer) -> bool:
    """A model made by keras.Model(inputs, outputs), as keras.applications' ResNets are; not a
    subclass of it (keras-hub's backbones), whose cloning its own class may not allow."""
    return isinstance(layer, keras.Model) and type(layer).__name__ == "Functional"


def fold_functional(model: keras.Model) -> tuple[keras.Model, int]:
    """A Functional model with its foldable pairs folded (and its nested Functional models'),
    every other layer shared; and how many pairs were folded."""
    folded = 0
    pairs = foldable_pairs(model)
    folded_convs = {id(conv): bn for bn, conv in pairs.items()}
    folded_bns = {id(bn) for bn in pairs}
    nested = {}
    for layer in model.layers:
        if is_plain_functional(layer):
            nested[id(layer)], count = fold_functional(layer)
            folded += count
    if not pairs and not folded:
        return model, 0

    def clone(layer):
        if id(layer) in folded_convs:
            return FoldedConvolution(layer, folded_convs[id(layer)])
        return nested.get(id(layer), layer)

    def call(layer, *args, **kwargs):
        if id(layer) in folded_bns:  # folded into the convolution before it, which gave `args[0]`
            return args[0]
        return layer(*args, **kwargs)

    trainer = keras.models.clone_model(model, clone_function=clone, call_function=call)
    return trainer, folded + len(pairs)


def folded_for_training(model: keras.Model) -> tuple[keras.Model, int]:
    """The model to train in place of `model`: its frozen convolution + BatchNormalization pairs
    folded, every variable shared; and the number of pairs folded (0: `model` itself, as for a
    model that is not a plain functional one)."""
    return fold_functional(model) if is_plain_functional(model) else (model, 0)


def is_folded(model: keras.Model) -> bool:
    """Whether `model` (or a model nested in it) holds folded convolutions: a trainer from
    folded_for_training, whose backups are in its layout."""
    return any(isinstance(layer, FoldedConvolution)
               or (isinstance(layer, keras.Model) and is_folded(layer)) for layer in model.layers)
