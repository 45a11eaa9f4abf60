#!/usr/bin/env python3
"""Export a trained Keras Conv1D model to a widen model directory.

    python3 tools/keras_export.py MODEL.keras OUT_DIR

writes OUT_DIR/model.json (the versioned widen envelope around the architecture spec) and
OUT_DIR/weights.safetensors (little-endian float32, tensors named `<keras layer name>.<param>`,
each with a CRC-32 in the file metadata), which every `widen` command loads directly
(`widen predict`, `widen expand`, `widen summary`).

Needs only `keras` (3.x, any backend) and `numpy`; the safetensors file is written by hand.

Supported: Sequential models, and functional models that are a single chain (one input, one
output, each layer called once on the previous layer's output). Layers: InputLayer, Conv1D
(padding valid/same/causal, strides, dilation_rate, groups, activation, use_bias,
data_format), BatchNormalization (on the channel axis), MaxPooling1D, AveragePooling1D,
GlobalMaxPooling1D, GlobalAveragePooling1D (keepdims=False), Dense (on flat input), Dropout,
Flatten, Activation, and the activation layers ReLU (plain or leaky), LeakyReLU, ELU and
Softmax (axis -1). Activations: linear, relu, leaky_relu, elu, gelu, tanh, sigmoid, softmax,
swish/silu.

Anything else stops the export with a message naming the layer and the option, and exit code 1.
Regularizers, constraints and initializers are ignored: they do not change what a trained model
computes.
"""
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib

FORMAT = "widen-model"
VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
MODEL_FILE = "model.json"

SUPPORTED_LAYERS = (
    "InputLayer, Conv1D, BatchNormalization, MaxPooling1D, AveragePooling1D, "
    "GlobalMaxPooling1D, GlobalAveragePooling1D, Dense, Dropout, Flatten, Activation, ReLU, "
    "LeakyReLU, ELU, Softmax"
)
SUPPORTED_ACTIVATIONS = "linear, relu, leaky_relu, elu, gelu, tanh, sigmoid, softmax, swish, silu"


class ExportError(Exception):
    """The model cannot be exported; the message names the layer and the option."""


def _fail(layer, option, detail):
    raise ExportError(f"layer '{layer.name}' ({type(layer).__name__}): {option}: {detail}")


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
# the chain of layers


