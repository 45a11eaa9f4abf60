//! Backend selection: every compiled backend gives a stable device, and its autodiff twin.

use widen::{BackendKind, describe_device};

use crate::common::backends;

#[test]
fn every_compiled_backend_gives_one_device() {
    for (kind, device) in backends() {
        // wgpu is initialised once per process; asking again must give the same device, not
        // an error from a second initialisation.
        assert_eq!(kind.device().unwrap(), device, "{kind}");
        let autodiff = kind.autodiff_device().unwrap();
        assert!(autodiff.is_autodiff(), "{kind}");
        assert_eq!(autodiff, device, "{kind}: same hardware");
        assert!(!describe_device(&device).is_empty());
    }
}

#[test]
fn backends_not_compiled_in_are_typed_errors() {
    for kind in BackendKind::ALL {
        if !kind.is_compiled() {
            assert_eq!(
                kind.device(),
                Err(widen::BackendError::NotCompiled(kind.name()))
            );
        }
    }
}
