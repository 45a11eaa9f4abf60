#!/usr/bin/env python3
"""Rebuild a widen model directory as a Keras 3 model file.

    python3 tools/to_keras.py MODEL_DIR OUT.keras

reads MODEL_DIR/model.json (format versions 1 and 2: chains and graphs) and its
weights.safetensors, builds the same model as a Keras 3 functional model with every weight set,
and saves it to OUT.keras: `keras.saving.load_model("OUT.keras")(x, training=False)` computes
what widen computes. It is the inverse of tools/keras_export.py, which turns the saved file
back into the same model.json (up to the names below) and the same tensors.

Needs only `keras` (3.x, any backend) and `numpy`; the safetensors file is read by hand (F32,
or F64 rounded to float32; a tensor's `widen.crc32.<name>` metadata, where present, is checked).

Layers (widen `type` -> Keras class): conv1d -> Conv1D (the weight `[filters, in/groups, k]` is
transposed back to Keras' kernel `[k, in/groups, filters]`); batch_norm1d ->
BatchNormalization on the channel axis (`momentum_on: "batch"`, PyTorch's convention, becomes
Keras' momentum 1 - m); normalization -> Normalization(axis=channel axis, mean=..., variance=...)
with the statistics from the weights file (`(x - mean) / max(sqrt(variance), 1e-7)`, as widen);
max_pool1d, avg_pool1d -> MaxPooling1D, AveragePooling1D; global_max_pool1d,
global_avg_pool1d -> GlobalMaxPooling1D, GlobalAveragePooling1D; dense -> Dense; dropout ->
Dropout; spatial_dropout1d -> SpatialDropout1D; flatten -> Flatten; activation -> Activation, or
LeakyReLU / ELU when the slope is not Keras' default, or Softmax(axis=1) on a channels_first
sequence (widen's softmax runs over channels); relu -> ReLU(max_value, negative_slope,
threshold); prelu -> PReLU(shared_axes); layer_normalization -> LayerNormalization(axis=-1);
add, subtract, multiply, average, maximum, minimum -> the merge layers; concatenate ->
Concatenate(axis); lstm, gru -> LSTM, GRU (Keras' gate orders and layouts); zero_padding1d,
cropping1d, up_sampling1d, reshape, permute -> ZeroPadding1D, Cropping1D, UpSampling1D, Reshape,
Permute. Initializer fields are ignored (they do not change what a model computes).

Names: every layer keeps its name, except that Keras forbids `/` in names: each `/` becomes `__`
(a nested layer `seq_branch/conv` is saved as `seq_branch__conv`; one line on stderr says so).
A version-1 spec has no input name; the input is called `input` (widen's default).

channels_first models get channels_first Keras layers (Conv1D, the pools, BatchNormalization /
Normalization on axis 1). TensorFlow's CPU kernels run a channels_first Conv1D with groups=1
only under XLA (Keras sends grouped ones there itself): on a CPU, call
`model.compile(jit_compile=True)` before `predict`, or `tf.function(lambda t: model(t,
training=False), jit_compile=True)`; GPUs and the JAX / PyTorch backends run it as saved. A note
on stderr says so; the file carries no compile configuration. The layers the exporter refuses on
a channels_first sequence (LSTM, GRU, ZeroPadding1D, Cropping1D, UpSampling1D, PReLU,
LayerNormalization, Reshape, Permute, Concatenate) are refused here too, as is a Conv1D, Dense
or recurrent activation Keras cannot express as an activation string (leaky_relu with a slope
other than 0.2, elu with alpha other than 1, softmax inside a channels_first Conv1D).

The output is written atomically (a temporary file beside OUT, then a rename); OUT must end in
`.keras` and must not be MODEL_DIR or lie inside it. Anything unsupported or malformed stops
with one line `to_keras: error: <ErrorType>: <message>` on stderr and exit code 1; nothing is
written. The types: ModelDirError (a missing or unreadable file), SpecError (model.json is not a
valid widen model), UnsupportedError (valid, but not expressible here), WeightsError (a
malformed weights file, or tensors that do not match the architecture), KerasBuildError (Keras
refused a layer or the save), OutputError (OUT). Exit code 2: wrong usage.
"""
import json
import math
import os
import struct
import sys
import zlib

MODEL_FILE = "model.json"
SAFETENSORS = "weights.safetensors"
BURNPACK = "weights.bpk"
FORMAT = "widen-model"
VERSIONS = (1, 2)
DEFAULT_INPUT_NAME = "input"  # widen's name for an input that has none (version 1)
MAX_JSON_BYTES = 64 << 20
CRC_PREFIX = "widen.crc32."
INITIALIZER_FIELDS = {"kernel_initializer", "bias_initializer", "recurrent_initializer",
                      "alpha_initializer", "gamma_initializer", "beta_initializer"}


