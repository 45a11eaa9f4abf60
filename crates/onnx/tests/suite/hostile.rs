//! Bytes that are not a model widen imports: typed errors that say why, never a panic, and
//! nothing allocated that a header merely claims.

use proptest::prelude::*;
use prost::Message;
use widen_layers::{Model, keras_ex1};
use widen_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto,
    attr_type, data_type,
};
use widen_onnx::{OnnxError, import, import_model};

use crate::common::{device, fixtures, max_diff, read_npy, run};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(path)).unwrap()
}

fn decode(bytes: &[u8]) -> ModelProto {
    ModelProto::decode(bytes).unwrap()
}

fn graph(m: &mut ModelProto) -> &mut GraphProto {
    m.graph.as_mut().unwrap()
}

/// The initializer called `name`.
fn initializer<'a>(m: &'a mut ModelProto, name: &str) -> &'a mut TensorProto {
    graph(m)
        .initializer
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap()
}

/// The first node of type `op`.
fn node_of<'a>(m: &'a mut ModelProto, op: &str) -> &'a mut NodeProto {
    graph(m).node.iter_mut().find(|n| n.op_type == op).unwrap()
}

/// Makes axis `axis` of the graph input a named, dynamic dimension.
fn make_input_dim_dynamic(m: &mut ModelProto, axis: usize, param: &str) {
    let t = graph(m).input[0]
        .r#type
        .as_mut()
        .unwrap()
        .tensor_type
        .as_mut()
        .unwrap();
    t.shape.as_mut().unwrap().dim[axis] = widen_onnx::proto::Dimension {
        dim_value: None,
        dim_param: Some(param.into()),
    };
}

/// Import of `m` fails with a graph error whose reason mentions `what`.
fn assert_graph_error(m: &ModelProto, what: &str) {
    let e = error(&m.encode_to_vec());
    assert!(
        matches!(&e, OnnxError::Graph { reason } if reason.contains(what)),
        "{e}"
    );
}

fn error(bytes: &[u8]) -> OnnxError {
    match import(bytes) {
        Ok((spec, _)) => panic!("imported: {spec:?}"),
        Err(e) => e,
    }
}

/// A valid export to mutate: Ex1 (Conv, BN, global max pool).
fn valid() -> Vec<u8> {
    let model = Model::new(keras_ex1(4, 12), 3, &device()).unwrap();
    widen_onnx::export(&model).unwrap()
}

/// Every import of a mutant must be Ok or a typed error; a successful one must build (or
/// fail typed) too.
fn no_panic(bytes: &[u8]) {
    if let Ok((spec, weights)) = import(bytes) {
        let _ = widen_onnx::build(spec, weights, &device());
    }
}

#[test]
fn empty_and_random_bytes_are_refused() {
    assert!(matches!(error(&[]), OnnxError::Model { .. }));
    let e = error(&fixture("hostile/not_onnx.onnx"));
    assert!(matches!(e, OnnxError::Decode { .. }), "{e}");
}

#[test]
fn every_sixteenth_truncation_is_refused() {
    for bytes in [
        valid(),
        fixture("plain_cnn/model.onnx"),
        fixture("branch_concat/model.onnx"),
    ] {
        for k in 1..16 {
            let cut = &bytes[..bytes.len() * k / 16];
            assert!(import(cut).is_err(), "a cut at {k}/16 imported");
        }
    }
    let e = error(&fixture("hostile/truncated.onnx"));
    assert!(e.to_string().contains("not a readable ONNX model"), "{e}");
}

#[test]
fn declared_lengths_past_the_end_are_refused() {
    let e = error(&fixture("hostile/huge_length.onnx"));
    assert!(matches!(e, OnnxError::Decode { .. }), "{e}");
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    // widen declares no sub-graph fields, so prost skips the nested graphs without
    // descending into them; what is left is a graph with no input.
    let e = error(&fixture("hostile/deep_nesting.onnx"));
    assert!(matches!(e, OnnxError::Model { .. }), "{e}");
}

#[test]
fn a_two_dimensional_model_is_refused() {
    let e = error(&fixture("hostile/conv2d.onnx")).to_string();
    assert!(e.contains("4 dimensions") && e.contains("1-D"), "{e}");
}

