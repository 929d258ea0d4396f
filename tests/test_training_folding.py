"""gacrystal.training.folding: the frozen trunk's BatchNormalization folded into its convolutions
for training, the same variables, the same answers and the same steps as the model itself."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from gacrystal.model import build_classifier  # noqa: E402
from gacrystal.training.folding import foldable_pairs, folded_for_training  # noqa: E402


def classifier(trainable_fraction=0.1, dropout=(0.0, 0.0)):
    """A small ResNet-50 whose BatchNorm layers hold statistics far from 0 and 1 (freshly built
    ones would fold into a no-op, and a wrong fold would go unseen)."""
    keras.utils.set_random_seed(3)
    model = build_classifier("ResNet50", None, 32, trainable_fraction, dropout, bn_momentum=0.9)
    rng = np.random.default_rng(0)
    for layer in model.get_layer("resnet50").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n),
                               rng.normal(0, 0.3, n), rng.uniform(0.5, 2.0, n)])
    return model


def images(n=6, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype(np.float32)


def test_the_folded_network_gives_the_models_answers_with_the_same_variables():
    model = classifier()
    trainer, folded = folded_for_training(model)
    backbone = model.get_layer("resnet50")
    frozen_pairs = foldable_pairs(backbone)
    assert folded == len(frozen_pairs) == 48  # ResNet-50's 53 pairs but the 5 left trainable
    assert all(not bn.trainable and not conv.trainable for bn, conv in frozen_pairs.items())
    assert {id(v) for v in trainer.weights} == {id(v) for v in model.weights}
    assert len(trainer.weights) == len(model.weights)
    x = images()
    np.testing.assert_allclose(trainer.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)
    # and each folded convolution computes what its convolution and BatchNorm computed
    conv, bn = next((c, b) for b, c in frozen_pairs.items() if c.name == "conv3_block2_1_conv")
    inner = keras.Model(backbone.input, backbone.get_layer(conv.name).input)
    features = inner.predict(x, verbose=0)
    expected = bn(conv(features), training=False)
    fold = next(layer for layer in trainer.get_layer("resnet50").layers
                if getattr(layer, "convolution", None) is conv)
    np.testing.assert_allclose(fold(features), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.training
def test_a_step_on_the_folded_network_is_the_step_on_the_model_and_trains_the_model():
    x, y = images(8), np.array([0, 1] * 4, np.float32)

    def one_step(fold: bool) -> tuple[list, list, list]:
        model = classifier()
        trainer = folded_for_training(model)[0] if fold else model
        trainer.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                        loss="binary_crossentropy")
        before = [w.numpy().copy() for w in model.weights]
        trainer.train_on_batch(x, y)
        return model.weights, before, [w.numpy() for w in model.weights]

    _, before, plain = one_step(fold=False)
    weights, _, folded = one_step(fold=True)
    changed = [not np.array_equal(b, a) for b, a in zip(before, folded)]
    assert any(changed), "training the folded network left the model's weights as they were"
    for weight, b, p, f in zip(weights, before, plain, folded):
        if not weight.trainable and "moving" not in weight.path:  # frozen: untouched
            np.testing.assert_array_equal(f, b)
        # the same step, up to the float rounding of another order of operations
        step, step_folded = p - b, f - b
        assert np.linalg.norm(step_folded - step) <= 1e-3 * np.linalg.norm(step) + 1e-7, weight.path


def test_trainable_batchnorm_and_convolutions_that_feed_two_layers_are_not_folded():
    model = classifier(trainable_fraction=1.0)  # everything trainable: nothing folds
    assert folded_for_training(model) == (model, 0)
    inputs = keras.Input((8, 8, 3))
    shared = keras.layers.Conv2D(4, 3, padding="same", trainable=False)(inputs)
    a = keras.layers.BatchNormalization(trainable=False)(shared)
    b = keras.layers.ReLU()(shared)  # the convolution's output is read twice
    two_readers = keras.Model(inputs, keras.layers.Add()([a, b]))
    assert foldable_pairs(two_readers) == {}
    conv = keras.layers.Conv2D(4, 3, trainable=False)(inputs)
    also_an_output = keras.Model(inputs, [keras.layers.BatchNormalization(trainable=False)(conv),
                                          conv])
    assert foldable_pairs(also_an_output) == {}
    alone = keras.Model(inputs, keras.layers.BatchNormalization(trainable=False)(conv))
    assert len(foldable_pairs(alone)) == 1  # the same pair, read once: folded


def test_folding_under_mixed_bfloat16_computes_in_bfloat16_and_agrees_with_float32():
    x = images()
    expected = classifier().predict(x, verbose=0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        trainer, folded = folded_for_training(classifier())
        fold = next(layer for layer in trainer.get_layer("resnet50").layers
                    if hasattr(layer, "convolution"))
        assert fold.compute_dtype == "bfloat16" and fold.variable_dtype == "float32"
        got = trainer.predict(x, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert got.dtype == np.float32  # P(PG) stays float32
    np.testing.assert_allclose(got, expected, atol=0.05)