# ------------------------------------------------------------------------------------------
# errors: one line each, typed


class ToKerasError(Exception):
    """Base: the model cannot be converted; str(e) is one line."""


class ModelDirError(ToKerasError):
    """MODEL_DIR or one of its files is missing or unreadable."""


class SpecError(ToKerasError):
    """model.json is not a valid widen model description."""


class UnsupportedError(ToKerasError):
    """A valid widen model that this tool (or Keras) cannot express."""


class WeightsError(ToKerasError):
    """The weights file is malformed or does not match the architecture."""


class KerasBuildError(ToKerasError):
    """Keras refused to build or save a layer."""


class OutputError(ToKerasError):
    """OUT cannot be written where it was asked for."""


def _one_line(text, limit=300):
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _where(lay):
    return f"layer '{lay.get('name', '?')}' ({lay.get('type', '?')})"


# ------------------------------------------------------------------------------------------
# reading the model directory


def read_model_json(model_dir):
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isdir(model_dir):
        raise ModelDirError(f"{model_dir}: not a directory (a widen model directory holds "
                            f"{MODEL_FILE} and {SAFETENSORS})")
    try:
        size = os.path.getsize(path)
        if size > MAX_JSON_BYTES:
            raise SpecError(f"{path}: {size} bytes; a model.json over {MAX_JSON_BYTES} bytes "
                            "is refused")
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError as e:
        raise ModelDirError(f"{path}: no such file") from e
    except OSError as e:
        raise ModelDirError(f"{path}: cannot read it: {e.strerror or e}") from e
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        root = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except RecursionError as e:
        raise SpecError(f"{path}: not valid JSON: nested too deeply") from e
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: not valid JSON: {e.msg} at line {e.lineno} column "
                        f"{e.colno}") from e
    if not isinstance(root, dict):
        raise SpecError(f"{path}: expected a JSON object at the top level")
    if root.get("format") != FORMAT:
        raise SpecError(f"{path}: not a widen model: expected \"format\": \"{FORMAT}\", got "
                        f"{json.dumps(root.get('format'))}")
    version = root.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version not in VERSIONS:
        raise UnsupportedError(f"{path}: model format version {json.dumps(version)}; this tool "
                               f"reads versions {VERSIONS[0]} to {VERSIONS[-1]}")
    spec = root.get("spec")
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: missing the \"spec\" object")
    if not isinstance(spec.get("input"), dict):
        raise SpecError(f"{path}: spec: missing the \"input\" object")
    if not isinstance(spec.get("layers"), list) or not spec["layers"]:
        raise SpecError(f"{path}: spec: missing the \"layers\" array (or it is empty)")
    for i, lay in enumerate(spec["layers"]):
        if not isinstance(lay, dict):
            raise SpecError(f"{path}: spec.layers[{i}]: expected an object")
        if not isinstance(lay.get("name"), str) or not lay["name"]:
            raise SpecError(f"{path}: spec.layers[{i}]: missing a \"name\" string")
        if not isinstance(lay.get("type"), str):
            raise SpecError(f"{path}: spec.layers[{i}] '{lay['name']}': missing a \"type\" "
                            "string")
    return root


def weights_path(model_dir, envelope):
    named = envelope.get("weights")
    if named is not None and named not in (SAFETENSORS, BURNPACK):
        raise SpecError(f"{os.path.join(model_dir, MODEL_FILE)}: \"weights\" must be "
                        f"\"{SAFETENSORS}\" or \"{BURNPACK}\", got {json.dumps(named)}")
    if named is None:
        present = [n for n in (SAFETENSORS, BURNPACK)
                   if os.path.exists(os.path.join(model_dir, n))]
        if len(present) != 1:
            raise ModelDirError(f"{model_dir}: model.json names no weights file and "
                                f"{'none' if not present else 'both'} of {SAFETENSORS}, "
                                f"{BURNPACK} {'is' if not present else 'are'} present")
        named = present[0]
    if named == BURNPACK:
        raise UnsupportedError(f"{os.path.join(model_dir, BURNPACK)}: Burn's burnpack weights "
                               "cannot be read without Burn; save the model with safetensors "
                               "weights")
    return os.path.join(model_dir, named)