#[test]
fn an_unsupported_op_names_the_node_and_the_op() {
    let e = error(&fixture("hostile/unsupported_op.onnx"));
    let OnnxError::Unsupported { op, node, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(op, "Einsum", "{e}");
    assert!(!node.is_empty(), "{e}");
    // And a node of our own naming.
    let mut m = decode(&valid());
    let g = graph(&mut m);
    g.node[0].op_type = "Einsum".into();
    g.node[0].name = "my_einsum".into();
    let e = error(&m.encode_to_vec()).to_string();
    assert!(e.contains("`my_einsum`") && e.contains("(Einsum)"), "{e}");
}

#[test]
fn an_unknown_attribute_is_refused_by_name() {
    let mut m = decode(&valid());
    let conv = node_of(&mut m, "Conv");
    conv.attribute.push(AttributeProto {
        name: "wobble".into(),
        i: 1,
        r#type: attr_type::INT,
        ..AttributeProto::default()
    });
    let e = error(&m.encode_to_vec()).to_string();
    assert!(e.contains("wobble"), "{e}");
}

#[test]
fn a_dynamic_length_imports_when_nothing_needs_it_fixed() {
    // plain_cnn with `length` dynamic: GlobalAveragePool before its Flatten, so any length.
    let bytes = fixture("hostile/dynamic_length.onnx");
    let (spec, _) = import(&bytes).unwrap();
    assert_eq!(spec.input.length, None);
    let model = import_model(&bytes, &device()).unwrap();
    for length in [32, 21] {
        let x = crate::common::pseudo_random(2 * 3 * length, length as u64);
        let (dims, _) = run(&model, &x, [2, 3, length]);
        assert_eq!(dims, [2, 4]);
    }
    // conv_options flattens [8, 8]: with a dynamic length that is refused, naming the node.
    let mut m = decode(&fixture("conv_options/model.onnx"));
    make_input_dim_dynamic(&mut m, 2, "length");
    let e = error(&m.encode_to_vec()).to_string();
    assert!(e.contains("Flatten") && e.contains("dynamic length"), "{e}");
}

#[test]
fn a_dynamic_channel_axis_is_refused() {
    let mut m = decode(&fixture("plain_cnn/model.onnx"));
    make_input_dim_dynamic(&mut m, 1, "channels");
    let e = error(&m.encode_to_vec()).to_string();
    assert!(e.contains("channel axis"), "{e}");
}

#[test]
fn absurd_dims_are_refused_before_allocating() {
    for dims in [
        vec![1 << 40, 1 << 40, 3],
        vec![i64::MAX, i64::MAX, i64::MAX],
        vec![-4, 3, 5],
    ] {
        let mut m = decode(&fixture("plain_cnn/model.onnx"));
        let w = initializer(&mut m, "conv1.weight");
        w.dims = dims.clone();
        let e = error(&m.encode_to_vec());
        assert!(
            matches!(e, OnnxError::Budget(_) | OnnxError::Tensor { .. }),
            "{dims:?}: {e}"
        );
    }
}

#[test]
fn external_data_and_integer_weights_are_refused() {
    let mut m = decode(&fixture("plain_cnn/model.onnx"));
    let w = initializer(&mut m, "conv1.weight");
    w.raw_data.clear();
    w.data_location = 1;
    w.external_data = vec![StringStringEntryProto {
        key: "location".into(),
        value: "weights.bin".into(),
    }];
    let e = error(&m.encode_to_vec()).to_string();
    assert!(
        e.contains("conv1.weight") && e.contains("weights.bin"),
        "{e}"
    );

    let mut m = decode(&fixture("plain_cnn/model.onnx"));
    let w = initializer(&mut m, "conv1.weight");
    w.data_type = 3; // INT8
    let e = error(&m.encode_to_vec()).to_string();
    assert!(e.contains("conv1.weight") && e.contains("INT8"), "{e}");
}

/// The fixture with every FLOAT initializer rewritten as `kind`.
fn with_weights_as(kind: i32) -> Vec<u8> {
    let mut m = decode(&fixture("plain_cnn/model.onnx"));
    for t in &mut graph(&mut m).initializer {
        if t.data_type != data_type::FLOAT {
            continue;
        }
        let values: Vec<f32> = t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        t.raw_data.clear();
        t.data_type = kind;
        match kind {
            data_type::DOUBLE => t.double_data = values.iter().map(|&v| f64::from(v)).collect(),
            // bfloat16 bits: the top half of the f32 (truncated).
            _ => {
                t.raw_data = values
                    .iter()
                    .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
                    .collect();
            }
        }
    }
    m.encode_to_vec()
}

#[test]
fn double_and_bfloat16_weights_are_read() {
    let dir = fixtures().join("plain_cnn");
    let (dims, x) = read_npy(&dir.join("input.npy"));
    let (_, want) = read_npy(&dir.join("expected.npy"));
    let dims = [dims[0], dims[1], dims[2]];
    let model = import_model(&with_weights_as(data_type::DOUBLE), &device()).unwrap();
    assert!(max_diff(&run(&model, &x, dims).1, &want) <= 1e-5);
    let model = import_model(&with_weights_as(data_type::BFLOAT16), &device()).unwrap();
    // Truncated weights: close, not equal.
    assert!(max_diff(&run(&model, &x, dims).1, &want) <= 0.1);
}

#[test]
fn several_inputs_or_outputs_are_refused() {
    let mut m = decode(&valid());
    let g = graph(&mut m);
    let extra = g.input[0].clone();
    g.input.push(widen_onnx::proto::ValueInfoProto {
        name: "second".into(),
        ..extra
    });
    let e = error(&m.encode_to_vec()).to_string();
    assert!(e.contains("2 inputs") && e.contains("second"), "{e}");

    let mut m = decode(&valid());
    let g = graph(&mut m);
    let extra = g.output[0].clone();
    g.output.push(extra);
    let e = error(&m.encode_to_vec()).to_string();
    assert!(e.contains("2 outputs"), "{e}");
}

#[test]
fn cycles_unknown_names_and_redefinitions_are_refused() {
    // Unknown: the first node reads a name nothing defines.
    let mut m = decode(&valid());
    graph(&mut m).node[0].input[0] = "ghost".into();
    assert_graph_error(&m, "ghost");
    // Cycle: the first node reads the last one's output.
    let mut m = decode(&valid());
    let g = graph(&mut m);
    let last = g.node.last().unwrap().output[0].clone();
    g.node[0].input[0] = last;
    assert_graph_error(&m, "cycle");
    // A value written twice.
    let mut m = decode(&valid());
    let g = graph(&mut m);
    let first = g.node[0].output[0].clone();
    g.node[1].output[0] = first;
    assert_graph_error(&m, "defined twice");
}

#[test]
fn a_foreign_domain_and_an_unknown_opset_are_refused() {
    let mut m = decode(&valid());
    graph(&mut m).node[0].domain = "com.microsoft".into();
    let e = error(&m.encode_to_vec()).to_string();
    assert!(e.contains("com.microsoft"), "{e}");
    let mut m = decode(&valid());
    m.opset_import[0].version = 3;
    let e = error(&m.encode_to_vec()).to_string();
    assert!(e.contains("opset 3"), "{e}");
}

#[test]
fn a_training_batch_norm_is_refused() {
    let mut m = decode(&fixture("residual/model.onnx"));
    let bn = node_of(&mut m, "BatchNormalization");
    for a in &mut bn.attribute {
        if a.name == "training_mode" {
            a.i = 1;
        }
    }
    let e = error(&m.encode_to_vec()).to_string();
    assert!(e.contains("training_mode"), "{e}");
}

#[test]
fn a_huge_repeated_message_count_is_checked_against_the_budget() {
    // 200 000 empty nodes in 400 kB: decoding them would take ~30 MB; the bound sees that
    // before prost allocates. Within the default budget it decodes, and the empty op is
    // refused by name.
    let mut m = decode(&valid());
    let g = graph(&mut m);
    g.node
        .splice(0..0, (0..200_000).map(|_| NodeProto::default()));
    let bytes = m.encode_to_vec();
    let e = error(&bytes);
    assert!(
        matches!(e, OnnxError::Unsupported { .. } | OnnxError::Graph { .. }),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn truncations_never_panic(cut in 0.0f64..1.0) {
        let bytes = valid();
        let n = (bytes.len() as f64 * cut) as usize;
        no_panic(&bytes[..n]);
    }

    #[test]
    fn byte_flips_never_panic(flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 1..8)) {
        for base in [valid(), fixture("conv_options/model.onnx")] {
            let mut bytes = base.clone();
            for &(at, v) in &flips {
                let i = ((bytes.len() - 1) as f64 * at) as usize;
                bytes[i] ^= v | 1;
            }
            no_panic(&bytes);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        no_panic(&bytes);
    }
}
