"""ONNX files: opening them with ONNX Runtime, and exporting a Keras model in little memory.

    session = open_session("runs/RUN/model.onnx")
    export_onnx(scorer, "runs/RUN/model.onnx", card={"backbone": "ResNet101", ...})

Why not Keras's `model.export(format="onnx")`: it freezes the weights into the TensorFlow graph as
constants, and tf2onnx then rebuilds every constant's protobuf on each of its optimisation passes.
With protobuf's C++ arenas none of those copies is freed until the conversion ends: exporting the
ResNet-101 scoring model at 224 px peaked at 12.5 GB (bench/RESULTS.md). Here the weights enter the
traced function as inputs, so tf2onnx converts a graph of a few megabytes; the weights are attached
afterwards as initializers, and ONNX Runtime's basic optimisations (hardware-independent, standard
ONNX operators only) then fold the batch normalisations into the convolutions and the weight
transposes into the weights, as a converter would. Same outputs, a fraction of the memory.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from gacrystal.cli import quiet_logger

OPSET = 17
CARD_KEY = "ga_model"  # where our .onnx files keep their model card (ONNX metadata_props)


def open_session(path: str | Path, options=None):
    """An ONNX Runtime session on the CPU (the one place sessions are made)."""
    import onnxruntime as ort
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_onnx(model, path: str | Path, card: dict | None = None):
    """Writes `model` (a called Keras model with one image input) to `path` as one .onnx file
    with a dynamic batch size, its outputs in the model's order, and `card` in its metadata."""
    with tempfile.TemporaryDirectory() as work:
        raw = Path(work) / "converted.onnx"
        save_with_weights(convert_graph(model), model, raw)
        optimized = Path(work) / "optimized.onnx"
        optimize(raw, optimized)
        add_model_card(optimized, card or {}, Path(path))


def weight_name(index: int) -> str:
    return f"weight_{index}"


def model_weights(model) -> tuple[list, list]:
    return list(model.trainable_variables), list(model.non_trainable_variables)


def convert_graph(model):
    """tf2onnx's conversion of the model's inference pass with the weights as graph inputs."""
    import tensorflow as tf
    import tf2onnx
    trainable, frozen = model_weights(model)
    specs = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image")]
    specs += [tf.TensorSpec(v.shape, v.dtype, name=weight_name(i))
              for i, v in enumerate(trainable + frozen)]

    @tf.function(input_signature=specs)
    def inference(image, *weights):
        outputs, _ = model.stateless_call(list(weights[:len(trainable)]),
                                          list(weights[len(trainable):]), image, training=False)
        return outputs

    with quiet_logger("tf2onnx"):  # it logs each optimisation pass
        proto, _ = tf2onnx.convert.from_function(inference, input_signature=specs, opset=OPSET)
    return proto


def save_with_weights(proto, model, path: Path):
    """Turns the weight inputs into initializers holding the model's values (those the graph
    uses: a dropout layer's random-seed state, for one, is not) and saves the model."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    trainable, frozen = model_weights(model)
    values = {weight_name(i): v for i, v in enumerate(trainable + frozen)}
    used = {name for node in proto.graph.node for name in node.input}
    for graph_input in [i for i in proto.graph.input if i.name in values]:
        proto.graph.input.remove(graph_input)
        if graph_input.name in used:
            array = np.asarray(values[graph_input.name])
            proto.graph.initializer.append(numpy_helper.from_array(array, graph_input.name))
    onnx.save(proto, str(path))


def optimize(source: Path, target: Path):
    """ONNX Runtime's basic graph optimisations, saved: constant folding and Conv+BatchNorm fusion."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    open_session(source, options)


def add_model_card(source: Path, card: dict, target: Path):
    """Saves `source` as `target` with `card` in its metadata, so the file describes itself."""
    import onnx
    model = onnx.load(str(source))
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card)
    onnx.save(model, str(target))