def read_safetensors(path):
    """{name: float32 C-order array}; checks the layout, dtypes, shapes and CRC metadata."""
    import numpy as np

    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise ModelDirError(f"{path}: no such file") from e
    except OSError as e:
        raise ModelDirError(f"{path}: cannot read it: {e.strerror or e}") from e
    if len(data) < 8:
        raise WeightsError(f"{path}: {len(data)} bytes; too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise WeightsError(f"{path}: the header claims {n} bytes but the file has "
                           f"{len(data) - 8} after the length")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise WeightsError(f"{path}: the safetensors header is not valid JSON") from e
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise WeightsError(f"{path}: __metadata__ is not an object")
    body = data[8 + n:]
    out = {}
    for name, t in header.items():
        where = f"{path}: tensor '{name}'"
        if not isinstance(t, dict):
            raise WeightsError(f"{where}: not an object")
        dtype, shape, offsets = t.get("dtype"), t.get("shape"), t.get("data_offsets")
        width = {"F32": 4, "F64": 8}.get(dtype)
        if width is None:
            raise WeightsError(f"{where}: dtype {json.dumps(dtype)}; only F32 (and F64) are "
                               "read")
        if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool)
                                                and d >= 0 for d in shape)):
            raise WeightsError(f"{where}: bad shape {json.dumps(shape)}")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise WeightsError(f"{where}: bad data_offsets {json.dumps(offsets)}")
        a, b = offsets
        count = math.prod(shape)
        if not 0 <= a <= b <= len(body) or b - a != count * width:
            raise WeightsError(f"{where}: data_offsets {offsets} do not hold {count} {dtype} "
                               f"values in a {len(body)}-byte body")
        raw = body[a:b]
        crc = metadata.get(f"{CRC_PREFIX}{name}")
        if crc is not None and f"{zlib.crc32(raw) & 0xFFFFFFFF:08x}" != str(crc).lower():
            raise WeightsError(f"{where}: CRC-32 {zlib.crc32(raw) & 0xFFFFFFFF:08x} differs "
                               f"from the stored {crc} (the file is damaged)")
        arr = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").reshape(shape)
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            index = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
            raise WeightsError(f"{where}: non-finite value at flat index {index}")
        out[name] = np.ascontiguousarray(arr)
    return out


# ------------------------------------------------------------------------------------------
# building


def keras_name(name):
    return name.replace("/", "__")


ACTIVATION_STRINGS = {"linear", "relu", "gelu", "tanh", "sigmoid", "softmax", "swish"}


def _float(lay, key, default):
    v = lay.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SpecError(f"{_where(lay)}: {key}: expected a finite number, got {json.dumps(v)}")
    return float(v)


def _int(lay, key, default=None, minimum=None):
    v = lay.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise SpecError(f"{_where(lay)}: {key}: expected an integer, got {json.dumps(v)}")
    if minimum is not None and v < minimum:
        raise SpecError(f"{_where(lay)}: {key}: {v} is below {minimum}")
    return v


def _bool(lay, key, default):
    v = lay.get(key, default)
    if not isinstance(v, bool):
        raise SpecError(f"{_where(lay)}: {key}: expected true or false, got {json.dumps(v)}")
    return v


def _pair(lay, key, default):
    v = lay.get(key, default)
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v, v]
    if not (isinstance(v, list) and len(v) == 2
            and all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in v)):
        raise SpecError(f"{_where(lay)}: {key}: expected [left, right], got {json.dumps(v)}")
    return tuple(v)


def _activation(lay, act, key="activation"):
    """The widen activation object `act` as {"name": ..., "alpha": ...}."""
    if act is None:
        return {"name": "linear"}
    if isinstance(act, str):  # tolerated: a bare name
        act = {"name": act}
    if not isinstance(act, dict) or not isinstance(act.get("name"), str):
        raise SpecError(f"{_where(lay)}: {key}: expected {{\"name\": ...}}, got "
                        f"{json.dumps(act)}")
    name = act["name"]
    if name == "silu":
        name = "swish"
    if name in ("none", ""):
        name = "linear"
    if name in ACTIVATION_STRINGS:
        return {"name": name}
    if name in ("leaky_relu", "elu"):
        alpha = act.get("alpha", 0.2 if name == "leaky_relu" else 1.0)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
                or not math.isfinite(alpha):
            raise SpecError(f"{_where(lay)}: {key}: alpha must be a finite number")
        return {"name": name, "alpha": float(alpha)}
    raise UnsupportedError(f"{_where(lay)}: {key} '{name}' is not a widen activation (linear, "
                           "relu, leaky_relu, elu, gelu, tanh, sigmoid, softmax, swish)")


