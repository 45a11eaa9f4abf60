#!/usr/bin/env python3
"""Export a trained Keras Conv1D model to a widen model directory.

    python3 tools/keras_export.py MODEL.keras OUT_DIR

writes OUT_DIR/model.json (the versioned widen envelope around the architecture spec, format
version 2) and OUT_DIR/weights.safetensors (little-endian float32, tensors named
`<layer name>.<param>`, each with a CRC-32 in the file metadata), which every `widen` command
loads directly (`widen predict`, `widen expand`, `widen summary`).

Needs only `keras` (3.x, any backend) and `numpy`; the safetensors file is written by hand.

Models: Sequential and functional models with one input and one output, as any graph of
layers: branches, merges, one tensor feeding several layers. The spec lists the layers in a
topological order (each after every layer it reads; the model's output last), each with
`inbound`: the names of the tensors it is called on, in Keras' order (the input's name or
earlier layers' names). Chains are written the same way. Refused: several inputs or outputs, a
layer called more than once (shared weights), a layer called with extra arguments
(`training=True`, `mask`, `initial_state`), raw `keras.ops` calls in the graph, and a layer that
does not lead to the output.

Nested models (a Sequential or functional model used as a layer) are flattened into the outer
graph: their layers are spliced in, the sub-model's input rewired to what the sub-model was
called on, and what read the sub-model's output reads its last layer. A nested layer keeps its
own name unless another layer of the flattened graph (or the input) has the same name; then
every nested layer with that name is written as `<submodel>/<name>` (`<outer>/<inner>/<name>`
for deeper nesting), and the outer model's own layers keep theirs.

Files: Keras 3 `.keras` files; legacy `.h5` files (through `keras.models.load_model`, which reads
both Keras 2 and Keras 3 HDF5 models); and Keras 2.x native `.keras` files (Keras 2.13-2.15),
which Keras 3 refuses: on a load failure the exporter patches a temporary copy of the archive's
`config.json` (InputLayer `batch_input_shape` -> `batch_shape`, a first layer's
`batch_input_shape` -> `input_shape`, Keras 2 module paths such as
`keras.src.engine.functional`, BatchNormalization `axis: [2]` -> `2`, the recurrent layers'
`time_major: false`), loads that, and says so on stderr in one line.

Layers:
  InputLayer; Conv1D (padding valid/same/causal, strides, dilation_rate, groups, activation,
  use_bias, data_format); BatchNormalization (on the channel axis); MaxPooling1D,
  AveragePooling1D; GlobalMaxPooling1D, GlobalAveragePooling1D (keepdims=False); Dense (on flat
  input); Dropout; Flatten; Activation, ELU, LeakyReLU, Softmax (axis -1) and ReLU without
  max_value/threshold (as an activation layer).
  Merges: Add, Subtract, Multiply, Average, Maximum, Minimum (operands of one shape, no
  broadcasting), Concatenate (any axis but the batch axis).
  Recurrent: LSTM and GRU (reset_after True or False) with activation, recurrent_activation,
  use_bias, return_sequences; weights in Keras' layouts and gate orders (LSTM i, f, c, o; GRU
  z, r, h). Refused: go_backwards, stateful, return_state. dropout and recurrent_dropout are
  exported (inference ignores them; the spec does not carry them).
  Shape: ZeroPadding1D, Cropping1D, UpSampling1D, Reshape (to a rank-1 or rank-2 shape per
  example), Permute.
  Other: SpatialDropout1D (rate; identity at inference), ReLU with max_value or threshold (type
  `relu`), PReLU (alpha in Keras' shape: the input shape without the batch axis, shared axes
  set to 1), LayerNormalization (over the last axis only; rms_scaling=False).
  In a channels_first model, LSTM, GRU, ZeroPadding1D, Cropping1D, UpSampling1D, PReLU,
  LayerNormalization, Reshape, Permute and Concatenate are refused on sequences (Keras applies
  them to the axes as laid out, so their meaning depends on the layout); the element-wise merges,
  ReLU and SpatialDropout1D are accepted.
Activations: linear, relu, leaky_relu, elu, gelu, tanh, sigmoid, softmax, swish/silu.

Anything else stops the export with a one-line message naming the layer, its class and the
option, and exit code 1; nothing is written. A file Keras cannot load is reported in one line
(the exception's type and the first line of its message). Regularizers, constraints and
initializers are ignored: they do not change what a trained model computes.
"""
import json
import os
import shutil
import struct
import sys
import tempfile
import warnings
import zipfile
import zlib

FORMAT = "widen-model"
VERSION = 2
WEIGHTS_FILE = "weights.safetensors"
MODEL_FILE = "model.json"

SUPPORTED_LAYERS = (
    "InputLayer, Conv1D, BatchNormalization, MaxPooling1D, AveragePooling1D, "
    "GlobalMaxPooling1D, GlobalAveragePooling1D, Dense, Dropout, SpatialDropout1D, Flatten, "
    "Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax, Add, Subtract, Multiply, Average, "
    "Maximum, Minimum, Concatenate, LSTM, GRU, ZeroPadding1D, Cropping1D, UpSampling1D, "
    "LayerNormalization, Reshape, Permute"
)
SUPPORTED_ACTIVATIONS = "linear, relu, leaky_relu, elu, gelu, tanh, sigmoid, softmax, swish, silu"

