//! Folding of small integer constant subgraphs: what exporters compute pads, axes and shapes
//! with (torch's `F.pad` builds its `pads` from `ConstantOfShape → Concat → Reshape → Slice →
//! Transpose → Reshape → Cast`). Only integer tensors of at most [`MAX_ELEMENTS`] elements are
//! folded (weights are never computed), so the work is bounded whatever the file says.

use crate::OnnxError;
use crate::import::{At, Attrs};
use crate::proto::NodeProto;
use crate::tensor::{self, Const, Values};

/// The largest integer tensor folded.
pub(crate) const MAX_ELEMENTS: usize = 1 << 16;

/// The ops folded.
pub(crate) const OPS: &[&str] = &[
    "ConstantOfShape",
    "Concat",
    "Reshape",
    "Slice",
    "Transpose",
    "Cast",
    "Unsqueeze",
    "Squeeze",
    "Gather",
    "Add",
    "Sub",
    "Mul",
];

fn ints(c: &Const) -> Option<&[i64]> {
    c.ints()
}

fn count(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
}

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

fn int_const(dims: Vec<usize>, v: Vec<i64>) -> Const {
    Const {
        dims,
        values: Values::I64(v),
    }
}

fn axis(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let n = if a < 0 { a + r } else { a };
    (0..r).contains(&n).then_some(n as usize)
}

