//! Backend selection: which Burn device to run on, chosen at run time among the backends compiled
//! in by cargo features.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A CPU or GPU backend widen can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Burn's flex (pure-Rust CPU, the default; successor to ndarray).
    Flex,
    /// burn-ndarray (deprecated upstream, kept and tested).
    Ndarray,
}

/// A backend was asked for that this build cannot provide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend widen knows.
    #[error("unknown backend `{0}` (expected one of: flex, ndarray)")]
    Unknown(String),
    /// The backend exists but this binary was built without its cargo feature.
    #[error("backend `{0}` is not compiled in; rebuild with `--features {0}`")]
    NotCompiled(&'static str),
}

impl BackendKind {
    /// Every backend widen knows, compiled in or not.
    pub const ALL: [BackendKind; 2] = [BackendKind::Flex, BackendKind::Ndarray];

    /// The name used on the command line and in `WIDEN_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
        }
    }

    /// Whether this build has the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
        }
    }

    /// The backends compiled into this build.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// The default: `WIDEN_BACKEND` if set, else flex (else the first compiled backend).
    pub fn from_env() -> Result<Self, BackendError> {
        match std::env::var("WIDEN_BACKEND") {
            Ok(name) if !name.is_empty() => name.parse(),
            _ => Self::compiled()
                .first()
                .copied()
                .ok_or(BackendError::NotCompiled("flex")),
        }
    }

    /// The inference device.
    pub fn device(self) -> Result<Device, BackendError> {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // ndarray stays available for users who still pick it
            Self::Ndarray => Ok(Device::ndarray()),
            #[allow(unreachable_patterns)]
            other => Err(BackendError::NotCompiled(other.name())),
        }
    }

    /// The training device (autodiff on top of [`device`](Self::device)).
    pub fn autodiff_device(self) -> Result<Device, BackendError> {
        self.device().map(Device::autodiff)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::Ndarray),
            _ => Err(BackendError::Unknown(s.to_string())),
        }
    }
}
