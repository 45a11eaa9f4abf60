//! Checkpoints: save → load is bit-identical in both formats, the files are what the module
//! docs promise (so a Python exporter can write them), and every bad checkpoint is its own
//! error naming the file and the tensor.

use std::fs;
use std::path::{Path, PathBuf};

use burn::store::burn_pack;
use burn::tensor::{Device, Tensor};
use proptest::prelude::*;
use safetensors::{Dtype, SafeTensors};
use widen_layers::{
    Activation, BatchNormConfig, Conv1dConfig, DataFormat, DenseConfig, DropoutConfig, InputSpec,
    LayerConfig, LayerError, ModelSpec, NormalizationConfig, PaddingMode, PoolConfig, Sequential,
    Value, WeightFormat, keras_ex1,
};

use crate::common::{TestDir, bits, devices, list, pseudo_random, tensor3, values};
use crate::stacks::{head, seq_layer};

fn output_bits(model: &Sequential, x: Tensor<3>) -> Vec<u32> {
    match model.forward(x).unwrap() {
        Value::Seq(t) => bits(t.into_data()),
        Value::Flat(t) => bits(t.into_data()),
    }
}

/// Every stored tensor: name, shape and raw bits.
fn weight_bits(model: &Sequential) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    model
        .weight_infos()
        .into_iter()
        .map(|i| {
            let data = model.weight(&i.layer, &i.param).unwrap();
            (i.key(), i.shape, bits(data))
        })
        .collect()
}

fn input(shape: [usize; 3], seed: u64, device: &Device) -> Tensor<3> {
    tensor3(&pseudo_random(shape.iter().product(), seed), shape, device)
}

/// Two training steps move BatchNorm's moving statistics off their initial 0 / 1, so a round
/// trip that lost them would show.
fn train_statistics(model: &Sequential, x: &Tensor<3>) {
    for _ in 0..2 {
        model.forward_train(x.clone()).unwrap();
    }
}