/// Folds `node` over constant `inputs` (`None` for an absent one), or `Ok(None)` when it is not
/// an integer computation this folds.
pub(crate) fn fold(
    node: &NodeProto,
    at: &At,
    attrs: &Attrs,
    inputs: &[Option<&Const>],
    opset: i64,
) -> Result<Option<Const>, OnnxError> {
    let op = node.op_type.as_str();
    let input = |i: usize| inputs.get(i).copied().flatten();
    let bad = |why: &str| at.unsupported("input 0", format!("folding a constant: {why}"));
    // Every present input an integer tensor, except ConstantOfShape's value (an attribute).
    if inputs.iter().flatten().any(|c| ints(c).is_none()) {
        return Ok(None);
    }
    let Some(x) = input(0) else {
        return Ok(None);
    };
    let xv = ints(x).unwrap_or_default();
    Ok(Some(match op {
        "ConstantOfShape" => {
            attrs.only(&["value"])?;
            let dims: Option<Vec<usize>> = xv.iter().map(|&d| usize::try_from(d).ok()).collect();
            let dims = dims.ok_or_else(|| bad("a negative dimension"))?;
            let n = count(&dims).ok_or_else(|| bad("too many elements"))?;
            let value = match node.attribute.first().and_then(|a| a.t.as_ref()) {
                None => Values::I64(vec![0; n]),
                Some(t) => match tensor::read(t, "value")?.values {
                    Values::I64(v) if v.len() == 1 => Values::I64(vec![v[0]; n]),
                    Values::F32(v) if v.len() == 1 => Values::F32(vec![v[0]; n]),
                    _ => return Err(bad("a value that is not one element")),
                },
            };
            Const {
                dims,
                values: value,
            }
        }
        "Concat" => {
            attrs.only(&["axis"])?;
            if x.dims.len() != 1 || inputs.iter().flatten().any(|c| c.dims.len() != 1) {
                return Ok(None);
            }
            let v: Vec<i64> = inputs
                .iter()
                .flatten()
                .flat_map(|c| ints(c).unwrap_or_default().iter().copied())
                .collect();
            count(&[v.len()]).ok_or_else(|| bad("too many elements"))?;
            int_const(vec![v.len()], v)
        }
        "Reshape" | "Unsqueeze" | "Squeeze" => {
            let target: Vec<usize> = match op {
                "Reshape" => {
                    attrs.only(&["allowzero"])?;
                    let Some(shape) = input(1).and_then(ints) else {
                        return Ok(None);
                    };
                    let mut dims = Vec::with_capacity(shape.len());
                    let mut infer = None;
                    for (i, &d) in shape.iter().enumerate() {
                        match d {
                            -1 if infer.is_none() => {
                                infer = Some(i);
                                dims.push(1);
                            }
                            0 => dims.push(*x.dims.get(i).ok_or_else(|| bad("a 0 past the rank"))?),
                            d if d > 0 => dims.push(d as usize),
                            _ => return Err(bad("a bad target shape")),
                        }
                    }
                    if let Some(i) = infer {
                        let known: usize = dims.iter().product();
                        if known == 0 || x.len() % known != 0 {
                            return Err(bad("a target shape that does not divide the elements"));
                        }
                        dims[i] = x.len() / known;
                    }
                    dims
                }
                _ => {
                    attrs.only(&["axes"])?;
                    let axes: Vec<i64> = match (attrs.ints("axes")?, opset >= 13) {
                        (Some(a), _) => a.to_vec(),
                        (None, true) => input(1)
                            .and_then(ints)
                            .map(<[i64]>::to_vec)
                            .unwrap_or_default(),
                        (None, false) => Vec::new(),
                    };
                    let mut dims = x.dims.clone();
                    if op == "Unsqueeze" {
                        let rank = dims.len() + axes.len();
                        let mut axes: Vec<usize> = axes
                            .iter()
                            .map(|&a| axis(a, rank).ok_or_else(|| bad("an axis out of range")))
                            .collect::<Result<_, _>>()?;
                        axes.sort_unstable();
                        for a in axes {
                            dims.insert(a.min(dims.len()), 1);
                        }
                    } else if axes.is_empty() {
                        dims.retain(|&d| d != 1);
                    } else {
                        let rank = dims.len();
                        let axes: Vec<usize> = axes
                            .iter()
                            .map(|&a| axis(a, rank).ok_or_else(|| bad("an axis out of range")))
                            .collect::<Result<_, _>>()?;
                        dims = dims
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| !axes.contains(i))
                            .map(|(_, &d)| d)
                            .collect();
                    }
                    dims
                }
            };
            if target.iter().product::<usize>() != x.len() {
                return Err(bad("a shape that changes the element count"));
            }
            int_const(target, xv.to_vec())
        }
        "Transpose" => {
            attrs.only(&["perm"])?;
            let rank = x.dims.len();
            let perm: Vec<usize> = match attrs.ints("perm")? {
                Some(p) => p.iter().map(|&a| a as usize).collect(),
                None => (0..rank).rev().collect(),
            };
            let mut seen = vec![false; rank];
            if perm.len() != rank
                || perm
                    .iter()
                    .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
            {
                return Err(bad("a perm that is not a permutation"));
            }
            let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
            let (si, so) = (strides(&x.dims), strides(&dims));
            let mut v = vec![0i64; x.len()];
            for (o, slot) in v.iter_mut().enumerate() {
                let src: usize = (0..rank).map(|k| (o / so[k] % dims[k]) * si[perm[k]]).sum();
                *slot = xv[src];
            }
            int_const(dims, v)
        }
        "Slice" => {
            attrs.only(&[])?;
            if opset < 10 {
                return Ok(None);
            }
            let rank = x.dims.len();
            let (Some(starts), Some(ends)) = (input(1).and_then(ints), input(2).and_then(ints))
            else {
                return Ok(None);
            };
            let axes: Vec<i64> = input(3)
                .and_then(ints)
                .map(<[i64]>::to_vec)
                .unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps: Vec<i64> = input(4)
                .and_then(ints)
                .map(<[i64]>::to_vec)
                .unwrap_or_else(|| vec![1; starts.len()]);
            if axes.len() != starts.len()
                || ends.len() != starts.len()
                || steps.len() != starts.len()
            {
                return Err(bad("starts, ends, axes and steps of different lengths"));
            }
            // Per axis: the source indices kept.
            let mut keep: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
            for j in 0..starts.len() {
                let a = axis(axes[j], rank).ok_or_else(|| bad("an axis out of range"))?;
                let d = x.dims[a] as i64;
                let step = steps[j];
                if step == 0 {
                    return Err(bad("a step of 0"));
                }
                let clamp = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
                let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
                let (s, e) = if step > 0 {
                    (clamp(norm(starts[j]), 0, d), clamp(norm(ends[j]), 0, d))
                } else {
                    (
                        clamp(norm(starts[j]), -1, d - 1),
                        clamp(norm(ends[j]), -1, d - 1),
                    )
                };
                let mut idx = Vec::new();
                let mut i = s;
                while (step > 0 && i < e) || (step < 0 && i > e) {
                    idx.push(i as usize);
                    i += step;
                }
                keep[a] = idx;
            }
            let dims: Vec<usize> = keep.iter().map(Vec::len).collect();
            let n = count(&dims).ok_or_else(|| bad("too many elements"))?;
            let (si, so) = (strides(&x.dims), strides(&dims));
            let v = (0..n)
                .map(|o| {
                    let src: usize = (0..rank)
                        .map(|k| keep[k][o / so[k] % dims[k]] * si[k])
                        .sum();
                    xv[src]
                })
                .collect();
            int_const(dims, v)
        }
        "Cast" => {
            attrs.only(&["to", "saturate"])?;
            match attrs.int("to")? {
                Some(6 | 7) => int_const(x.dims.clone(), xv.to_vec()),
                _ => return Ok(None),
            }
        }
        "Gather" => {
            attrs.only(&["axis"])?;
            let Some(idx) = input(1) else { return Ok(None) };
            if x.dims.len() != 1 || attrs.int("axis")?.unwrap_or(0) != 0 {
                return Ok(None);
            }
            let d = xv.len() as i64;
            let v: Option<Vec<i64>> = ints(idx)
                .unwrap_or_default()
                .iter()
                .map(|&i| {
                    let i = if i < 0 { i + d } else { i };
                    (0..d).contains(&i).then(|| xv[i as usize])
                })
                .collect();
            int_const(
                idx.dims.clone(),
                v.ok_or_else(|| bad("an index out of range"))?,
            )
        }
        "Add" | "Sub" | "Mul" => {
            attrs.only(&[])?;
            let Some(y) = input(1) else { return Ok(None) };
            let yv = ints(y).unwrap_or_default();
            let f = |a: i64, b: i64| match op {
                "Add" => a.wrapping_add(b),
                "Sub" => a.wrapping_sub(b),
                _ => a.wrapping_mul(b),
            };
            match (xv.len(), yv.len()) {
                (n, m) if n == m && x.dims == y.dims => int_const(
                    x.dims.clone(),
                    xv.iter().zip(yv).map(|(&a, &b)| f(a, b)).collect(),
                ),
                (_, 1) => int_const(x.dims.clone(), xv.iter().map(|&a| f(a, yv[0])).collect()),
                (1, _) => int_const(y.dims.clone(), yv.iter().map(|&b| f(xv[0], b)).collect()),
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    }))
}