def _activation_string(lay, act, key, seq_channels_first=False):
    """A Keras activation string for an activation inside Conv1D/Dense/LSTM/GRU."""
    a = _activation(lay, act, key)
    name = a["name"]
    if name == "leaky_relu" and a["alpha"] != 0.2:
        raise UnsupportedError(f"{_where(lay)}: {key} leaky_relu with alpha {a['alpha']}: Keras' "
                               "'leaky_relu' activation string has slope 0.2")
    if name == "elu" and a["alpha"] != 1.0:
        raise UnsupportedError(f"{_where(lay)}: {key} elu with alpha {a['alpha']}: Keras' 'elu' "
                               "activation string has alpha 1.0")
    if name == "softmax" and seq_channels_first:
        raise UnsupportedError(f"{_where(lay)}: {key} softmax on a channels_first sequence: "
                               "Keras would normalise over the length axis, widen over channels")
    return name


class Builder:
    """Turns spec layers into Keras layers called on Keras tensors."""

    def __init__(self, data_format):
        self.fmt = data_format
        self.assign = []  # (keras layer, {variable name: array}) to set once built
        self.used_tensors = set()

    # helpers --------------------------------------------------------------------------------

    @staticmethod
    def is_seq(t):
        return len(t.shape) == 3

    def channels_first_seq(self, t):
        return self.fmt == "channels_first" and self.is_seq(t)

    def refuse_channels_first(self, lay, inputs):
        if self.fmt == "channels_first" and any(self.is_seq(t) for t in inputs):
            raise UnsupportedError(f"{_where(lay)}: on a sequence of a channels_first model: "
                                   "Keras applies this layer to the axes as laid out, so it "
                                   "only has widen's meaning in a channels_last model")

    def need_seq(self, lay, t):
        if not self.is_seq(t):
            raise SpecError(f"{_where(lay)}: expects a sequence [batch, length, channels], got "
                            f"a value of shape {tuple(t.shape)}")

    def need_flat(self, lay, t):
        if len(t.shape) != 2:
            raise SpecError(f"{_where(lay)}: expects flat features [batch, features], got a "
                            f"value of shape {tuple(t.shape)}")

    def tensor(self, weights, lay, param):
        key = f"{lay['name']}.{param}"
        if key not in weights:
            raise WeightsError(f"{_where(lay)}: the weights file has no tensor '{key}'")
        self.used_tensors.add(key)
        return weights[key]

    # the layers -----------------------------------------------------------------------------

    def build(self, lay, inputs, weights, name):
        import keras

        L = keras.layers
        t = lay["type"]
        x = inputs[0]
        multi = t in ("add", "subtract", "multiply", "average", "maximum", "minimum",
                      "concatenate")
        if not multi and len(inputs) != 1:
            raise SpecError(f"{_where(lay)}: reads {len(inputs)} values; only merge layers read "
                            "several")
        if multi and len(inputs) < 2:
            raise SpecError(f"{_where(lay)}: a merge needs at least two inputs, got "
                            f"{len(inputs)}")
        cf = self.fmt
        ch_axis = 1 if self.channels_first_seq(x) else -1
        w = {}  # Keras variable name -> value

        if t == "conv1d":
            self.need_seq(lay, x)
            padding = lay.get("padding", "valid")
            if padding not in ("valid", "same", "causal"):
                raise SpecError(f"{_where(lay)}: padding {json.dumps(padding)}")
            use_bias = _bool(lay, "use_bias", True)
            layer = L.Conv1D(
                filters=_int(lay, "filters", minimum=1),
                kernel_size=_int(lay, "kernel_size", minimum=1),
                strides=_int(lay, "strides", 1, 1),
                dilation_rate=_int(lay, "dilation_rate", 1, 1),
                groups=_int(lay, "groups", 1, 1),
                padding=padding,
                activation=_activation_string(lay, lay.get("activation"), "activation",
                                              seq_channels_first=cf == "channels_first"),
                use_bias=use_bias,
                data_format=cf,
                name=name,
            )
            w["kernel"] = self.tensor(weights, lay, "weight").transpose(2, 1, 0)
            if use_bias:
                w["bias"] = self.tensor(weights, lay, "bias")
        elif t == "batch_norm1d":
            momentum = _float(lay, "momentum", 0.99)
            on = lay.get("momentum_on", "moving")
            if on == "batch":
                momentum = 1.0 - momentum
            elif on != "moving":
                raise SpecError(f"{_where(lay)}: momentum_on {json.dumps(on)} (moving or batch)")
            if _bool(lay, "unbiased_moving_variance", False):
                print(f"to_keras: note: {_where(lay)}: unbiased_moving_variance is true; Keras "
                      "updates the moving variance with the biased batch variance when "
                      "training (inference is unaffected)", file=sys.stderr)
            center, scale = _bool(lay, "center", True), _bool(lay, "scale", True)
            layer = L.BatchNormalization(axis=ch_axis, momentum=momentum,
                                         epsilon=_float(lay, "epsilon", 1e-3), center=center,
                                         scale=scale, name=name)
            if scale:
                w["gamma"] = self.tensor(weights, lay, "gamma")
            if center:
                w["beta"] = self.tensor(weights, lay, "beta")
            w["moving_mean"] = self.tensor(weights, lay, "moving_mean")
            w["moving_variance"] = self.tensor(weights, lay, "moving_variance")
        elif t == "normalization":
            self.need_seq(lay, x)
            import numpy as np

            def stat(param, default):
                key = f"{lay['name']}.{param}"
                if key in weights:
                    return self.tensor(weights, lay, param)
                listed = lay.get(param) or []
                channels = x.shape[ch_axis]
                return np.asarray(listed, np.float32) if listed else \
                    np.full((channels,), default, np.float32)

            mean, variance = stat("mean", 0.0), stat("variance", 1.0)
            if np.any(variance < 0):
                raise WeightsError(f"{_where(lay)}: a negative variance")
            layer = L.Normalization(axis=ch_axis, mean=mean.tolist(),
                                    variance=variance.tolist(), name=name)
        elif t in ("max_pool1d", "avg_pool1d"):
            self.need_seq(lay, x)
            padding = lay.get("padding", "valid")
            if padding not in ("valid", "same"):
                raise UnsupportedError(f"{_where(lay)}: padding {json.dumps(padding)} (Keras "
                                       "pools take valid or same)")
            pool = _int(lay, "pool_size", minimum=1)
            strides = lay.get("strides")
            strides = pool if strides is None else _int(lay, "strides", minimum=1)
            cls = L.MaxPooling1D if t == "max_pool1d" else L.AveragePooling1D
            layer = cls(pool_size=pool, strides=strides, padding=padding, data_format=cf,
                        name=name)
        elif t in ("global_max_pool1d", "global_avg_pool1d"):
            self.need_seq(lay, x)
            cls = L.GlobalMaxPooling1D if t == "global_max_pool1d" else \
                L.GlobalAveragePooling1D
            layer = cls(data_format=cf, name=name)
        elif t == "dense":
            self.need_flat(lay, x)
            use_bias = _bool(lay, "use_bias", True)
            layer = L.Dense(_int(lay, "units", minimum=1),
                            activation=_activation_string(lay, lay.get("activation"),
                                                          "activation"),
                            use_bias=use_bias, name=name)
            w["kernel"] = self.tensor(weights, lay, "weight")
            if use_bias:
                w["bias"] = self.tensor(weights, lay, "bias")
        elif t == "dropout":
            layer = L.Dropout(_float(lay, "rate", 0.0), name=name)
        elif t == "spatial_dropout1d":
            self.need_seq(lay, x)
            layer = L.SpatialDropout1D(_float(lay, "rate", 0.0), name=name)
        elif t == "flatten":
            self.need_seq(lay, x)
            layer = L.Flatten(name=name)  # as laid out: widen's order for either format
        elif t == "activation":
            a = _activation(lay, lay.get("activation"))
            if a["name"] == "leaky_relu":
                layer = L.LeakyReLU(negative_slope=a["alpha"], name=name)
            elif a["name"] == "elu":
                layer = L.ELU(alpha=a["alpha"], name=name)
            elif a["name"] == "softmax" and self.channels_first_seq(x):
                layer = L.Softmax(axis=1, name=name)  # widen's softmax runs over channels
            else:
                layer = L.Activation(a["name"], name=name)
        elif t == "relu":
            max_value = _float(lay, "max_value", None)
            threshold = _float(lay, "threshold", 0.0)
            if (max_value is not None and max_value < 0) or threshold < 0:
                raise UnsupportedError(f"{_where(lay)}: Keras' ReLU rejects a negative "
                                       "max_value or threshold")
            layer = L.ReLU(max_value=max_value, negative_slope=_float(lay, "negative_slope", 0.0),
                           threshold=threshold, name=name)
        elif t == "prelu":
            self.refuse_channels_first(lay, inputs)
            shared = lay.get("shared_axes")
            if shared is not None:
                if not (isinstance(shared, list) and all(isinstance(a, int) for a in shared)):
                    raise SpecError(f"{_where(lay)}: shared_axes {json.dumps(shared)}")
                shared = list(shared)
            layer = L.PReLU(shared_axes=shared, name=name)
            w["alpha"] = self.tensor(weights, lay, "alpha")
        elif t == "layer_normalization":
            self.refuse_channels_first(lay, inputs)
            axis = lay.get("axis", -1)
            if isinstance(axis, list) and len(axis) == 1:
                axis = axis[0]
            if axis not in (-1, len(x.shape) - 1):
                raise UnsupportedError(f"{_where(lay)}: axis {json.dumps(lay.get('axis'))}; "
                                       "only the last axis is supported")
            if _bool(lay, "rms_scaling", False):
                raise UnsupportedError(f"{_where(lay)}: rms_scaling true is not supported")
            center, scale = _bool(lay, "center", True), _bool(lay, "scale", True)
            layer = L.LayerNormalization(axis=-1, epsilon=_float(lay, "epsilon", 1e-3),
                                         center=center, scale=scale, name=name)
            if scale:
                w["gamma"] = self.tensor(weights, lay, "gamma")
            if center:
                w["beta"] = self.tensor(weights, lay, "beta")
        elif t in ("add", "subtract", "multiply", "average", "maximum", "minimum"):
            shapes = {tuple(i.shape[1:]) for i in inputs}
            if len(shapes) != 1:
                raise SpecError(f"{_where(lay)}: operands of different shapes "
                                f"{sorted(shapes, key=str)} (widen merges do not broadcast)")
            if t == "subtract" and len(inputs) != 2:
                raise SpecError(f"{_where(lay)}: subtract takes exactly two inputs")
            cls = {"add": L.Add, "subtract": L.Subtract, "multiply": L.Multiply,
                   "average": L.Average, "maximum": L.Maximum, "minimum": L.Minimum}[t]
            layer = cls(name=name)
        elif t == "concatenate":
            self.refuse_channels_first(lay, inputs)
            axis = _int(lay, "axis", -1)
            rank = len(x.shape)
            if not -rank <= axis < rank or axis % rank == 0:
                raise SpecError(f"{_where(lay)}: axis {axis} is not a non-batch axis of "
                                f"rank-{rank} values")
            layer = L.Concatenate(axis=axis, name=name)
        elif t in ("lstm", "gru"):
            self.need_seq(lay, x)
            self.refuse_channels_first(lay, inputs)
            units = _int(lay, "units", minimum=1)
            use_bias = _bool(lay, "use_bias", True)
            common = dict(
                units=units,
                activation=_activation_string(lay, lay.get("activation", {"name": "tanh"}),
                                              "activation"),
                recurrent_activation=_activation_string(
                    lay, lay.get("recurrent_activation", {"name": "sigmoid"}),
                    "recurrent_activation"),
                use_bias=use_bias,
                return_sequences=_bool(lay, "return_sequences", False),
                name=name,
            )
            if t == "lstm":
                layer = L.LSTM(unit_forget_bias=_bool(lay, "unit_forget_bias", True), **common)
            else:
                layer = L.GRU(reset_after=_bool(lay, "reset_after", True), **common)
            w["kernel"] = self.tensor(weights, lay, "kernel")
            w["recurrent_kernel"] = self.tensor(weights, lay, "recurrent_kernel")
            if use_bias:
                w["bias"] = self.tensor(weights, lay, "bias")
        elif t == "zero_padding1d":
            self.need_seq(lay, x)
            self.refuse_channels_first(lay, inputs)
            layer = L.ZeroPadding1D(padding=_pair(lay, "padding", 1), name=name)
        elif t == "cropping1d":
            self.need_seq(lay, x)
            self.refuse_channels_first(lay, inputs)
            layer = L.Cropping1D(cropping=_pair(lay, "cropping", 1), name=name)
        elif t == "up_sampling1d":
            self.need_seq(lay, x)
            self.refuse_channels_first(lay, inputs)
            layer = L.UpSampling1D(size=_int(lay, "size", 2, 1), name=name)
        elif t == "reshape":
            self.refuse_channels_first(lay, inputs)
            target = lay.get("target_shape")
            if not (isinstance(target, list) and len(target) in (1, 2)
                    and all(isinstance(d, int) and not isinstance(d, bool) for d in target)):
                raise SpecError(f"{_where(lay)}: target_shape {json.dumps(target)} (one or two "
                                "integers per example)")
            layer = L.Reshape(tuple(target), name=name)
        elif t == "permute":
            self.refuse_channels_first(lay, inputs)
            dims = lay.get("dims")
            if not (isinstance(dims, list) and all(isinstance(d, int) for d in dims)):
                raise SpecError(f"{_where(lay)}: dims {json.dumps(dims)}")
            layer = L.Permute(tuple(dims), name=name)
        else:
            raise UnsupportedError(f"{_where(lay)}: layer type '{t}' is not supported (conv1d, "
                                   "batch_norm1d, normalization, max_pool1d, avg_pool1d, "
                                   "global_max_pool1d, global_avg_pool1d, dense, dropout, "
                                   "spatial_dropout1d, flatten, activation, relu, prelu, "
                                   "layer_normalization, add, subtract, multiply, average, "
                                   "maximum, minimum, concatenate, lstm, gru, zero_padding1d, "
                                   "cropping1d, up_sampling1d, reshape, permute)")
        try:
            out = layer(inputs if multi else x)
        except ToKerasError:
            raise
        except Exception as e:  # noqa: BLE001 - Keras' shape errors, as one line
            raise KerasBuildError(f"{_where(lay)}: Keras cannot build it on input shapes "
                                  f"{[tuple(i.shape) for i in inputs]}: "
                                  f"{type(e).__name__}: {_one_line(e, 200)}") from e
        self.set_weights(lay, layer, w)
        return out

    def set_weights(self, lay, layer, values):
        import numpy as np

        variables = {v.name.split("/")[-1]: v for v in layer.weights}
        for vname, value in values.items():
            var = variables.pop(vname, None)
            if var is None:
                raise KerasBuildError(f"{_where(lay)}: Keras' {type(layer).__name__} has no "
                                      f"variable '{vname}'")
            want = tuple(var.shape)
            if tuple(value.shape) != want:
                raise WeightsError(f"{_where(lay)}: tensor for Keras' '{vname}' has shape "
                                   f"{list(value.shape)}, the layer needs {list(want)}")
            var.assign(np.asarray(value, np.float32))
        if variables:
            raise KerasBuildError(f"{_where(lay)}: Keras' {type(layer).__name__} has variables "
                                  f"{sorted(variables)} that widen does not store")