/// Every layer kind with tensors, both BatchNorm presets (one without beta), a conv without
/// bias, grouped/same convs, windowed pools, Flatten + Dropout + Dense.
fn mixed_spec() -> ModelSpec {
    ModelSpec::new(InputSpec::new(4).with_length(20))
        .push(LayerConfig::Normalization(NormalizationConfig {
            mean: vec![0.5, -1.0, 2.0, 0.0],
            variance: vec![4.0, 0.25, 1.0, 9.0],
        }))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(6, 3)
                .with_groups(2)
                .with_padding(PaddingMode::Same)
                .with_activation(Activation::Gelu),
        ))
        .push(LayerConfig::MaxPool1d(PoolConfig::new(2)))
        .push(LayerConfig::AvgPool1d(
            PoolConfig::new(3)
                .with_strides(2)
                .with_padding(PaddingMode::Same),
        ))
        .push(LayerConfig::BatchNorm1d(
            BatchNormConfig::pytorch().with_center(false),
        ))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(5, 1).with_bias(false),
        ))
        .push(LayerConfig::Flatten)
        .push(LayerConfig::Dropout(DropoutConfig { rate: 0.3 }))
        .push(LayerConfig::Dense(
            DenseConfig::new(7).with_activation(Activation::Relu),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
        .push(LayerConfig::Activation(Activation::Tanh))
        .push(LayerConfig::Dense(
            DenseConfig::new(3).with_activation(Activation::Softmax),
        ))
}

/// Channels-first with a variable length, a causal conv and global average pooling.
fn channels_first_spec() -> ModelSpec {
    ModelSpec::new(InputSpec::new(3).with_data_format(DataFormat::ChannelsFirst))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(4, 2)
                .with_padding(PaddingMode::Causal)
                .with_dilation_rate(2),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
        .push(LayerConfig::GlobalAvgPool1d)
        .push(LayerConfig::Dense(DenseConfig::new(2)))
}

#[test]
fn round_trip_is_bit_identical_in_both_formats() {
    let cases: [(&str, ModelSpec, [usize; 3]); 4] = [
        ("ex1", keras_ex1(8, 50), [10, 50, 8]),
        ("mixed", mixed_spec(), [5, 20, 4]),
        ("channels_first", channels_first_spec(), [4, 3, 17]),
        (
            "no tensors",
            ModelSpec::new(InputSpec::new(3)).push(LayerConfig::GlobalMaxPool1d),
            [2, 5, 3],
        ),
    ];
    for (device_name, device) in devices() {
        for (name, spec, shape) in &cases {
            for format in WeightFormat::ALL {
                let what = format!("{name} / {format:?} / {device_name}");
                let mut model = Sequential::new(spec.clone(), 11, &device).unwrap();
                if model.layer_index("normalization").is_some() {
                    // Weights, not the spec's initial statistics, must be what comes back.
                    let mean = burn::tensor::TensorData::new(vec![1.0f32, 2.0, -3.0, 0.25], [4]);
                    model.set_weight("normalization", "mean", mean).unwrap();
                }
                let x = input(*shape, 3, &device);
                train_statistics(&model, &x);
                if model.layer_index("batch_normalization").is_some() {
                    let moving =
                        values(model.weight("batch_normalization", "moving_mean").unwrap());
                    assert!(
                        moving.iter().any(|&m| m != 0.0),
                        "{what}: stats never moved"
                    );
                }

                let dir = TestDir::new("round-trip");
                let ckpt = dir.join("ckpt");
                model.save(&ckpt, format).unwrap();
                assert_eq!(
                    list(&ckpt),
                    ["model.json", format.file_name()],
                    "{what}: files"
                );
                let loaded = Sequential::load(&ckpt, &device).unwrap();

                assert_eq!(loaded.spec(), model.spec(), "{what}: spec");
                assert_eq!(weight_bits(&loaded), weight_bits(&model), "{what}: tensors");
                assert_eq!(
                    output_bits(&loaded, x.clone()),
                    output_bits(&model, x),
                    "{what}: inference output"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any stack that builds saves and loads back bit-identically: the loader's view of which
    /// tensors an architecture has agrees with the layers'.
    #[test]
    fn random_stacks_round_trip(
        channels in 1usize..6,
        length in 1usize..24,
        body in proptest::collection::vec(seq_layer(), 0..4),
        head in head(),
        seed in any::<u64>(),
        burnpack in any::<bool>(),
    ) {
        let device = Device::flex();
        let mut spec = ModelSpec::new(InputSpec::new(channels).with_length(length));
        for layer in body.into_iter().chain(head) {
            spec = spec.push(layer);
        }
        let Ok(model) = Sequential::new(spec, seed, &device) else {
            return Ok(());
        };
        let x = input([2, length, channels], seed, &device);
        train_statistics(&model, &x);
        let format = if burnpack { WeightFormat::Burnpack } else { WeightFormat::Safetensors };
        let dir = TestDir::new("prop");
        let ckpt = dir.join("ckpt");
        model.save(&ckpt, format).unwrap();
        let loaded = Sequential::load(&ckpt, &device).unwrap();
        prop_assert_eq!(&loaded.spec(), &model.spec());
        prop_assert_eq!(weight_bits(&loaded), weight_bits(&model));
        prop_assert_eq!(output_bits(&loaded, x.clone()), output_bits(&model, x));
    }
}

/// Bitwise CRC-32 (IEEE), independent of the library's table-driven one.
fn crc32_reference(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn files_follow_the_documented_format() {
    // The standard check value of CRC-32/ISO-HDLC (zlib.crc32(b"123456789")).
    assert_eq!(crc32_reference(b"123456789"), 0xCBF4_3926);
    let device = Device::flex();
    let model = Sequential::new(keras_ex1(8, 50), 5, &device).unwrap();
    train_statistics(&model, &input([10, 50, 8], 2, &device));
    let dir = TestDir::new("format");

    let ckpt = dir.join("st");
    model.save(&ckpt, WeightFormat::Safetensors).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(ckpt.join("model.json")).unwrap()).unwrap();
    assert_eq!(json["format"], "widen-model");
    assert_eq!(json["version"], 2);
    assert_eq!(json["spec"]["input"]["name"], "input");
    assert_eq!(
        json["spec"]["layers"][1]["inbound"],
        serde_json::json!(["conv1d"])
    );
    assert_eq!(json["weights"], "weights.safetensors");
    let spec: ModelSpec = serde_json::from_value(json["spec"].clone()).unwrap();
    assert_eq!(&spec, model.spec());

    let bytes = fs::read(ckpt.join("weights.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort();
    assert_eq!(
        names,
        [
            "batch_normalization.beta",
            "batch_normalization.gamma",
            "batch_normalization.moving_mean",
            "batch_normalization.moving_variance",
            "conv1d.bias",
            "conv1d.weight",
        ]
    );
    assert_eq!(file.tensor("conv1d.weight").unwrap().shape(), [32, 8, 3]);
    assert_eq!(
        file.tensor("batch_normalization.moving_mean")
            .unwrap()
            .shape(),
        [32]
    );
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    for info in model.weight_infos() {
        let view = file.tensor(&info.key()).unwrap();
        assert_eq!(view.dtype(), Dtype::F32, "{}", info.key());
        let want = le_bytes(&values(model.weight(&info.layer, &info.param).unwrap()));
        assert_eq!(view.data(), want.as_slice(), "{}", info.key());
        assert_eq!(
            meta[&format!("widen.crc32.{}", info.key())],
            format!("{:08x}", crc32_reference(&want)),
            "{}",
            info.key()
        );
    }

    let ckpt = dir.join("bpk");
    model.save(&ckpt, WeightFormat::Burnpack).unwrap();
    let bytes = fs::read(ckpt.join("weights.bpk")).unwrap();
    let reader = burn_pack::Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(bytes)).unwrap();
    let meta = reader.metadata().clone();
    let tensors = reader.into_tensors().unwrap();
    assert_eq!(tensors.len(), model.weight_infos().len());
    for t in tensors {
        let info = model
            .weight_infos()
            .into_iter()
            .find(|i| i.key() == t.name)
            .unwrap();
        assert_eq!(t.shape.to_vec(), info.shape, "{}", t.name);
        let name = t.name.clone();
        let data = t.into_bytes().unwrap().to_vec();
        let want = le_bytes(&values(model.weight(&info.layer, &info.param).unwrap()));
        assert_eq!(data, want, "{name}");
        assert_eq!(
            meta[&format!("widen.crc32.{name}")],
            format!("{:08x}", crc32_reference(&want))
        );
    }
}

/// Writes a safetensors file the way another program would.
fn write_safetensors(
    path: &Path,
    tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)],
    with_checksums: bool,
) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap();
            (name.clone(), view)
        })
        .collect();
    let meta = with_checksums.then(|| {
        tensors
            .iter()
            .map(|(name, _, _, data)| {
                (
                    format!("widen.crc32.{name}"),
                    format!("{:08x}", crc32_reference(data)),
                )
            })
            .collect()
    });
    fs::write(path, safetensors::serialize(views, meta).unwrap()).unwrap();
}

/// The model's tensors as F32 entries for `write_safetensors`.
fn f32_entries(model: &Sequential) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    model
        .weight_infos()
        .into_iter()
        .map(|i| {
            let data = le_bytes(&values(model.weight(&i.layer, &i.param).unwrap()));
            (i.key(), Dtype::F32, i.shape, data)
        })
        .collect()
}