MERGES = {
    "Add": "add",
    "Subtract": "subtract",
    "Multiply": "multiply",
    "Average": "average",
    "Maximum": "maximum",
    "Minimum": "minimum",
}
MULTI_INPUT = set(MERGES) | {"Concatenate"}
INPUT_REF = -1  # the model input in the traced graph (other refs index the layer list)


class ExportError(Exception):
    """The model cannot be exported; the message names the layer and the option."""


def _fail(layer, option, detail):
    raise ExportError(f"layer '{layer.name}' ({type(layer).__name__}): {option}: {detail}")


def _one_line(e, limit=200):
    """An exception as `Type: first line of its message`, at most `limit` characters of text.

    Keras' deserialisation errors wrap the cause in pages of config; the cause comes after the
    last 'Exception encountered:' and before ' Full object config:'."""
    msg = str(e)
    if "Exception encountered:" in msg:
        msg = msg.rsplit("Exception encountered:", 1)[1]
    msg = msg.split(" Full object config:", 1)[0]
    line = next((l.strip() for l in msg.splitlines() if l.strip()), "")
    if len(line) > limit:
        line = line[: limit - 3] + "..."
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


# ------------------------------------------------------------------------------------------
# safetensors, by hand


def write_safetensors(path, tensors):
    """Writes `tensors` (list of (name, float32 C-order numpy array)) as safetensors.

    Layout: u64 little-endian header length, the JSON header (padded with spaces to a multiple
    of 8 bytes), then every tensor's raw little-endian bytes back to back, in header order.
    """
    import numpy as np

    header = {}
    metadata = {}
    chunks = []
    offset = 0
    for name, array in tensors:
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": [int(d) for d in array.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        metadata[f"widen.crc32.{name}"] = f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"
        chunks.append(data)
        offset += len(data)
    if metadata:
        header = {"__metadata__": metadata, **header}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    _write_atomically(path, struct.pack("<Q", len(text)) + text + b"".join(chunks))


