//! An upper bound of what decoding a file costs, worked out from the wire format before prost
//! allocates anything: a 2-byte empty `NodeProto` becomes a struct of ~150 bytes, a 1-byte
//! packed integer an 8-byte `i64`, so no fixed factor on the file's length is both safe and
//! fair to real models (whose weights, the bulk, decode 1:1). The walk follows the schema of
//! [`crate::proto`] only (fields prost skips cost nothing), visits every byte once, and never
//! recurses deeper than that schema (six levels).

use std::mem::size_of;

use crate::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor,
    ValueInfoProto,
};

/// A message type of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Model,
    Opset,
    Graph,
    Node,
    Attribute,
    Tensor,
    Entry,
    ValueInfo,
    Type,
    TypeTensor,
    Shape,
    Dim,
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Self::Model => size_of::<ModelProto>(),
            Self::Opset => size_of::<OperatorSetIdProto>(),
            Self::Graph => size_of::<GraphProto>(),
            Self::Node => size_of::<NodeProto>(),
            Self::Attribute => size_of::<AttributeProto>(),
            Self::Tensor => size_of::<TensorProto>(),
            Self::Entry => size_of::<StringStringEntryProto>(),
            Self::ValueInfo => size_of::<ValueInfoProto>(),
            Self::Type => size_of::<TypeProto>(),
            Self::TypeTensor => size_of::<TypeProtoTensor>(),
            Self::Shape => size_of::<TensorShapeProto>(),
            Self::Dim => size_of::<Dimension>(),
        }
    }
}

/// What a declared field holds.
#[derive(Debug, Clone, Copy)]
enum Field {
    /// A singular message (stored inline in its parent: only its contents cost).
    One(Kind),
    /// A repeated message (each element costs its struct and its contents).
    Many(Kind),
    /// A singular string or bytes field (its bytes).
    Text,
    /// A repeated string field (each element: a `String` and its bytes).
    Texts,
    /// A repeated number: `memory` bytes per element, at least `wire` bytes per packed element.
    Numbers { memory: usize, wire: usize },
    /// A singular scalar (inside its parent's struct).
    Scalar,
}

const VARINT_I64: Field = Field::Numbers { memory: 8, wire: 1 };
const VARINT_I32: Field = Field::Numbers { memory: 4, wire: 1 };
const FIXED32: Field = Field::Numbers { memory: 4, wire: 4 };
const FIXED64: Field = Field::Numbers { memory: 8, wire: 8 };

/// The declared fields of each message (see `proto.rs`); `None` for fields prost skips.
fn field(kind: Kind, number: u64) -> Option<Field> {
    use Field::{Many, One, Scalar, Text, Texts};
    Some(match (kind, number) {
        (Kind::Model, 1) => Scalar,
        (Kind::Model, 2 | 3) => Text,
        (Kind::Model, 7) => One(Kind::Graph),
        (Kind::Model, 8) => Many(Kind::Opset),
        (Kind::Opset, 1) => Text,
        (Kind::Opset, 2) => Scalar,
        (Kind::Graph, 1) => Many(Kind::Node),
        (Kind::Graph, 2) => Text,
        (Kind::Graph, 5) => Many(Kind::Tensor),
        (Kind::Graph, 11..=13) => Many(Kind::ValueInfo),
        (Kind::Node, 1 | 2) => Texts,
        (Kind::Node, 3 | 4 | 7) => Text,
        (Kind::Node, 5) => Many(Kind::Attribute),
        (Kind::Attribute, 1 | 4) => Text,
        (Kind::Attribute, 2 | 3 | 20) => Scalar,
        (Kind::Attribute, 5) => One(Kind::Tensor),
        (Kind::Attribute, 7) => FIXED32,
        (Kind::Attribute, 8) => VARINT_I64,
        (Kind::Attribute, 9) => Texts,
        (Kind::Tensor, 1 | 7) => VARINT_I64,
        (Kind::Tensor, 2 | 14) => Scalar,
        (Kind::Tensor, 4) => FIXED32,
        (Kind::Tensor, 5) => VARINT_I32,
        (Kind::Tensor, 8 | 9) => Text,
        (Kind::Tensor, 10) => FIXED64,
        (Kind::Tensor, 13) => Many(Kind::Entry),
        (Kind::Entry, 1 | 2) => Text,
        (Kind::ValueInfo, 1) => Text,
        (Kind::ValueInfo, 2) => One(Kind::Type),
        (Kind::Type, 1) => One(Kind::TypeTensor),
        (Kind::TypeTensor, 1) => Scalar,
        (Kind::TypeTensor, 2) => One(Kind::Shape),
        (Kind::Shape, 1) => Many(Kind::Dim),
        (Kind::Dim, 1) => Scalar,
        (Kind::Dim, 2) => Text,
        _ => return None,
    })
}