fn write_model_json(dir: &Path, spec: &ModelSpec) {
    let json = serde_json::json!({"format": "widen-model", "version": 1, "spec": spec});
    fs::write(dir.join("model.json"), json.to_string()).unwrap();
}

#[test]
fn a_foreign_file_without_checksums_or_weights_name_loads() {
    // What a Keras exporter writes: no "weights" in model.json, one F64 tensor, no metadata.
    let device = Device::flex();
    let mut reference = Sequential::new(keras_ex1(8, 50), 9, &device).unwrap();
    let stats = pseudo_random(64, 4);
    let mean = burn::tensor::TensorData::new(stats[..32].to_vec(), [32]);
    let var: Vec<f32> = stats[32..].iter().map(|v| v.abs() + 0.5).collect();
    let var = burn::tensor::TensorData::new(var, [32]);
    reference
        .set_weight("batch_normalization", "moving_mean", mean)
        .unwrap();
    reference
        .set_weight("batch_normalization", "moving_variance", var)
        .unwrap();

    let dir = TestDir::new("foreign");
    let ckpt = dir.join("ckpt");
    fs::create_dir(&ckpt).unwrap();
    write_model_json(&ckpt, reference.spec());
    let mut entries = f32_entries(&reference);
    let conv = entries.iter_mut().find(|e| e.0 == "conv1d.weight").unwrap();
    let wide: Vec<u8> = values(reference.weight("conv1d", "weight").unwrap())
        .into_iter()
        .flat_map(|v| f64::from(v).to_le_bytes())
        .collect();
    conv.1 = Dtype::F64;
    conv.3 = wide;
    write_safetensors(&ckpt.join("weights.safetensors"), &entries, false);

    let loaded = Sequential::load(&ckpt, &device).unwrap();
    assert_eq!(weight_bits(&loaded), weight_bits(&reference));
    let x = input([3, 50, 8], 8, &device);
    assert_eq!(output_bits(&loaded, x.clone()), output_bits(&reference, x));
}

fn load_err(ckpt: &Path) -> LayerError {
    match Sequential::load(ckpt, &Device::flex()) {
        Ok(_) => panic!("{} loaded", ckpt.display()),
        Err(e) => e,
    }
}

/// An ex1 checkpoint in `format` inside a fresh scratch directory.
fn saved(format: WeightFormat) -> (TestDir, PathBuf, Sequential) {
    let dir = TestDir::new("bad");
    let ckpt = dir.join("ckpt");
    let model = Sequential::new(keras_ex1(8, 50), 5, &Device::flex()).unwrap();
    model.save(&ckpt, format).unwrap();
    (dir, ckpt, model)
}

