//! Element-wise activations with Keras' names and numbers.

use burn::tensor::{Tensor, activation};
use serde::{Deserialize, Serialize};

/// An activation function, named as in Keras (`"relu"`, `"gelu"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Activation {
    /// Identity (Keras `None` / `"linear"`).
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `x` if positive, else `alpha · x` (Keras' `leaky_relu` default slope is 0.2).
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f64,
    },
    /// `x` if positive, else `alpha · (eˣ − 1)`.
    Elu {
        /// Scale of the negative part.
        alpha: f64,
    },
    /// Exact (erf) GELU, Keras' default (`approximate=False`).
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// Softmax over the last axis (features / channels).
    Softmax,
    /// `log(softmax(x))` over the same axis as [`Activation::Softmax`], computed stably
    /// (PyTorch's `LogSoftmax`, ONNX's `LogSoftmax`).
    LogSoftmax,
    /// `x · sigmoid(x)` (a.k.a. SiLU).
    Swish,
}

impl Activation {
    /// Parses a Keras activation name.
    pub fn from_keras(name: &str) -> Option<Self> {
        Some(match name {
            "linear" | "none" | "" => Self::Linear,
            "relu" => Self::Relu,
            "leaky_relu" => Self::LeakyRelu { alpha: 0.2 },
            "elu" => Self::Elu { alpha: 1.0 },
            "gelu" => Self::Gelu,
            "tanh" => Self::Tanh,
            "sigmoid" => Self::Sigmoid,
            "softmax" => Self::Softmax,
            "log_softmax" => Self::LogSoftmax,
            "swish" | "silu" => Self::Swish,
            _ => return None,
        })
    }

    /// Applies the activation; `feature_dim` is the axis softmax normalises over.
    pub fn apply<const D: usize>(&self, x: Tensor<D>, feature_dim: usize) -> Tensor<D> {
        match *self {
            Self::Linear => x,
            Self::Relu => activation::relu(x),
            Self::LeakyRelu { alpha } => activation::leaky_relu(x, alpha),
            Self::Elu { alpha } => activation::elu(x, alpha),
            Self::Gelu => activation::gelu(x),
            Self::Tanh => activation::tanh(x),
            Self::Sigmoid => activation::sigmoid(x),
            Self::Softmax => activation::softmax(x, feature_dim),
            Self::LogSoftmax => activation::log_softmax(x, feature_dim),
            Self::Swish => activation::silu(x),
        }
    }

    /// Whether the parameters are usable (finite slopes).
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Self::LeakyRelu { alpha } | Self::Elu { alpha } if !alpha.is_finite() => {
                Err(format!("activation alpha must be finite, got {alpha}"))
            }
            _ => Ok(()),
        }
    }
}

/// (De)serialises an `Activation` nested under `activation` (the `Activation` layer's spec:
/// flattened into the layer spec, the function's own `name` tag would overwrite the layer's).
pub(crate) mod nested {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Activation;

    #[derive(Serialize, Deserialize)]
    struct Field<T> {
        activation: T,
    }

    pub fn serialize<S: Serializer>(activation: &Activation, s: S) -> Result<S::Ok, S::Error> {
        Field { activation }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Activation, D::Error> {
        Field::<Activation>::deserialize(d).map(|f| f.activation)
    }
}
