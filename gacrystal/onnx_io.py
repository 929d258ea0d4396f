"""ONNX files: running them (ONNX Runtime or OpenVINO), and exporting a Keras model in little
memory.

    model = open_model("runs/RUN/model.onnx", engine="auto")  # .run(x), .card, .engine
    session = open_session("runs/RUN/model.onnx")              # ONNX Runtime's own session
    export_onnx(scorer, "runs/RUN/model.onnx", card={"backbone": "ResNet101", ...})

The engine (the setting `engine`): "auto" runs a file on OpenVINO where the openvino package is
installed (pip install -e ".[openvino]"), else on ONNX Runtime; "onnxruntime" or "openvino" pick
one. OpenVINO reads our .onnx files as they are, model card included, with any batch size. An
int8 file (GAquantize.py) runs in int8 on either engine, its float parts in fp32. An fp32 file
runs in fp32, as ONNX Runtime runs it (P(PG) within 1e-5), unless bf16 is asked for
("openvino-bf16", on CPUs that have it): 1.4x as fast on a Zen 4 EPYC, but it moved the demo
model's P(PG) by up to 0.1 and its ood_scores by up to 3%, and its answers would depend on the CPU
that runs them, so it is an opt-in, not the default (measured: bench/RESULTS.md).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gacrystal.cli import quiet_logger
from gacrystal.errors import UserError

OPSET = 17
CARD_KEY = "ga_model"  # where our .onnx files keep their model card (ONNX metadata_props)
ENGINES = ("auto", "onnxruntime", "openvino", "openvino-bf16")  # the setting `engine`
OPENVINO_INSTALL = 'pip install -e ".[openvino]"'


def open_session(path: str | Path, options=None):
    """An ONNX Runtime session on the CPU (the one place sessions are made)."""
    import onnxruntime as ort
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class OnnxModel:
    """An .onnx file opened by one engine: what a classifier needs to know of it, and `run`.

    Attributes:
        run: a float32 batch -> the file's outputs, in its order, as NumPy arrays.
        input_shape: the image input's shape; None where a dimension is dynamic.
        outputs: how many outputs the file has.
        card: our model card (the metadata under CARD_KEY), or None (the original project's file).
        engine: what runs it and in which precision: "onnxruntime fp32", "openvino bf16", ...
    """
    run: Callable
    input_shape: tuple
    outputs: int
    card: dict | None
    engine: str


def openvino_installed() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def check_engine(engine: str):
    """Refuses a value of the setting `engine` that is not one of ENGINES (nothing imported)."""
    if engine not in ENGINES:
        raise UserError(f"engine must be one of {', '.join(ENGINES)}. Received: engine={engine}")


def resolve_engine(engine: str) -> str:
    """The engine the setting `engine` asks for, resolved: "auto" is "openvino" where the
    openvino package imports, else "onnxruntime"."""
    check_engine(engine)
    if engine == "auto":
        return "openvino" if openvino_installed() else "onnxruntime"
    if engine.startswith("openvino") and not openvino_installed():
        raise UserError(f"engine={engine} needs OpenVINO: {OPENVINO_INSTALL}, or pass "
                        "--engine onnxruntime")
    return engine


def open_model(path: str | Path, engine: str = "auto") -> OnnxModel:
    """An .onnx file ready to run on the CPU with `engine` (one of ENGINES)."""
    engine = resolve_engine(engine)
    if engine == "onnxruntime":
        return onnxruntime_model(path)
    return openvino_model(path, bf16=engine == "openvino-bf16")


def precision_of(card: dict | None, float_precision: str) -> str:
    """int8 for the int8 copy GAquantize.py wrote (its card says so), else `float_precision`."""
    return "int8" if card and card.get("quantized") else float_precision


def onnxruntime_model(path: str | Path) -> OnnxModel:
    session = open_session(path)
    image = session.get_inputs()[0]
    metadata = session.get_modelmeta().custom_metadata_map
    card = json.loads(metadata[CARD_KEY]) if CARD_KEY in metadata else None
    return OnnxModel(lambda x: session.run(None, {image.name: x}),
                     tuple(d if isinstance(d, int) else None for d in image.shape),
                     len(session.get_outputs()), card,
                     f"onnxruntime {precision_of(card, 'fp32')}")


def read_with_openvino(path: str | Path):
    """OpenVINO's ONNX reader on the file (Core.read_model would try its other readers too,
    TensorFlow's among them, on a damaged file). Its errors end with what went wrong."""
    from openvino.frontend import FrontEndManager
    reader = FrontEndManager().load_by_framework("onnx")
    try:
        return reader.convert(reader.load(str(path)))
    except Exception as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise ValueError(lines[-1] if lines else repr(error)) from None


def openvino_model(path: str | Path, bf16: bool = False) -> OnnxModel:
    """OpenVINO's CPU plugin on the file as it is (its ONNX reader keeps the metadata under
    "framework"). The precision is set, not left to the plugin: on CPUs with bf16 its default is
    bf16. bf16 where asked and the CPU has it (else fp32); an int8 file's float parts in fp32."""
    import openvino as ov
    core = ov.Core()
    model = read_with_openvino(path)
    where = ["framework", CARD_KEY]
    card = json.loads(model.get_rt_info(where).astype(str)) if model.has_rt_info(where) else None
    bf16 = bf16 and "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    bf16 = bf16 and not (card and card.get("quantized"))
    compiled = core.compile_model(model, "CPU",
                                  {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"})
    shape = compiled.inputs[0].get_partial_shape()

    def run(x):  # a request of its own per call: safe from several threads, as ONNX Runtime is
        results = compiled.infer_new_request({0: x})
        return [results[output] for output in compiled.outputs]
    return OnnxModel(run, tuple(d.get_length() if d.is_static else None for d in shape),
                     len(compiled.outputs), card,
                     f"openvino {precision_of(card, 'bf16' if bf16 else 'fp32')}")


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