def build_model(model_dir):
    """(keras.Model, list of renamed names, envelope) for the widen model in `model_dir`."""
    import keras

    envelope = read_model_json(model_dir)
    spec = envelope["spec"]
    inp = spec["input"]
    fmt = inp.get("data_format", "channels_last")
    if fmt not in ("channels_last", "channels_first"):
        raise SpecError(f"spec.input.data_format {json.dumps(fmt)} (channels_last or "
                        "channels_first)")
    channels = inp.get("channels")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise SpecError(f"spec.input.channels {json.dumps(channels)}: expected a positive "
                        "integer")
    length = inp.get("length")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or length < 1):
        raise SpecError(f"spec.input.length {json.dumps(length)}: expected a positive integer "
                        "or null")
    input_name = inp.get("name", DEFAULT_INPUT_NAME)
    if not isinstance(input_name, str) or not input_name:
        raise SpecError(f"spec.input.name {json.dumps(input_name)}: expected a string")
    weights = read_safetensors(weights_path(model_dir, envelope))

    layers = spec["layers"]
    names = [input_name] + [lay["name"] for lay in layers]
    seen = set()
    for n in names:
        if n in seen:
            raise SpecError(f"duplicate name '{n}' (the input and every layer need their own)")
        seen.add(n)
    mapped = {n: keras_name(n) for n in names}
    if len(set(mapped.values())) != len(names):
        clash = sorted(n for n in names if list(mapped.values()).count(mapped[n]) > 1)
        raise UnsupportedError(f"names {clash} coincide once '/' is replaced by '__' (Keras "
                               "forbids '/' in names)")
    renamed = [(n, mapped[n]) for n in names if mapped[n] != n]

    shape = (length, channels) if fmt == "channels_last" else (channels, length)
    x = keras.Input(shape=shape, name=mapped[input_name])
    values = {input_name: x}
    used = {input_name: 0}
    builder = Builder(fmt)
    prev = input_name
    for index, lay in enumerate(layers):
        inbound = lay.get("inbound") or [prev]
        if not isinstance(inbound, list) or not all(isinstance(n, str) for n in inbound):
            raise SpecError(f"{_where(lay)}: inbound must be a list of names")
        for n in inbound:
            if n not in values:
                later = n in names
                raise SpecError(f"{_where(lay)}: inbound '{n}' is "
                                f"{'not earlier in the list' if later else 'no layer or input'}")
            used[n] = used.get(n, 0) + 1
        try:
            values[lay["name"]] = builder.build(lay, [values[n] for n in inbound], weights,
                                                mapped[lay["name"]])
        except ToKerasError:
            raise
        except Exception as e:  # noqa: BLE001 - Keras' constructor checks, as one line
            raise KerasBuildError(f"{_where(lay)}: Keras refuses it: {type(e).__name__}: "
                                  f"{_one_line(e, 200)}") from e
        used.setdefault(lay["name"], 0)
        prev = lay["name"]
    unused = [n for n in names[:-1] if used.get(n, 0) == 0]
    if unused:
        verb = "is" if len(unused) == 1 else "are"
        raise SpecError(f"{', '.join(repr(n) for n in unused)} {verb} not read by any layer (the "
                        "last layer is the only output)")
    extra = sorted(set(weights) - builder.used_tensors)
    if extra:
        shown = ", ".join(extra[:4]) + (", ..." if len(extra) > 4 else "")
        raise WeightsError(f"the weights file holds tensors the architecture does not use: "
                           f"{shown}")
    try:
        model = keras.Model(x, values[prev], name="widen_model")
    except Exception as e:  # noqa: BLE001
        raise KerasBuildError(f"keras.Model: {type(e).__name__}: {_one_line(e, 200)}") from e
    return model, renamed, envelope