#[test]
fn missing_directory_model_json_or_weights_are_not_found_errors() {
    let dir = TestDir::new("missing");
    let ckpt = dir.join("nothing-here");
    match load_err(&ckpt) {
        LayerError::CheckpointNotFound { path, .. } => assert_eq!(path, ckpt.display().to_string()),
        e => panic!("{e}"),
    }
    fs::create_dir(&ckpt).unwrap();
    match load_err(&ckpt) {
        LayerError::CheckpointNotFound { path, .. } => assert!(path.ends_with("model.json")),
        e => panic!("{e}"),
    }
    for format in WeightFormat::ALL {
        let (_dir, ckpt, _) = saved(format);
        fs::remove_file(ckpt.join(format.file_name())).unwrap();
        match load_err(&ckpt) {
            LayerError::CheckpointNotFound { path, what } => {
                assert!(path.ends_with(format.file_name()), "{path}");
                assert!(what.contains("weights"), "{what}");
            }
            e => panic!("{e}"),
        }
    }
}

#[test]
fn model_json_that_is_not_a_widen_model_is_refused() {
    let (_dir, ckpt, _) = saved(WeightFormat::Safetensors);
    let path = ckpt.join("model.json");
    let original: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();

    fs::write(
        &path,
        b"{\"format\": \"widen-model\", \"version\": 1, \"spec\": ",
    )
    .unwrap();
    match load_err(&ckpt) {
        LayerError::ModelJson { path: p, reason } => {
            assert!(p.ends_with("model.json"));
            assert!(reason.contains("not valid JSON"), "{reason}");
        }
        e => panic!("{e}"),
    }

    let mut keras = original.clone();
    keras["format"] = "keras".into();
    fs::write(&path, keras.to_string()).unwrap();
    match load_err(&ckpt) {
        LayerError::ModelJson { reason, .. } => assert!(reason.contains("\"keras\""), "{reason}"),
        e => panic!("{e}"),
    }

    let mut future = original.clone();
    future["version"] = 3.into();
    fs::write(&path, future.to_string()).unwrap();
    match load_err(&ckpt) {
        LayerError::CheckpointVersion {
            found,
            supported,
            oldest,
            ..
        } => {
            assert_eq!(found, "3");
            assert_eq!((oldest, supported), (1, 2));
        }
        e => panic!("{e}"),
    }
    for too_old in [0, -1] {
        let mut old = original.clone();
        old["version"] = too_old.into();
        fs::write(&path, old.to_string()).unwrap();
        assert!(matches!(
            load_err(&ckpt),
            LayerError::CheckpointVersion { .. }
        ));
    }

    let mut no_spec = original;
    no_spec.as_object_mut().unwrap().remove("spec");
    fs::write(&path, no_spec.to_string()).unwrap();
    assert!(matches!(load_err(&ckpt), LayerError::ModelJson { .. }));
}

