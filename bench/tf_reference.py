#!/usr/bin/env python3
"""TensorFlow/Keras baseline for `cargo xtask bench --vs-tf`.

Times the same shapes as `widen bench` on the CPU with 2 threads: seed ([10, 50, 8] ->
Conv1D(32, 3, valid)) and large ([64, 1024, 64] -> Conv1D(128, 9, same)), each then
BatchNormalization -> GlobalMaxPooling1D with a sum loss; fcn and resnet ([16, 512, 9], 6 classes;
Wang et al. 2017 as in Fawaz et al. 2019, the same architectures as widen_layers::zoo) with softmax
cross-entropy. Inference forward, and one training step (forward in training mode, loss,
gradients, Adam update), both as compiled tf.functions. Median of repeated runs after warm-up.
Prints exactly one JSON line last, in widen bench's format: per shape the two times, the FLOPs
of a forward and of a train step (Conv1D and Dense counted from the built model's layers as
widen counts them from its spec, the step 3x the forward), the GFLOP/s they make, and resident
memory: `base_rss_mib` (VmRSS once TF is imported, before the shape's model is built) and
`peak_rss_mib` (ru_maxrss, the whole process's high-water mark, earlier shapes and TF's own
libraries included: run one shape per process to attribute it, as `cargo xtask bench` does).

    python3 bench/tf_reference.py [seed,large,fcn,resnet]

Needs: pip install tensorflow-cpu==2.21.0
"""
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    import numpy as np
    import tensorflow as tf
    import keras
except ImportError as e:  # the caller reports the baseline as not run
    print(f"tensorflow not available: {e}", file=sys.stderr)
    sys.exit(3)

THREADS = int(os.environ.get("WIDEN_BENCH_THREADS", "2"))
tf.config.threading.set_intra_op_parallelism_threads(THREADS)
tf.config.threading.set_inter_op_parallelism_threads(1)

SHAPES = {
    "seed": dict(input=(10, 50, 8), filters=32, kernel=3, padding="valid", repeats=200),
    "large": dict(input=(64, 1024, 64), filters=128, kernel=9, padding="same", repeats=15),
    "fcn": dict(input=(16, 512, 9), network="fcn", repeats=10),
    "resnet": dict(input=(16, 512, 9), network="resnet", repeats=5),
}
CLASSES = 6


def fcn(inp):
    y = inp
    for f, k in [(128, 8), (256, 5), (128, 3)]:
        y = keras.layers.Conv1D(f, k, padding="same")(y)
        y = keras.layers.BatchNormalization()(y)
        y = keras.layers.Activation("relu")(y)
    return y


def resnet(inp):
    x = inp
    width = inp.shape[-1]
    for b, f in enumerate([64, 128, 128]):
        y = x
        for i, k in enumerate([8, 5, 3]):
            y = keras.layers.Conv1D(f, k, padding="same")(y)
            y = keras.layers.BatchNormalization()(y)
            if i < 2:
                y = keras.layers.Activation("relu")(y)
        if b == 0 or width != f:
            s = keras.layers.Conv1D(f, 1, padding="same")(x)
            s = keras.layers.BatchNormalization()(s)
        else:
            s = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(keras.layers.Add()([s, y]))
        width = f
    return x


def model_for(s):
    inp = keras.Input(shape=s["input"][1:])
    if s.get("network"):
        body = fcn(inp) if s["network"] == "fcn" else resnet(inp)
        y = keras.layers.GlobalAveragePooling1D()(body)
        y = keras.layers.Dense(CLASSES, activation="softmax")(y)
        return keras.Model(inp, y)
    y = keras.layers.Conv1D(s["filters"], s["kernel"], padding=s["padding"])(inp)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.GlobalMaxPooling1D()(y)
    return keras.Model(inp, y)


def forward_flops(model, batch):
    """FLOPs of one forward: 2*B*L_out*C_out*(C_in/groups)*K per Conv1D, 2*B*steps*in*units per
    Dense; BatchNorm, activations, pooling and Add are not counted (widen_train::bench::Shape::flops
    counts the same). Returns (total, the part in layers that read the model input)."""
    total = 0
    on_input = 0
    inputs = {id(t) for t in model.inputs}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv1D, keras.layers.Dense)):
            # The kernel is [K, C_in/groups, C_out] or [in, units]: one multiply-add per entry
            # per output position.
            per_position = int(np.prod(layer.kernel.shape))
            out_shape = layer.output.shape
            positions = int(np.prod(out_shape[1:-1])) if len(out_shape) > 2 else 1
            flops = 2 * batch * positions * per_position
            total += flops
            if id(layer.input) in inputs:
                on_input += flops
    return total, on_input


def rss_mib(field):
    """A kB field of /proc/self/status (VmRSS, VmHWM) in MiB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def median_ms(fn, repeats, warmup=2):
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        out = fn()
        # materialise the result so the timer covers the work
        if isinstance(out, (list, tuple)):
            [np.asarray(o) for o in out]
        else:
            np.asarray(out)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench(name):
    s = SHAPES[name]
    base_rss = rss_mib("VmRSS")
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal(s["input"]).astype(np.float32))
    model = model_for(s)
    opt = keras.optimizers.Adam(1e-3)
    labels = tf.constant(np.arange(s["input"][0]) % CLASSES)
    ce = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def forward():
        return model(x, training=False)

    @tf.function
    def train():
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = ce(labels, out) if s.get("network") else tf.reduce_sum(out)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    forward_ms = median_ms(forward, s["repeats"])
    train_ms = median_ms(train, s["repeats"])
    flops, on_input = forward_flops(model, s["input"][0])
    # The backward is a weight and an input gradient per layer, except no input gradient for
    # the layers reading the model input (widen_train::bench::Flops::train).
    train_flops = 3 * flops - on_input
    return {
        "forward_ms": forward_ms,
        "train_ms": train_ms,
        "forward_flops": flops,
        "train_flops": train_flops,
        "forward_gflops": flops / (forward_ms * 1e-3) / 1e9,
        "train_gflops": train_flops / (train_ms * 1e-3) / 1e9,
        "base_rss_mib": base_rss,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main():
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else ["seed", "large"]
    out = {n: bench(n) for n in names}
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, {THREADS} threads", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