def _history_node(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, None
    op = history.operation
    return op, op._inbound_nodes[history.node_index]


def layer_chain(model):
    """The model's layers in order, without the InputLayer, and the model's input tensor."""
    import keras

    try:
        inputs = model.inputs
    except (AttributeError, ValueError) as e:
        raise ExportError(
            f"model '{model.name}': no defined input shape ({e}); build it on keras.Input(...)"
        ) from e
    if not inputs or len(inputs) != 1:
        raise ExportError(
            f"model '{model.name}': {len(inputs or [])} inputs; widen models take one input"
        )
    if len(model.outputs) != 1:
        raise ExportError(
            f"model '{model.name}': {len(model.outputs)} outputs; widen models have one output"
        )
    if isinstance(model, keras.Sequential):
        return [l for l in model.layers if type(l).__name__ != "InputLayer"], model.inputs[0]

    # A functional model: walk back from the output; every step must be one layer called once
    # on exactly one tensor, ending at the model's input.
    chain = []
    tensor = model.outputs[0]
    while True:
        op, node = _history_node(tensor)
        if op is None:
            raise ExportError(f"model '{model.name}': cannot trace the graph back to its input")
        if node.is_input:
            if tensor is not model.inputs[0]:
                raise ExportError(f"model '{model.name}': the output does not come from its input")
            break
        name = getattr(op, "name", "?")
        cls = type(op).__name__
        if not isinstance(op, keras.layers.Layer):
            raise ExportError(
                f"operation '{name}' ({cls}): a raw keras.ops call in the functional graph is "
                f"not supported; use layers ({SUPPORTED_LAYERS})"
            )
        args = node.input_tensors
        if len(args) != 1:
            raise ExportError(
                f"layer '{name}' ({cls}): takes {len(args)} inputs; only a single chain of "
                "layers (each on the previous layer's output) can be exported"
            )
        if any(op is seen for seen in chain):
            raise ExportError(
                f"layer '{name}' ({cls}): called more than once (a shared layer); only a "
                "single chain of distinct layers can be exported"
            )
        # Keras records `training=False` for layers that take it; `training=True` (Monte-Carlo
        # dropout, batch statistics at inference) would change what the model computes.
        kwargs = {
            k: v for k, v in node.arguments.kwargs.items()
            if v is not None and not (k == "training" and v is False)
        }
        if kwargs:
            shown = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
            raise ExportError(
                f"layer '{name}' ({cls}): called with {shown}; only plain calls layer(x) can "
                "be exported"
            )
        chain.append(op)
        tensor = args[0]
    chain.reverse()
    # A layer that is not on the path from input to output means a branch that was dropped.
    on_path = {id(l) for l in chain}
    for layer in model.layers:
        if type(layer).__name__ != "InputLayer" and id(layer) not in on_path:
            raise ExportError(
                f"layer '{layer.name}' ({type(layer).__name__}): not on the path from the "
                "input to the output; only a single chain of layers can be exported"
            )
    return chain, model.inputs[0]


# ------------------------------------------------------------------------------------------
# layer conversion


def _one(layer, option, value):
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            _fail(layer, option, f"expected one value for a 1-D layer, got {value}")
        value = value[0]
    return int(value)


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
    """Converts a chain of Keras layers; tracks whether the value is a sequence or flat."""

    def __init__(self, data_format):
        self.data_format = data_format
        self.seq = True  # the value is [batch, length, channels] (or channels-first)
        self.layers = []
        self.tensors = []
        self.low_precision = []  # layers computing below float32 (mixed precision)

    def add_tensor(self, layer, param, array):
        import numpy as np

        a = np.asarray(array, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            index = int(np.flatnonzero(~np.isfinite(a.ravel()))[0])
            _fail(layer, param, f"non-finite value {a.ravel()[index]} at flat index {index}")
        self.tensors.append((f"{layer.name}.{param}", a.astype(np.float32)))

    def need_seq(self, layer):
        if not self.seq:
            _fail(layer, "input", "expects a sequence [batch, length, channels] but follows a "
                  "flattening layer")

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

    def convert(self, layer):
        import keras

        cls = type(layer).__name__
        if isinstance(layer, keras.Model):
            raise ExportError(
                f"layer '{layer.name}' ({cls}): a nested model is not supported; rebuild the "
                "model as one flat chain of layers"
            )
        compute = getattr(layer, "compute_dtype", "float32")
        if compute not in ("float32", "float64", None):
            self.low_precision.append(f"'{layer.name}' ({compute})")
        cfg = layer.get_config()
        handler = getattr(self, f"_{cls}", None)
        if handler is None:
            raise ExportError(
                f"layer '{layer.name}' ({cls}): layer type not supported (supported: "
                f"{SUPPORTED_LAYERS})"
            )
        spec = handler(layer, cfg)
        if spec is not None:
            self.layers.append({"name": layer.name, **spec})

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
        self.seq = False
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
        self.seq = False
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

    def _Dropout(self, layer, cfg):
        rate = _float(cfg["rate"])
        if not 0.0 <= rate < 1.0:
            _fail(layer, "rate", f"{rate} is outside [0, 1)")
        return {"type": "dropout", "rate": rate}

    def _activation_layer(self, activation):
        return {"type": "activation", "activation": activation}

    def _Activation(self, layer, cfg):
        return self._activation_layer(self.act(layer, cfg.get("activation")))

    def _ReLU(self, layer, cfg):
        if cfg.get("max_value") is not None:
            _fail(layer, "max_value", f"{cfg['max_value']} is not supported")
        if _float(cfg.get("threshold", 0.0)) != 0.0:
            _fail(layer, "threshold", f"{cfg['threshold']} is not supported (only 0)")
        slope = _float(cfg.get("negative_slope", 0.0))
        if slope == 0.0:
            return self._activation_layer({"name": "relu"})
        return self._activation_layer({"name": "leaky_relu", "alpha": slope})

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


def model_data_format(layers):
    """The data format the model's sequence layers agree on (channels_last if none says)."""
    for layer in layers:
        cls = type(layer).__name__
        if cls in ("Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D",
                   "GlobalAveragePooling1D"):
            return layer.get_config().get("data_format", "channels_last")
        if cls in ("Flatten", "Dense"):
            break
    return "channels_last"


def export_model(model):
    """(envelope dict, [(tensor name, float32 array)]) for a loaded Keras model."""
    layers, input_tensor = layer_chain(model)
    if not layers:
        raise ExportError(f"model '{model.name}': no layers to export")
    names = [l.name for l in layers]
    if len(set(names)) != len(names):
        raise ExportError(f"model '{model.name}': duplicate layer names {names}")
    shape = tuple(input_tensor.shape)
    if len(shape) != 3:
        raise ExportError(
            f"model '{model.name}': input shape {shape} is not 3-D (batch, length, channels)"
        )
    data_format = model_data_format(layers)
    if data_format not in ("channels_last", "channels_first"):
        raise ExportError(f"model '{model.name}': unknown data_format '{data_format}'")
    channels, length = (shape[2], shape[1]) if data_format == "channels_last" else shape[1:]
    if channels is None:
        raise ExportError(f"model '{model.name}': the input's channel count is not fixed "
                          f"(input shape {shape})")
    exporter = Exporter(data_format)
    for layer in layers:
        exporter.convert(layer)
    spec = {
        "input": {
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
    import keras

    if not os.path.exists(model_path):
        raise ExportError(f"{model_path}: no such file")
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as e:  # noqa: BLE001 - any load failure is reported as such
        raise ExportError(f"{model_path}: Keras cannot load it: {e}") from e
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