# ------------------------------------------------------------------------------------------
# writing


def check_output_path(model_dir, out):
    if not out.endswith(".keras"):
        raise OutputError(f"{out}: the output must be a .keras file (Keras saves the native "
                          "format only under that extension)")
    real_out = os.path.realpath(out)
    real_dir = os.path.realpath(model_dir)
    if real_out == real_dir or os.path.commonpath([real_out, real_dir]) == real_dir:
        raise OutputError(f"{out}: is the model directory or lies inside it; write the .keras "
                          "file elsewhere")
    if os.path.isdir(out):
        raise OutputError(f"{out}: is a directory")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise OutputError(f"{out}: the directory {parent} does not exist")


def save_atomically(model, out):
    parent = os.path.dirname(os.path.abspath(out))
    tmp = os.path.join(parent, f".{os.path.basename(out)[:-len('.keras')]}.tmp-{os.getpid()}"
                               ".keras")
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OutputError(f"{out}: cannot write it: {e.strerror or e}") from e
        if isinstance(e, Exception):
            raise KerasBuildError(f"saving {out}: {type(e).__name__}: {_one_line(e, 200)}") \
                from e
        raise


def needs_xla(model):
    """True when TensorFlow's CPU kernels cannot run the model eagerly: a channels_first Conv1D
    with groups=1 (TensorFlow's CPU convolution is NHWC only; Keras itself sends grouped ones
    through XLA)."""
    return any(type(l).__name__ == "Conv1D" and l.data_format == "channels_first"
               and l.groups == 1 for l in model.layers)