#[test]
fn a_bad_layer_in_the_spec_is_named_by_index_and_name() {
    let (_dir, ckpt, _) = saved(WeightFormat::Safetensors);
    let path = ckpt.join("model.json");
    let original: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();

    let mut unknown = original.clone();
    unknown["spec"]["layers"][1]["type"] = "conv3d".into();
    fs::write(&path, unknown.to_string()).unwrap();
    let e = load_err(&ckpt);
    let message = e.to_string();
    match e {
        LayerError::LayerSpecJson {
            index,
            name,
            reason,
            ..
        } => {
            assert_eq!(index, 1);
            assert_eq!(name, "batch_normalization");
            assert!(reason.contains("conv3d"), "{reason}");
            assert!(message.contains("model.json"), "{message}");
        }
        e => panic!("{e}"),
    }

    let mut missing_field = original;
    missing_field["spec"]["layers"][0]
        .as_object_mut()
        .unwrap()
        .remove("filters");
    fs::write(&path, missing_field.to_string()).unwrap();
    match load_err(&ckpt) {
        LayerError::LayerSpecJson {
            index,
            name,
            reason,
            ..
        } => {
            assert_eq!((index, name.as_str()), (0, "conv1d"));
            assert!(reason.contains("filters"), "{reason}");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn an_architecture_that_does_not_build_is_invalid_spec() {
    let (_dir, ckpt, model) = saved(WeightFormat::Safetensors);
    let mut spec = model.spec().clone();
    spec.input.length = Some(2); // shorter than the kernel
    let json = serde_json::json!({"format": "widen-model", "version": 1, "spec": spec});
    fs::write(ckpt.join("model.json"), json.to_string()).unwrap();
    match load_err(&ckpt) {
        LayerError::InvalidSpec { path, source } => {
            assert!(path.ends_with("model.json"));
            assert!(source.to_string().contains("conv1d"), "{source}");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn truncated_or_garbled_weights_are_corrupt() {
    for format in WeightFormat::ALL {
        let (_dir, ckpt, _) = saved(format);
        let path = ckpt.join(format.file_name());
        let bytes = fs::read(&path).unwrap();

        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        match load_err(&ckpt) {
            LayerError::CorruptWeights { path: p, .. } => {
                assert!(p.ends_with(format.file_name()), "{p}")
            }
            e => panic!("{format:?}: {e}"),
        }

        // The container's own header: the safetensors JSON / the burnpack magic.
        let mut garbled = bytes.clone();
        let at = match format {
            WeightFormat::Safetensors => 8,
            WeightFormat::Burnpack => 0,
        };
        garbled[at..at + 4].copy_from_slice(&[0xFF, 0x00, 0xFE, 0x01]);
        fs::write(&path, &garbled).unwrap();
        assert!(
            matches!(load_err(&ckpt), LayerError::CorruptWeights { .. }),
            "{format:?}"
        );
    }
}

#[test]
fn flipped_data_bits_fail_the_checksum() {
    for format in WeightFormat::ALL {
        let (_dir, ckpt, model) = saved(format);
        let path = ckpt.join(format.file_name());
        let mut bytes = fs::read(&path).unwrap();
        let weight = le_bytes(&values(model.weight("conv1d", "weight").unwrap()));
        let at = bytes
            .windows(16)
            .position(|w| w == &weight[..16])
            .expect("the conv weight's bytes are in the file");
        // The lowest mantissa bit: the value stays finite and plausible, only the CRC sees it.
        bytes[at] ^= 1;
        fs::write(&path, &bytes).unwrap();
        match load_err(&ckpt) {
            LayerError::WeightChecksum { path, tensor, .. } => {
                assert_eq!(tensor, "conv1d.weight");
                assert!(path.ends_with(format.file_name()), "{path}");
            }
            e => panic!("{format:?}: {e}"),
        }
    }
}

/// Replaces `ckpt/model.json` with the one `spec` would get when saved in `format`.
fn swap_model_json(ckpt: &Path, spec: ModelSpec, format: WeightFormat) {
    let other = TestDir::new("other");
    let model = Sequential::new(spec, 1, &Device::flex()).unwrap();
    model.save(&other.join("ckpt"), format).unwrap();
    fs::copy(
        other.join("ckpt").join("model.json"),
        ckpt.join("model.json"),
    )
    .unwrap();
}

#[test]
fn weights_of_another_architecture_are_refused_by_tensor() {
    for format in WeightFormat::ALL {
        // Same stack for 6 channels: the conv kernel's shape differs.
        let (_dir, ckpt, _) = saved(format);
        swap_model_json(&ckpt, keras_ex1(6, 50), format);
        let e = load_err(&ckpt);
        let message = e.to_string();
        match e {
            LayerError::WeightShape {
                path,
                tensor,
                expected,
                got,
            } => {
                assert!(path.ends_with(format.file_name()), "{path}");
                assert_eq!(tensor, "conv1d.weight");
                assert_eq!(expected, [32, 6, 3]);
                assert_eq!(got, "[32, 8, 3]");
                assert!(
                    message.contains(
                        "tensor `conv1d.weight`: expected shape [32, 6, 3], got [32, 8, 3]"
                    ),
                    "{message}"
                );
            }
            e => panic!("{format:?}: {e}"),
        }

        // A Dense head the file knows nothing of.
        let (_dir, ckpt, _) = saved(format);
        swap_model_json(
            &ckpt,
            keras_ex1(8, 50).push(LayerConfig::Dense(DenseConfig::new(3))),
            format,
        );
        match load_err(&ckpt) {
            LayerError::MissingTensor {
                tensor, expected, ..
            } => {
                assert_eq!(tensor, "dense.weight");
                assert_eq!(expected, [32, 3]);
            }
            e => panic!("{format:?}: {e}"),
        }

        // A conv without bias: the file's bias has no place.
        let (_dir, ckpt, _) = saved(format);
        let mut spec = keras_ex1(8, 50);
        if let LayerConfig::Conv1d(c) = &mut spec.layers[0].config {
            c.use_bias = false;
        }
        swap_model_json(&ckpt, spec, format);
        match load_err(&ckpt) {
            LayerError::UnexpectedTensor { tensor, shape, .. } => {
                assert_eq!(tensor, "conv1d.bias");
                assert_eq!(shape, [32]);
            }
            e => panic!("{format:?}: {e}"),
        }
    }
}

/// An ex1 checkpoint whose BatchNorm `moving_variance` holds `values` at the given indices,
/// written the way another program would (with or without checksums).
fn with_moving_variance(values: &[(usize, f32)], with_checksums: bool) -> (TestDir, PathBuf) {
    let (dir, ckpt, model) = saved(WeightFormat::Safetensors);
    let mut entries = f32_entries(&model);
    let var = entries
        .iter_mut()
        .find(|e| e.0 == "batch_normalization.moving_variance")
        .unwrap();
    for &(index, value) in values {
        var.3[index * 4..index * 4 + 4].copy_from_slice(&value.to_le_bytes());
    }
    write_safetensors(&ckpt.join("weights.safetensors"), &entries, with_checksums);
    (dir, ckpt)
}

#[test]
fn non_finite_or_non_float_weights_are_refused() {
    for (bad, with_checksums) in [(f32::NAN, false), (f32::INFINITY, true)] {
        let (_dir, ckpt) = with_moving_variance(&[(5, bad)], with_checksums);
        match load_err(&ckpt) {
            LayerError::NonFiniteWeight { tensor, index, .. } => {
                assert_eq!(tensor, "batch_normalization.moving_variance");
                assert_eq!(index, 5);
            }
            e => panic!("{bad}: {e}"),
        }
    }

    let (_dir, ckpt, model) = saved(WeightFormat::Safetensors);
    let mut entries = f32_entries(&model);
    let bias = entries.iter_mut().find(|e| e.0 == "conv1d.bias").unwrap();
    bias.1 = Dtype::I32;
    write_safetensors(&ckpt.join("weights.safetensors"), &entries, false);
    match load_err(&ckpt) {
        LayerError::WeightDtype { tensor, dtype, .. } => {
            assert_eq!(tensor, "conv1d.bias");
            assert_eq!(dtype, "I32");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn two_weight_files_need_model_json_to_choose() {
    let (_dir, ckpt, model) = saved(WeightFormat::Safetensors);
    let other = TestDir::new("second");
    model
        .save(&other.join("ckpt"), WeightFormat::Burnpack)
        .unwrap();
    fs::copy(
        other.join("ckpt").join("weights.bpk"),
        ckpt.join("weights.bpk"),
    )
    .unwrap();
    // model.json names weights.safetensors: unambiguous.
    Sequential::load(&ckpt, &Device::flex()).unwrap();
    write_model_json(&ckpt, model.spec());
    match load_err(&ckpt) {
        LayerError::Checkpoint { reason, .. } => assert!(reason.contains("both"), "{reason}"),
        e => panic!("{e}"),
    }
}

#[test]
fn failed_saves_leave_nothing_behind() {
    let device = Device::flex();
    let model = Sequential::new(keras_ex1(8, 50), 5, &device).unwrap();
    let dir = TestDir::new("failed-save");

    // The parent is a file.
    fs::write(dir.join("file"), b"keep me").unwrap();
    let e = model
        .save(&dir.join("file").join("ckpt"), WeightFormat::Safetensors)
        .unwrap_err();
    assert!(matches!(e, LayerError::Checkpoint { .. }), "{e}");
    assert_eq!(dir.entries(), ["file"]);

    // The parent does not exist.
    let e = model
        .save(&dir.join("missing").join("ckpt"), WeightFormat::Safetensors)
        .unwrap_err();
    assert!(matches!(e, LayerError::CheckpointNotFound { .. }), "{e}");
    assert_eq!(dir.entries(), ["file"]);

    // The target is a file, or a directory that is not a checkpoint: refused, untouched.
    let e = model
        .save(&dir.join("file"), WeightFormat::Safetensors)
        .unwrap_err();
    assert!(matches!(e, LayerError::Checkpoint { .. }), "{e}");
    assert_eq!(fs::read(dir.join("file")).unwrap(), b"keep me");
    fs::create_dir(dir.join("notes")).unwrap();
    fs::write(dir.join("notes").join("todo.txt"), b"mine").unwrap();
    let e = model
        .save(&dir.join("notes"), WeightFormat::Burnpack)
        .unwrap_err();
    assert!(matches!(e, LayerError::Checkpoint { .. }), "{e}");
    assert_eq!(list(&dir.join("notes")), ["todo.txt"]);
    assert_eq!(dir.entries(), ["file", "notes"]);

    // Non-finite statistics (an infinite input in training) are refused before any write.
    let diverged = Sequential::new(keras_ex1(8, 50), 5, &device).unwrap();
    let mut x = pseudo_random(2 * 50 * 8, 1);
    x[17] = f32::INFINITY;
    diverged
        .forward_train(tensor3(&x, [2, 50, 8], &device))
        .unwrap();
    let e = diverged
        .save(&dir.join("ckpt"), WeightFormat::Safetensors)
        .unwrap_err();
    match e {
        LayerError::NonFiniteWeight { tensor, .. } => {
            assert!(
                tensor.starts_with("batch_normalization.moving_"),
                "{tensor}"
            )
        }
        e => panic!("{e}"),
    }
    assert_eq!(dir.entries(), ["file", "notes"]);
}

#[test]
fn saving_over_a_checkpoint_replaces_it_whole() {
    let device = Device::flex();
    let first = Sequential::new(keras_ex1(8, 50), 1, &device).unwrap();
    let second = Sequential::new(keras_ex1(8, 50), 2, &device).unwrap();
    let dir = TestDir::new("replace");
    let ckpt = dir.join("ckpt");
    first.save(&ckpt, WeightFormat::Safetensors).unwrap();
    second.save(&ckpt, WeightFormat::Burnpack).unwrap();
    // No stale weights of the other format, no leftover temporary or old directories.
    assert_eq!(list(&ckpt), ["model.json", "weights.bpk"]);
    assert_eq!(dir.entries(), ["ckpt"]);
    let loaded = Sequential::load(&ckpt, &device).unwrap();
    let x = input([2, 50, 8], 6, &device);
    assert_eq!(
        output_bits(&loaded, x.clone()),
        output_bits(&second, x.clone())
    );
    assert_ne!(output_bits(&loaded, x.clone()), output_bits(&first, x));
}

#[test]
fn negative_variances_are_refused_at_load() {
    let (_dir, ckpt) = with_moving_variance(&[(3, 0.0), (7, -0.25)], true);
    match load_err(&ckpt) {
        LayerError::InvalidStatistic {
            tensor,
            index,
            value,
            ..
        } => {
            assert_eq!(tensor, "batch_normalization.moving_variance");
            assert_eq!((index, value), (7, -0.25));
        }
        e => panic!("{e}"),
    }
}

/// Readers are as strict as the formats and no stricter: a byte-order mark before model.json's
/// JSON is accepted; a Keras file where a directory belongs says how to export it; a tensor
/// whose byte range does not fit its shape is named.
#[test]
fn format_edges_get_clear_answers() {
    let (dir, ckpt, model) = saved(WeightFormat::Safetensors);
    let path = ckpt.join("model.json");
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(fs::read(&path).unwrap());
    fs::write(&path, bom).unwrap();
    let loaded = Sequential::load(&ckpt, &Device::flex()).unwrap();
    assert_eq!(weight_bits(&loaded), weight_bits(&model));

    let keras = dir.join("model.keras");
    fs::write(&keras, b"PK\x03\x04").unwrap();
    let text = load_err(&keras).to_string();
    assert!(text.contains("tools/keras_export.py"), "{text}");

    // Shrink the declared shape of one tensor in the header, keeping its data offsets.
    let weights = ckpt.join("weights.safetensors");
    let bytes = fs::read(&weights).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let edited = header.replacen("\"shape\":[32]", "\"shape\":[31]", 1);
    assert_ne!(edited, header, "the test needs a [32] tensor: {header}");
    let mut out = (edited.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(edited.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    fs::write(&weights, out).unwrap();
    let text = load_err(&ckpt).to_string();
    assert!(
        text.contains("tensor `") && text.contains("needs 124 bytes"),
        "{text}"
    );
}

/// float64 weights beyond float32's range are named as such, not as a non-finite value.
#[test]
fn float64_weights_out_of_float32_range_are_refused() {
    let (_dir, ckpt, model) = saved(WeightFormat::Safetensors);
    let mut entries = f32_entries(&model);
    let bias = entries.iter_mut().find(|e| e.0 == "conv1d.bias").unwrap();
    let mut wide: Vec<f64> = vec![0.0; 32];
    wide[3] = 1e300;
    bias.1 = Dtype::F64;
    bias.3 = wide.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_safetensors(&ckpt.join("weights.safetensors"), &entries, false);
    let text = load_err(&ckpt).to_string();
    assert!(
        text.contains("conv1d.bias") && text.contains("out of float32 range"),
        "{text}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Float settings in the spec (an initializer's scale, a dropout rate) read back
    /// bit-identical: serde_json parses floats exactly rounded (`float_roundtrip`). The
    /// fuzzer found `scale: 1e-45` reading back one ulp off with the default parser.
    #[test]
    fn float_settings_survive_a_save_and_load_bit_exactly(
        exponent in -45.0f64..10.0,
        rate in 0.0f64..1.0,
    ) {
        // Arbitrary f64s (no short decimal form) across the range an initializer may use.
        let scale = 10f64.powf(exponent);
        let init = widen_init::Initializer::variance_scaling(
            scale,
            widen_init::FanMode::FanIn,
            widen_init::Distribution::Normal,
        );
        let spec = ModelSpec::new(InputSpec::new(3).with_length(12))
            .push(LayerConfig::Conv1d(Conv1dConfig::new(4, 3).with_kernel_initializer(init)))
            .push(LayerConfig::Dropout(DropoutConfig { rate }))
            .push(LayerConfig::GlobalMaxPool1d);
        // Parameters are drawn only to fill the file; a scale the sampler refuses is skipped.
        let Ok(model) = Sequential::new(spec.clone(), 1, &Device::flex()) else {
            return Ok(());
        };
        let dir = TestDir::new("float-settings");
        let ckpt = dir.join("ckpt");
        model.save(&ckpt, WeightFormat::Safetensors).unwrap();
        let loaded = Sequential::load(&ckpt, &Device::flex()).unwrap();
        prop_assert_eq!(loaded.spec(), &spec);
    }
}

/// The fuzzer's case itself.
#[test]
fn the_smallest_subnormal_scale_round_trips() {
    let json = r#"{"variance_scaling":{"scale":1e-45,"mode":"fan_in","distribution":"normal"}}"#;
    let init: widen_init::Initializer = serde_json::from_str(json).unwrap();
    let back: widen_init::Initializer =
        serde_json::from_str(&serde_json::to_string(&init).unwrap()).unwrap();
    assert_eq!(init, back);
}

#[test]
fn graphs_round_trip_through_a_checkpoint() {
    use widen_layers::zoo;
    let device = Device::flex();
    let input_spec = widen_layers::InputSpec::new(3).with_length(20);
    let specs = [
        zoo::resnet(
            input_spec,
            2,
            &zoo::ResNetConfig {
                filters: vec![4, 8],
                kernels: [5, 3, 3],
            },
        ),
        zoo::inception_time(
            input_spec,
            2,
            &zoo::InceptionTimeConfig {
                depth: 3,
                filters: 2,
                bottleneck: 2,
                kernels: [7, 5, 3],
                residual: true,
            },
        ),
    ];
    let dir = TestDir::new("graphs");
    for (i, spec) in specs.into_iter().enumerate() {
        let model = Sequential::new(spec, 3 + i as u64, &device).unwrap();
        let ckpt = dir.join(&format!("g{i}"));
        model.save(&ckpt, WeightFormat::Safetensors).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(ckpt.join("model.json")).unwrap()).unwrap();
        assert_eq!(json["spec"]["input"]["name"], "input_layer");
        let add = json["spec"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["type"] == "add")
            .unwrap();
        assert_eq!(add["inbound"].as_array().unwrap().len(), 2);
        let loaded = Sequential::load(&ckpt, &device).unwrap();
        assert_eq!(loaded.spec(), model.spec());
        let x = input([2, 20, 3], 4, &device);
        assert_eq!(output_bits(&loaded, x.clone()), output_bits(&model, x));
    }
}

/// `copy_to_device` carries every stored tensor bit for bit (BatchNorm's moving statistics too) to
/// an autodiff device, where the model trains: gradients reach its parameters.
#[test]
fn copy_to_device_moves_every_tensor_and_the_copy_trains() {
    let device = Device::flex();
    let spec = keras_ex1(3, 12);
    let mut model = Sequential::new(spec, 7, &device).unwrap();
    // Non-default moving statistics, so a rebuild without the copy would differ.
    let bn = model
        .weight_infos()
        .into_iter()
        .find(|w| w.param == "moving_mean")
        .unwrap();
    let n = bn.shape.iter().product::<usize>();
    let stats: Vec<f32> = (0..n).map(|i| 0.25 + i as f32).collect();
    model
        .set_weight(
            &bn.layer,
            "moving_mean",
            burn::tensor::TensorData::new(stats, bn.shape.clone()),
        )
        .unwrap();
    let ad = device.clone().autodiff();
    let moved = model.copy_to_device(&ad).unwrap();
    assert_eq!(weight_bits(&moved), weight_bits(&model));
    assert!(
        burn::module::Module::devices(&moved)
            .iter()
            .all(Device::is_autodiff)
    );
    let x = input([2, 12, 3], 3, &ad);
    let out = match moved.forward_train(x).unwrap() {
        Value::Seq(t) => t.sum(),
        Value::Flat(t) => t.sum(),
    };
    let grads = out.backward();
    assert!(
        !burn::optim::GradientsParams::from_grads(grads, &moved).is_empty(),
        "no gradient reached the moved model's parameters"
    );
}
