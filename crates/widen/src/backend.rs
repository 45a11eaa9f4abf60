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
    /// Burn's wgpu: GPUs through Vulkan, Metal or DX12 (and CPUs through a software Vulkan
    /// driver such as Mesa's lavapipe). Cargo feature `wgpu`, off by default.
    Wgpu,
}

/// A backend was asked for that this build or this machine cannot provide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend widen knows.
    #[error("unknown backend `{0}` (expected one of: flex, ndarray, wgpu)")]
    Unknown(String),
    /// The backend exists but this binary was built without its cargo feature.
    #[error("backend `{0}` is not compiled in; rebuild with `--features widen/{0}`")]
    NotCompiled(&'static str),
    /// The backend is compiled in but this machine cannot run it (wgpu without an adapter).
    #[error("backend `{backend}` is compiled in but unavailable on this machine: {reason}")]
    Unavailable {
        /// The backend's name.
        backend: &'static str,
        /// Why, as the backend reported it.
        reason: String,
    },
}

impl BackendKind {
    /// Every backend widen knows, compiled in or not.
    pub const ALL: [BackendKind; 3] = [BackendKind::Flex, BackendKind::Ndarray, BackendKind::Wgpu];

    /// The name used on the command line and in `WIDEN_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
        }
    }

    /// Whether this build has the backend. A compiled-in wgpu may still be unavailable at run
    /// time (no adapter): [`device`](Self::device) says so.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Wgpu => cfg!(feature = "wgpu"),
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

    /// The inference device. For wgpu this probes for an adapter once per process and
    /// initialises the runtime on the best one; no adapter is [`BackendError::Unavailable`].
    pub fn device(self) -> Result<Device, BackendError> {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // ndarray stays available for users who still pick it
            Self::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => wgpu::device(),
            #[allow(unreachable_patterns)]
            other => Err(BackendError::NotCompiled(other.name())),
        }
    }

    /// The training device (autodiff on top of [`device`](Self::device)).
    pub fn autodiff_device(self) -> Result<Device, BackendError> {
        self.device().map(Device::autodiff)
    }
}

/// A one-line description of the hardware behind `device`, e.g. `wgpu: llvmpipe (LLVM 15.0.6,
/// 256 bits)`; the backend's own debug name for CPU backends.
pub fn describe_device(device: &Device) -> String {
    #[cfg(feature = "wgpu")]
    if let Some(name) = wgpu::adapter_name(device) {
        return name;
    }
    format!("{device:?}")
}

#[cfg(feature = "wgpu")]
mod wgpu {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::OnceLock;

    use burn::tensor::wgpu::WgpuInitError;
    use burn::tensor::{Device, DeviceKind, DeviceType};

    use super::BackendError;

    /// The runtime is initialised once per process (Burn refuses a second `init` for the same
    /// selector), so the outcome is kept.
    static DEVICE: OnceLock<Result<Device, String>> = OnceLock::new();

    pub(super) fn device() -> Result<Device, BackendError> {
        DEVICE
            .get_or_init(|| {
                // Burn creates wgpu devices lazily and panics inside the first tensor operation
                // when no adapter exists, so look for one first and initialise explicitly, which
                // reports failures as errors. `catch_unwind` is the last resort should a driver
                // panic while being asked.
                catch_unwind(AssertUnwindSafe(init)).unwrap_or_else(|_| {
                    Err("the wgpu runtime panicked while looking for an adapter".to_string())
                })
            })
            .clone()
            .map_err(|reason| BackendError::Unavailable {
                backend: "wgpu",
                reason,
            })
    }

    fn init() -> Result<Device, String> {
        if Device::enumerate(DeviceType::Wgpu).into_vec().is_empty() {
            return Err(
                "no wgpu adapter found (no Vulkan, Metal, DX12 or GL driver answered; on \
                 Debian/Ubuntu `apt-get install mesa-vulkan-drivers libvulkan1` gives a CPU \
                 one, lavapipe)"
                    .to_string(),
            );
        }
        match Device::wgpu_options().init() {
            Ok(device) => Ok(device),
            // Something in this process already brought the default device up: use it.
            Err(WgpuInitError::Registration { .. }) => Ok(Device::wgpu(DeviceKind::DefaultDevice)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `wgpu: <adapter>` for a wgpu device, `None` for any other.
    pub(super) fn adapter_name(device: &Device) -> Option<String> {
        device.identity().map(|id| format!("wgpu: {}", id.name))
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
            "wgpu" => Ok(Self::Wgpu),
            _ => Err(BackendError::Unknown(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in BackendKind::ALL {
            assert_eq!(kind.name().parse::<BackendKind>(), Ok(kind));
        }
        assert_eq!("WGPU".parse::<BackendKind>(), Ok(BackendKind::Wgpu));
        assert!(matches!(
            "cuda".parse::<BackendKind>(),
            Err(BackendError::Unknown(_))
        ));
    }

    #[test]
    fn a_backend_not_compiled_in_is_a_typed_error() {
        for kind in BackendKind::ALL.into_iter().filter(|k| !k.is_compiled()) {
            assert_eq!(kind.device(), Err(BackendError::NotCompiled(kind.name())));
        }
    }
}