def _write_atomically(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------
# loading, including Keras 2.x native .keras files


def _patch_keras2_config(config):
    """Rewrites a Keras 2.x `config.json` (parsed) in place for Keras 3; returns what changed."""
    changes = []

    def note(what):
        if what not in changes:
            changes.append(what)

    def layer(obj, first_in_sequential):
        cls = obj.get("class_name")
        cfg = obj.get("config")
        module = obj.get("module")
        if isinstance(module, str) and (module.startswith("keras.engine")
                                        or module.startswith("keras.src.engine")):
            new = {"Functional": "keras.src.models.functional"}.get(cls, "keras")
            note(f"module {module} -> {new}")
            obj["module"] = new
        if not isinstance(cfg, dict):
            return
        if "batch_input_shape" in cfg:
            shape = cfg.pop("batch_input_shape")
            if cls == "InputLayer":
                cfg["batch_shape"] = shape
                note("InputLayer batch_input_shape -> batch_shape")
            elif first_in_sequential and shape is not None:
                cfg["input_shape"] = list(shape)[1:]
                note(f"{cls} batch_input_shape -> input_shape")
            else:
                note(f"{cls} batch_input_shape dropped")
        if cls == "BatchNormalization" and isinstance(cfg.get("axis"), list) \
                and len(cfg["axis"]) == 1:
            cfg["axis"] = cfg["axis"][0]
            note("BatchNormalization axis [n] -> n")
        if "time_major" in cfg and cfg["time_major"] is False:
            del cfg["time_major"]
            note(f"{cls} time_major dropped")
        layers = cfg.get("layers")
        if isinstance(layers, list):
            sequential = cls == "Sequential"
            for i, sub in enumerate(layers):
                if isinstance(sub, dict):
                    layer(sub, sequential and i == 0)
        inner = cfg.get("layer")  # wrappers (Bidirectional, TimeDistributed)
        if isinstance(inner, dict):
            layer(inner, False)

    layer(config, False)
    return changes


def _patched_copy(path, tmpdir):
    """(path of a Keras-3-loadable copy, changes, Keras version) for a Keras 2 native .keras
    file, or None if `path` is not one (or nothing needed patching)."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "config.json" not in names:
                return None
            config = json.loads(z.read("config.json"))
            version = "?"
            if "metadata.json" in names:
                version = str(json.loads(z.read("metadata.json")).get("keras_version", "?"))
            changes = _patch_keras2_config(config)
            if not changes:
                return None
            copy = os.path.join(tmpdir, "patched.keras")
            with zipfile.ZipFile(copy, "w", compression=zipfile.ZIP_STORED) as out:
                for info in z.infolist():
                    data = z.read(info.filename)
                    if info.filename == "config.json":
                        data = json.dumps(config).encode("utf-8")
                    out.writestr(info.filename, data)
    except (OSError, ValueError, zipfile.BadZipFile, AttributeError):
        return None
    return copy, changes, version


def load_keras_model(path):
    """The model in `path`; ExportError with a one-line reason if Keras cannot load it."""
    import keras

    if not os.path.exists(path):
        raise ExportError(f"{path}: no such file")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - any load failure is reported as such
        first = e
    tmpdir = tempfile.mkdtemp(prefix="keras_export-")
    try:
        patched = _patched_copy(path, tmpdir)
        if patched is None:
            if path.endswith(".keras") and not zipfile.is_zipfile(path):
                raise ExportError(f"{path}: Keras cannot load it: not a zip archive (a .keras "
                                  "file is one)") from first
            raise ExportError(f"{path}: Keras cannot load it: {_one_line(first)}") from first
        copy, changes, version = patched
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "Do not pass an `input_shape`"
                model = keras.models.load_model(copy, compile=False)
        except Exception as e:  # noqa: BLE001
            raise ExportError(
                f"{path}: Keras cannot load it: {_one_line(first)}; nor with its config "
                f"patched from Keras {version} style: {_one_line(e)}"
            ) from e
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    print(f"keras_export: note: {path} was saved by Keras {version}; loaded a copy whose "
          f"config.json is patched for Keras 3 ({'; '.join(changes)})", file=sys.stderr)
    return model


# ------------------------------------------------------------------------------------------
# the graph of layers


class _Entry:
    """One layer of the flattened graph."""

    def __init__(self, layer, path, inbound, in_shapes, out_shape):
        self.layer = layer
        self.path = path  # names of the sub-models it sits in, outermost first
        self.inbound = inbound  # refs: INPUT_REF or indices of earlier entries
        self.in_shapes = in_shapes  # Keras shapes, batch included
        self.out_shape = out_shape
        self.name = None


def _history(tensor, where):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise ExportError(f"{where}: cannot trace the graph back to its input")
    op, node_index, tensor_index = history
    return op, op._inbound_nodes[node_index], tensor_index


def _ios(model):
    try:
        return model.inputs, model.outputs
    except (AttributeError, ValueError) as e:
        raise ExportError(
            f"model '{model.name}': no defined input shape ({e}); build it on keras.Input(...)"
        ) from e


def _shown(value):
    """A call argument for a message: a tensor as the layer that made it."""
    history = getattr(value, "_keras_history", None)
    if history is not None:
        op = history[0]
        return f"<output of '{getattr(op, 'name', '?')}' ({type(op).__name__})>"
    return repr(value)


class _Tracer:
    """Walks back from the model's output, splicing nested models into one graph."""

    def __init__(self):
        self.entries = []
        self.memo = {}  # (id(node), scope id) -> ref
        self.layer_node = {}  # id(layer) -> the node it was traced through
        self.model_node = {}  # id(nested model) -> the node it was called through
        self.models = []  # (model, path) of the outer model and every nested one
        self.scopes = 0

    def trace_model(self, model, path, input_ref):
        inputs, outputs = _ios(model)
        where = f"model '{model.name}'" if not path else f"nested model '{'/'.join(path)}'"
        if not inputs or len(inputs) != 1:
            names = ", ".join(f"'{_history(t, where)[0].name}'" for t in inputs or [])
            raise ExportError(f"{where}: {len(inputs or [])} inputs ({names}); widen models "
                              "take one input")
        if len(outputs) != 1:
            raise ExportError(f"{where}: {len(outputs)} outputs; widen models have one output")
        self.models.append((model, path))
        input_op = _history(inputs[0], where)[0]
        self.scopes += 1
        scope = (self.scopes, {id(input_op): input_ref}, path)
        return self.resolve(outputs[0], scope)

    def resolve(self, tensor, scope):
        import keras

        scope_id, inputs, path = scope
        where = f"model '{path[-1]}'" if path else "the model"
        op, node, tensor_index = _history(tensor, where)
        if node.is_input:
            if id(op) not in inputs:
                raise ExportError(f"input '{op.name}': {where} reads an input other than its "
                                  "own; widen models take one input")
            return inputs[id(op)]
        key = (id(node), scope_id)
        if key in self.memo:
            return self.memo[key]
        name = getattr(op, "name", "?")
        cls = type(op).__name__
        if not isinstance(op, keras.layers.Layer):
            raise ExportError(
                f"operation '{name}' ({cls}): a raw keras.ops call in the functional graph is "
                f"not supported; use layers ({SUPPORTED_LAYERS})"
            )
        # Keras records `training=False` for layers that take it; `training=True` (Monte-Carlo
        # dropout, batch statistics at inference), masks and initial states would change what
        # the model computes.
        kwargs = {
            k: v for k, v in node.arguments.kwargs.items()
            if v is not None and not (k == "training" and v is False)
        }
        if kwargs:
            shown = ", ".join(f"{k}={_shown(v)}" for k, v in sorted(kwargs.items()))
            raise ExportError(
                f"layer '{name}' ({cls}): called with {shown}; only plain calls layer(x) can "
                "be exported"
            )
        if len(node.outputs) != 1 or tensor_index != 0:
            if getattr(op, "return_state", False):
                raise ExportError(f"layer '{name}' ({cls}): return_state: True is not "
                                  "supported")
            raise ExportError(f"layer '{name}' ({cls}): returns {len(node.outputs)} tensors; "
                              "only layers with one output can be exported")
        args = node.input_tensors
        if isinstance(op, keras.Model):
            if self.model_node.setdefault(id(op), node) is not node:
                raise ExportError(
                    f"layer '{name}' ({cls}): nested model called more than once (shared "
                    "weights); widen graphs call every layer once"
                )
            if len(args) != 1:
                raise ExportError(f"layer '{name}' ({cls}): nested model called on "
                                  f"{len(args)} tensors; widen models take one input")
            arg = self.resolve(args[0], scope)
            ref = self.trace_model(op, path + (name,), arg)
        else:
            if self.layer_node.setdefault(id(op), node) is not node:
                raise ExportError(
                    f"layer '{name}' ({cls}): called more than once (a shared layer); widen "
                    "graphs call every layer once"
                )
            if cls not in MULTI_INPUT and len(args) != 1:
                raise ExportError(f"layer '{name}' ({cls}): called on {len(args)} tensors; "
                                  "only merge layers take several")
            refs = [self.resolve(t, scope) for t in args]
            self.entries.append(_Entry(
                op, path, refs, [tuple(t.shape) for t in args], tuple(node.outputs[0].shape)
            ))
            ref = len(self.entries) - 1
        self.memo[key] = ref
        return ref


def layer_graph(model):
    """(input name, input shape, [_Entry] in topological order with the output last)."""
    inputs, _ = _ios(model)
    tracer = _Tracer()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        tracer.trace_model(model, (), INPUT_REF)
    finally:
        sys.setrecursionlimit(limit)
    input_layer = _history(inputs[0], f"model '{model.name}'")[0]
    # A layer that is not on a path from the input to the output is a branch that was dropped.
    traced = set(tracer.layer_node) | set(tracer.model_node)
    for owner, _path in tracer.models:
        for layer in owner.layers:
            if type(layer).__name__ != "InputLayer" and id(layer) not in traced:
                raise ExportError(
                    f"layer '{layer.name}' ({type(layer).__name__}): does not lead to the "
                    f"output of model '{owner.name}'; every layer must be used"
                )
    entries = tracer.entries
    if not entries:
        raise ExportError(f"model '{model.name}': no layers to export")
    # Names: a layer's own name, or `<submodel>/<name>` for nested layers whose name is taken.
    count = {}
    for bare in [input_layer.name] + [e.layer.name for e in entries]:
        count[bare] = count.get(bare, 0) + 1
    for e in entries:
        clash = count[e.layer.name] > 1
        e.name = "/".join(e.path + (e.layer.name,)) if (e.path and clash) else e.layer.name
    names = [input_layer.name] + [e.name for e in entries]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ExportError(f"model '{model.name}': duplicate layer names {dupes}")
    return input_layer.name, tuple(inputs[0].shape), entries


# ------------------------------------------------------------------------------------------
# layer conversion


def _one(layer, option, value):
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            _fail(layer, option, f"expected one value for a 1-D layer, got {value}")
        value = value[0]
    return int(value)


def _pair(layer, option, value):
    if isinstance(value, int):
        return [value, value]
    value = list(value)
    if len(value) != 2:
        _fail(layer, option, f"expected (left, right), got {value}")
    return [int(v) for v in value]


def activation_spec(layer, name, *, seq_channels_first):
    """widen's `Activation` serde form for a Keras activation name."""
    if name is None:
        name = "linear"
    if not isinstance(name, str):
        _fail(layer, "activation", f"custom activation {name!r} is not supported "
              f"(supported: {SUPPORTED_ACTIVATIONS})")
    table = {
        "linear": {"name": "linear"},
        "relu": {"name": "relu"},
        "leaky_relu": {"name": "leaky_relu", "alpha": 0.2},  # keras.activations default slope
        "elu": {"name": "elu", "alpha": 1.0},
        "gelu": {"name": "gelu"},  # Keras 3: exact erf GELU (approximate=False)
        "tanh": {"name": "tanh"},
        "sigmoid": {"name": "sigmoid"},
        "softmax": {"name": "softmax"},
        "swish": {"name": "swish"},
        "silu": {"name": "swish"},
    }
    if name not in table:
        _fail(layer, "activation", f"'{name}' is not supported (supported: "
              f"{SUPPORTED_ACTIVATIONS})")
    if name == "softmax" and seq_channels_first:
        # Keras normalises over the last axis, which is the length of a channels_first
        # sequence; widen's softmax normalises over channels.
        _fail(layer, "activation", "softmax on a channels_first sequence normalises over the "
              "length axis in Keras; widen's softmax runs over channels")
    return dict(table[name])


def _float(v):
    return float(v)


def _numpy(variable):
    import keras
    import numpy as np

    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


class Exporter:
    """Converts the graph's layers one by one; each layer's input shapes come from Keras."""

    def __init__(self, data_format):
        self.data_format = data_format
        self.seq = True  # the (first) input is [batch, length, channels] (or channels-first)
        self.in_shapes = []
        self.out_shape = ()
        self.name = None  # the exported name of the layer being converted
        self.layers = []
        self.tensors = []
        self.low_precision = []  # layers computing below float32 (mixed precision)

    def add_tensor(self, layer, param, array):
        import numpy as np

        a = np.asarray(array, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            index = int(np.flatnonzero(~np.isfinite(a.ravel()))[0])
            _fail(layer, param, f"non-finite value {a.ravel()[index]} at flat index {index}")
        self.tensors.append((f"{self.name}.{param}", a.astype(np.float32)))

    def need_seq(self, layer):
        if not self.seq:
            _fail(layer, "input", "expects a sequence [batch, length, channels] but follows a "
                  "flattening layer")

    def need_channels_last(self, layer):
        """Layers whose axes Keras fixes for a channels-last sequence (recurrent, padding,
        reshaping, per-position weights) are refused on a channels_first model's sequences."""
        touches_seq = self.seq or len(self.out_shape) == 3
        if self.data_format == "channels_first" and touches_seq:
            _fail(layer, "data_format", "on a sequence of a channels_first model this layer "
                  "acts on Keras' axes as laid out there; only channels_last models can use it")

    def check_format(self, layer, cfg):
        fmt = cfg.get("data_format", "channels_last")
        if fmt != self.data_format:
            _fail(layer, "data_format", f"'{fmt}' differs from the model's '{self.data_format}' "
                  "(widen models use one data format throughout)")

    def check_quantization(self, layer):
        mode = getattr(layer, "quantization_mode", None)
        if mode:
            _fail(layer, "quantization", f"quantized layers ('{mode}') are not supported")

    def act(self, layer, name):
        return activation_spec(
            layer, name, seq_channels_first=self.seq and self.data_format == "channels_first"
        )

    def handler(self, layer):
        import keras

        cls = type(layer).__name__
        if isinstance(layer, keras.Model):  # nested models are flattened before this
            raise ExportError(f"layer '{layer.name}' ({cls}): unexpected nested model")
        return getattr(self, f"_{cls}", None)

    def check_supported(self, layer):
        if self.handler(layer) is None:
            raise ExportError(
                f"layer '{layer.name}' ({type(layer).__name__}): layer type not supported "
                f"(supported: {SUPPORTED_LAYERS})"
            )

    def convert(self, entry, inbound_names):
        layer = entry.layer
        self.check_supported(layer)
        compute = getattr(layer, "compute_dtype", "float32")
        if compute not in ("float32", "float64", None):
            self.low_precision.append(f"'{entry.name}' ({compute})")
        self.in_shapes = entry.in_shapes
        self.out_shape = entry.out_shape
        self.name = entry.name
        for shape in self.in_shapes:
            if len(shape) not in (2, 3):
                _fail(layer, "input", f"rank-{len(shape)} input {shape}: widen values are "
                      "sequences [batch, length, channels] or flat [batch, features]")
        self.seq = len(self.in_shapes[0]) == 3
        cfg = layer.get_config()
        spec = self.handler(layer)(layer, cfg)
        if len(self.out_shape) not in (2, 3):
            _fail(layer, "output", f"rank-{len(self.out_shape)} output {self.out_shape}: widen "
                  "values are sequences [batch, length, channels] or flat [batch, features]")
        self.layers.append({"name": entry.name, "inbound": inbound_names, **spec})

    # -- layers ------------------------------------------------------------------------------

    def _Conv1D(self, layer, cfg):
        self.need_seq(layer)
        self.check_format(layer, cfg)
        self.check_quantization(layer)
        padding = cfg["padding"]
        if padding not in ("valid", "same", "causal"):
            _fail(layer, "padding", f"'{padding}' is not supported")
        spec = {
            "type": "conv1d",
            "filters": int(cfg["filters"]),
            "kernel_size": _one(layer, "kernel_size", cfg["kernel_size"]),
            "strides": _one(layer, "strides", cfg["strides"]),
            "dilation_rate": _one(layer, "dilation_rate", cfg["dilation_rate"]),
            "groups": int(cfg.get("groups", 1)),
            "padding": padding,
            "activation": self.act(layer, cfg.get("activation")),
            "use_bias": bool(cfg["use_bias"]),
            "data_format": self.data_format,
        }
        kernel = _numpy(layer.kernel)  # Keras [kernel_size, in / groups, filters]
        if kernel.ndim != 3:
            _fail(layer, "kernel", f"expected a 3-D kernel, got shape {kernel.shape}")
        self.add_tensor(layer, "weight", kernel.transpose(2, 1, 0))  # [filters, in/groups, k]
        if spec["use_bias"]:
            self.add_tensor(layer, "bias", _numpy(layer.bias))
        return spec

    def _BatchNormalization(self, layer, cfg):
        for option in ("renorm", "synchronized"):
            if cfg.get(option):
                _fail(layer, option, "True is not supported")
        axis = cfg["axis"]
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                _fail(layer, "axis", f"{axis}: only one (the channel) axis is supported")
            axis = axis[0]
        rank = 3 if self.seq else 2
        axis = axis + rank if axis < 0 else axis
        channel_axis = 1 if (self.seq and self.data_format == "channels_first") else rank - 1
        if axis != channel_axis:
            _fail(layer, "axis", f"{cfg['axis']} is not the channel axis ({channel_axis} of a "
                  f"rank-{rank} {'sequence' if self.seq else 'flat'} input in "
                  f"{self.data_format})")
        spec = {
            "type": "batch_norm1d",
            "momentum": _float(cfg["momentum"]),
            "epsilon": _float(cfg["epsilon"]),
            "center": bool(cfg["center"]),
            "scale": bool(cfg["scale"]),
            "momentum_on": "moving",
            "unbiased_moving_variance": False,
        }
        if spec["scale"]:
            self.add_tensor(layer, "gamma", _numpy(layer.gamma))
        if spec["center"]:
            self.add_tensor(layer, "beta", _numpy(layer.beta))
        self.add_tensor(layer, "moving_mean", _numpy(layer.moving_mean))
        self.add_tensor(layer, "moving_variance", _numpy(layer.moving_variance))
        return spec

    def _pool(self, layer, cfg, kind):
        self.need_seq(layer)
        self.check_format(layer, cfg)
        padding = cfg["padding"]
        if padding not in ("valid", "same"):
            _fail(layer, "padding", f"'{padding}' is not supported (valid or same)")
        pool_size = _one(layer, "pool_size", cfg["pool_size"])
        strides = cfg.get("strides")
        strides = pool_size if strides is None else _one(layer, "strides", strides)
        return {"type": kind, "pool_size": pool_size, "strides": strides, "padding": padding}

    def _MaxPooling1D(self, layer, cfg):
        return self._pool(layer, cfg, "max_pool1d")

    def _AveragePooling1D(self, layer, cfg):
        return self._pool(layer, cfg, "avg_pool1d")

    def _global(self, layer, cfg, kind):
        self.need_seq(layer)
        self.check_format(layer, cfg)
        if cfg.get("keepdims"):
            _fail(layer, "keepdims", "True is not supported (widen's global pools return "
                  "[batch, channels])")
        return {"type": kind}

    def _GlobalMaxPooling1D(self, layer, cfg):
        return self._global(layer, cfg, "global_max_pool1d")

    def _GlobalAveragePooling1D(self, layer, cfg):
        return self._global(layer, cfg, "global_avg_pool1d")

    def _Flatten(self, layer, cfg):
        self.need_seq(layer)
        if cfg.get("data_format", "channels_last") != "channels_last":
            # Keras' Flatten(data_format="channels_first") moves axis 1 last before flattening;
            # widen flattens in the model's own layout.
            _fail(layer, "data_format", f"'{cfg['data_format']}' is not supported (Flatten "
                  "must flatten the tensor as it is: data_format='channels_last')")
        return {"type": "flatten"}

    def _Dense(self, layer, cfg):
        if self.seq:
            _fail(layer, "input", "Dense on a 3-D sequence is not supported; put Flatten or a "
                  "global pooling layer before it")
        self.check_quantization(layer)
        spec = {
            "type": "dense",
            "units": int(cfg["units"]),
            "activation": self.act(layer, cfg.get("activation")),
            "use_bias": bool(cfg["use_bias"]),
        }
        kernel = _numpy(layer.kernel)  # [in, units], widen's layout too
        if kernel.ndim != 2:
            _fail(layer, "kernel", f"expected a 2-D kernel, got shape {kernel.shape}")
        self.add_tensor(layer, "weight", kernel)
        if spec["use_bias"]:
            self.add_tensor(layer, "bias", _numpy(layer.bias))
        return spec

    def _rate(self, layer, cfg):
        rate = _float(cfg["rate"])
        if not 0.0 <= rate < 1.0:
            _fail(layer, "rate", f"{rate} is outside [0, 1)")
        return rate

    def _Dropout(self, layer, cfg):
        return {"type": "dropout", "rate": self._rate(layer, cfg)}

    def _SpatialDropout1D(self, layer, cfg):
        self.need_seq(layer)
        return {"type": "spatial_dropout1d", "rate": self._rate(layer, cfg)}

    def _activation_layer(self, activation):
        return {"type": "activation", "activation": activation}

    def _Activation(self, layer, cfg):
        return self._activation_layer(self.act(layer, cfg.get("activation")))

    def _ReLU(self, layer, cfg):
        max_value = cfg.get("max_value")
        threshold = _float(cfg.get("threshold", 0.0) or 0.0)
        slope = _float(cfg.get("negative_slope", 0.0) or 0.0)
        if max_value is None and threshold == 0.0:
            if slope == 0.0:
                return self._activation_layer({"name": "relu"})
            return self._activation_layer({"name": "leaky_relu", "alpha": slope})
        # Keras: y = x if x > threshold else 0; clipped to [0, max_value] when max_value is
        # set; minus negative_slope * max(threshold - x, 0).
        return {
            "type": "relu",
            "max_value": None if max_value is None else _float(max_value),
            "negative_slope": slope,
            "threshold": threshold,
        }

    def _LeakyReLU(self, layer, cfg):
        slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
        return self._activation_layer({"name": "leaky_relu", "alpha": _float(slope)})

    def _ELU(self, layer, cfg):
        return self._activation_layer({"name": "elu", "alpha": _float(cfg.get("alpha", 1.0))})

    def _Softmax(self, layer, cfg):
        axis = cfg.get("axis", -1)
        if isinstance(axis, (list, tuple)):
            axis = axis[0] if len(axis) == 1 else axis
        if axis != -1:
            _fail(layer, "axis", f"{cfg.get('axis')} is not supported (only -1)")
        return self._activation_layer(self.act(layer, "softmax"))

    def _PReLU(self, layer, cfg):
        self.need_channels_last(layer)
        shared = cfg.get("shared_axes")
        shared = None if shared is None else [int(a) for a in shared]
        alpha = _numpy(layer.alpha)  # input shape without batch, shared axes set to 1
        if alpha.ndim != len(self.in_shapes[0]) - 1:
            _fail(layer, "alpha", f"shape {alpha.shape} does not match the input "
                  f"{self.in_shapes[0]}")
        self.add_tensor(layer, "alpha", alpha)
        return {"type": "prelu", "shared_axes": shared}

    # -- merges ------------------------------------------------------------------------------

    def _same_rank(self, layer):
        ranks = {len(s) for s in self.in_shapes}
        if len(ranks) != 1:
            _fail(layer, "inputs", f"operands of different ranks {list(self.in_shapes)}")

    def _merge(self, layer, kind):
        self._same_rank(layer)
        first = self.in_shapes[0]
        for shape in self.in_shapes[1:]:
            for a, b in zip(first[1:], shape[1:]):
                if a is not None and b is not None and a != b:
                    _fail(layer, "inputs", f"operand shapes {list(self.in_shapes)} differ "
                          "(broadcasting is not supported; all operands must have one shape)")
        return {"type": kind}

    def _Add(self, layer, cfg):
        return self._merge(layer, "add")

    def _Subtract(self, layer, cfg):
        return self._merge(layer, "subtract")

    def _Multiply(self, layer, cfg):
        return self._merge(layer, "multiply")

    def _Average(self, layer, cfg):
        return self._merge(layer, "average")

    def _Maximum(self, layer, cfg):
        return self._merge(layer, "maximum")

    def _Minimum(self, layer, cfg):
        return self._merge(layer, "minimum")

    def _Concatenate(self, layer, cfg):
        self._same_rank(layer)
        rank = len(self.in_shapes[0])
        axis = int(cfg["axis"])
        if not -rank <= axis < rank or axis % rank == 0:
            _fail(layer, "axis", f"{axis} is not a non-batch axis of rank-{rank} inputs")
        if rank == 3 and self.data_format == "channels_first":
            self.need_channels_last(layer)
        along = axis % rank
        for shape in self.in_shapes[1:]:
            for i, (a, b) in enumerate(zip(self.in_shapes[0], shape)):
                if i not in (0, along) and a is not None and b is not None and a != b:
                    _fail(layer, "inputs", f"operand shapes {list(self.in_shapes)} differ off "
                          f"the concatenation axis {axis}")
        return {"type": "concatenate", "axis": axis}

    # -- recurrent ---------------------------------------------------------------------------

    def _rnn(self, layer, cfg):
        self.need_seq(layer)
        self.need_channels_last(layer)
        for option in ("go_backwards", "stateful", "return_state"):
            if cfg.get(option):
                _fail(layer, option, "True is not supported")
        if cfg.get("time_major"):
            _fail(layer, "time_major", "True is not supported")
        return {
            "units": int(cfg["units"]),
            "activation": self.act(layer, cfg.get("activation")),
            "recurrent_activation": self.act(layer, cfg.get("recurrent_activation")),
            "use_bias": bool(cfg["use_bias"]),
            "return_sequences": bool(cfg["return_sequences"]),
        }

    def _rnn_weights(self, layer, gates, use_bias, bias_shape):
        cell = layer.cell
        units = int(cell.units)
        kernel = _numpy(cell.kernel)
        recurrent = _numpy(cell.recurrent_kernel)
        channels = self.in_shapes[0][-1]
        if kernel.shape != (channels, gates * units):
            _fail(layer, "kernel", f"shape {kernel.shape}, expected {(channels, gates * units)}")
        if recurrent.shape != (units, gates * units):
            _fail(layer, "recurrent_kernel", f"shape {recurrent.shape}, expected "
                  f"{(units, gates * units)}")
        self.add_tensor(layer, "kernel", kernel)
        self.add_tensor(layer, "recurrent_kernel", recurrent)
        if use_bias:
            bias = _numpy(cell.bias)
            if bias.shape != bias_shape:
                _fail(layer, "bias", f"shape {bias.shape}, expected {bias_shape}")
            self.add_tensor(layer, "bias", bias)

    def _LSTM(self, layer, cfg):
        spec = {"type": "lstm", **self._rnn(layer, cfg),
                "unit_forget_bias": bool(cfg.get("unit_forget_bias", True))}
        units = spec["units"]
        self._rnn_weights(layer, 4, spec["use_bias"], (4 * units,))  # gates i, f, c, o
        return spec

    def _GRU(self, layer, cfg):
        spec = {"type": "gru", **self._rnn(layer, cfg),
                "reset_after": bool(cfg.get("reset_after", True))}
        units = spec["units"]
        # Gates z, r, h; with reset_after, row 0 of the bias is the input bias, row 1 the
        # recurrent bias.
        shape = (2, 3 * units) if spec["reset_after"] else (3 * units,)
        self._rnn_weights(layer, 3, spec["use_bias"], shape)
        return spec

    # -- shape layers ------------------------------------------------------------------------

    def _ZeroPadding1D(self, layer, cfg):
        self.need_seq(layer)
        self.need_channels_last(layer)
        self.check_format(layer, cfg)
        return {"type": "zero_padding1d", "padding": _pair(layer, "padding", cfg["padding"])}

    def _Cropping1D(self, layer, cfg):
        self.need_seq(layer)
        self.need_channels_last(layer)
        return {"type": "cropping1d", "cropping": _pair(layer, "cropping", cfg["cropping"])}

    def _UpSampling1D(self, layer, cfg):
        self.need_seq(layer)
        self.need_channels_last(layer)
        return {"type": "up_sampling1d", "size": int(cfg["size"])}

    def _LayerNormalization(self, layer, cfg):
        self.need_channels_last(layer)
        if cfg.get("rms_scaling"):
            _fail(layer, "rms_scaling", "True is not supported")
        axis = cfg["axis"]
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        rank = len(self.in_shapes[0])
        if len(axes) != 1 or int(axes[0]) not in (-1, rank - 1):
            _fail(layer, "axis", f"{axis}: only the last axis (-1) is supported")
        spec = {
            "type": "layer_normalization",
            "axis": -1,
            "epsilon": _float(cfg["epsilon"]),
            "center": bool(cfg["center"]),
            "scale": bool(cfg["scale"]),
            "rms_scaling": False,
        }
        if spec["scale"]:
            self.add_tensor(layer, "gamma", _numpy(layer.gamma))
        if spec["center"]:
            self.add_tensor(layer, "beta", _numpy(layer.beta))
        return spec

    def _Reshape(self, layer, cfg):
        self.need_channels_last(layer)
        target = [int(d) for d in cfg["target_shape"]]
        if len(target) not in (1, 2):
            _fail(layer, "target_shape", f"{tuple(target)}: only (features,) or (length, "
                  "channels) per example are supported")
        return {"type": "reshape", "target_shape": target}

    def _Permute(self, layer, cfg):
        self.need_channels_last(layer)
        return {"type": "permute", "dims": [int(d) for d in cfg["dims"]]}


SEQUENCE_FORMAT_LAYERS = ("Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D",
                          "GlobalAveragePooling1D")


def model_data_format(layers):
    """The data format the model's sequence layers agree on (channels_last if none says)."""
    for layer in layers:
        if type(layer).__name__ in SEQUENCE_FORMAT_LAYERS:
            return layer.get_config().get("data_format", "channels_last")
    return "channels_last"


def export_model(model):
    """(envelope dict, [(tensor name, float32 array)]) for a loaded Keras model."""
    input_name, shape, entries = layer_graph(model)
    if len(shape) != 3:
        raise ExportError(
            f"model '{model.name}': input shape {shape} is not 3-D (batch, length, channels)"
        )
    data_format = model_data_format([e.layer for e in entries])
    if data_format not in ("channels_last", "channels_first"):
        raise ExportError(f"model '{model.name}': unknown data_format '{data_format}'")
    channels, length = (shape[2], shape[1]) if data_format == "channels_last" else shape[1:]
    if channels is None:
        raise ExportError(f"model '{model.name}': the input's channel count is not fixed "
                          f"(input shape {shape})")
    exporter = Exporter(data_format)
    for e in entries:  # an unsupported layer type is the first thing to report
        exporter.check_supported(e.layer)
    names = {INPUT_REF: input_name}
    for i, e in enumerate(entries):
        exporter.convert(e, [names[r] for r in e.inbound])
        names[i] = e.name
    spec = {
        "input": {
            "name": input_name,
            "channels": int(channels),
            "length": None if length is None else int(length),
            "data_format": data_format,
        },
        "layers": exporter.layers,
    }
    envelope = {"format": FORMAT, "version": VERSION, "weights": WEIGHTS_FILE, "spec": spec}
    if exporter.low_precision:
        print(
            "keras_export: warning: layers " + ", ".join(exporter.low_precision) + " compute "
            "below float32 in Keras (mixed precision); widen computes in float32, so outputs "
            "will differ slightly from Keras'",
            file=sys.stderr,
        )
    return envelope, exporter.tensors


def export_file(model_path, out_dir):
    model = load_keras_model(model_path)
    envelope, tensors = export_model(model)
    out_dir = os.path.normpath(out_dir)
    if os.path.basename(out_dir) in ("", ".", ".."):
        raise ExportError(f"{out_dir}: name the model directory itself (e.g. my_model/)")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ExportError(f"{out_dir}: exists and is not a directory")
    own = (MODEL_FILE, WEIGHTS_FILE, "weights.bpk")
    if os.path.isdir(out_dir):
        other = sorted(f for f in os.listdir(out_dir) if f not in own)
        if other:
            shown = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
            raise ExportError(
                f"{out_dir}: exists and holds files other than a widen model's ({shown}); "
                "refusing to write into it"
            )
    # Write into a fresh sibling directory and rename it into place, so a failure never
    # leaves a half-written model (an existing widen model at OUT_DIR is replaced as a whole).
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.export-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the model directory is not
    try:
        write_safetensors(os.path.join(tmp, WEIGHTS_FILE), tensors)
        text = json.dumps(envelope, indent=2) + "\n"
        _write_atomically(os.path.join(tmp, MODEL_FILE), text.encode("utf-8"))
        if os.path.isdir(out_dir):
            for name in own:
                if os.path.exists(os.path.join(out_dir, name)):
                    os.remove(os.path.join(out_dir, name))
            os.rmdir(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return envelope, tensors


def main(argv):
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(argv) != 3:
        print("usage: keras_export.py MODEL.keras OUT_DIR  (--help for details)", file=sys.stderr)
        return 2
    # Quiet TensorFlow's start-up chatter (the exporter runs no computation, so oneDNN's
    # numerics do not matter here).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        envelope, tensors = export_file(argv[1], argv[2])
    except ExportError as e:
        print(f"keras_export: error: {e}", file=sys.stderr)
        return 1
    spec = envelope["spec"]
    print(
        f"exported {len(spec['layers'])} layers, {len(tensors)} tensors, input "
        f"{spec['input']['channels']} channels ({spec['input']['data_format']}) to {argv[2]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