/// Reads a varint at `*at`, or `None` at a malformed or truncated one.
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The heap bytes decoding `bytes` as a [`ModelProto`] allocates at most (twice the sum of
/// every element, for `Vec` growth), plus the struct itself. A malformed stretch ends the walk:
/// prost refuses the file at that point, having allocated no more than what came before.
pub(crate) fn decoded_bound(bytes: &[u8]) -> u128 {
    let mut total = Kind::Model.size() as u128;
    walk(bytes, Kind::Model, &mut total);
    total.saturating_mul(2)
}

fn walk(bytes: &[u8], kind: Kind, total: &mut u128) -> Option<()> {
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let (number, wire) = (key >> 3, key & 7);
        let declared = field(kind, number);
        let len = match wire {
            0 => {
                varint(bytes, &mut at)?;
                None
            }
            1 => {
                at = at.checked_add(8)?;
                None
            }
            5 => {
                at = at.checked_add(4)?;
                None
            }
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).ok()?;
                let end = at.checked_add(len).filter(|&e| e <= bytes.len())?;
                let body = &bytes[at..end];
                at = end;
                Some(body)
            }
            // Groups (3, 4) and the reserved types: prost refuses them.
            _ => return None,
        };
        let add = |total: &mut u128, n: usize| *total = total.saturating_add(n as u128);
        match (declared, len) {
            (None, _) | (Some(Field::Scalar), _) => {}
            (Some(Field::Numbers { memory, .. }), None) => add(total, memory),
            (Some(Field::Numbers { memory, wire }), Some(body)) => {
                add(total, (body.len() / wire).saturating_mul(memory));
            }
            (Some(Field::Text), Some(body)) => add(total, body.len()),
            (Some(Field::Texts), Some(body)) => {
                add(total, body.len().saturating_add(size_of::<String>()));
            }
            (Some(Field::One(child)), Some(body)) => walk(body, child, total)?,
            (Some(Field::Many(child)), Some(body)) => {
                add(total, child.size());
                walk(body, child, total)?;
            }
            // A declared message or string with a scalar wire type: prost refuses it.
            (Some(_), None) => return None,
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_repeated_nodes_cost_their_structs() {
        // graph { node {} × 1000 }
        let mut graph = Vec::new();
        for _ in 0..1000 {
            graph.extend_from_slice(&[0x0a, 0x00]);
        }
        let mut model = vec![0x3a];
        let mut n = graph.len();
        while n >= 0x80 {
            model.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        model.push(n as u8);
        model.extend_from_slice(&graph);
        let bound = decoded_bound(&model);
        assert!(bound >= 1000 * size_of::<NodeProto>() as u128, "{bound}");
    }

    #[test]
    fn a_length_past_the_end_stops_the_walk() {
        // graph with a declared length of 2^62.
        let model = [
            0x3a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x0a,
        ];
        assert_eq!(decoded_bound(&model), 2 * size_of::<ModelProto>() as u128);
    }
}