def convert(model_dir, out):
    """Builds and saves; returns (keras model, renamed names, notes)."""
    check_output_path(model_dir, out)
    model, renamed, _ = build_model(model_dir)
    notes = []
    if needs_xla(model):
        notes.append("channels_first Conv1D: TensorFlow's CPU kernels run it only under XLA: "
                     "on a CPU call model.compile(jit_compile=True) before predict, or wrap "
                     "model(x) in tf.function(..., jit_compile=True) (GPUs and the JAX / "
                     "PyTorch backends run it as is)")
    save_atomically(model, out)
    return model, renamed, notes


def main(argv):
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(argv) != 3:
        print("usage: to_keras.py MODEL_DIR OUT.keras  (--help for details)", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        model, renamed, notes = convert(argv[1], argv[2])
    except ToKerasError as e:
        print(f"to_keras: error: {type(e).__name__}: {_one_line(e, 1000)}", file=sys.stderr)
        return 1
    if renamed:
        shown = ", ".join(f"'{a}' -> '{b}'" for a, b in renamed[:6])
        more = f" and {len(renamed) - 6} more" if len(renamed) > 6 else ""
        print(f"to_keras: note: Keras forbids '/' in names; renamed {shown}{more}",
              file=sys.stderr)
    for note in notes:
        print(f"to_keras: note: {note}", file=sys.stderr)
    print(f"wrote {argv[2]}: {len(model.layers) - 1} layers, input {tuple(model.inputs[0].shape)}"
          f", output {tuple(model.outputs[0].shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
