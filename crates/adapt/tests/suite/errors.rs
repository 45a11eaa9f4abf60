//! Bad requests are typed errors.

use burn::tensor::Device;
use widen_adapt::{AdaptError, ExpandRequest, Placement, ProjectionInit, Strategy, expand};
use widen_layers::{
    BatchNormConfig, Conv1dConfig, InputSpec, LayerConfig, ModelSpec, Sequential, keras_ex1,
};

fn base() -> Sequential {
    Sequential::new(keras_ex1(8, 20), 0, &Device::flex()).unwrap()
}

#[test]
fn narrowing_needs_an_explicit_selection() {
    let err = expand(&base(), &ExpandRequest::new(4, Strategy::Zero)).unwrap_err();
    assert!(
        matches!(err, AdaptError::FewerChannels { old: 8, new: 4 }),
        "{err}"
    );
    assert!(err.to_string().contains("Placement::Keep"));
    // With a selection it works and keeps those channels' slices.
    let wide = expand(
        &base(),
        &ExpandRequest::new(3, Strategy::Zero).with_placement(Placement::Keep(vec![5, 0, 2])),
    )
    .unwrap();
    assert_eq!(wide.model.input().channels, 3);
}

#[test]
fn unknown_and_wrong_layers() {
    let err = expand(
        &base(),
        &ExpandRequest::new(16, Strategy::Zero).with_layer("nope"),
    )
    .unwrap_err();
    assert!(matches!(err, AdaptError::NoSuchLayer { .. }), "{err}");
    assert!(
        err.to_string().contains("conv1d"),
        "lists the layers: {err}"
    );
    let err = expand(
        &base(),
        &ExpandRequest::new(16, Strategy::Zero).with_layer("batch_normalization"),
    )
    .unwrap_err();
    assert!(matches!(err, AdaptError::NotConv1d { .. }), "{err}");

    // A second conv does not read the input.
    let device = Device::flex();
    let two = Sequential::new(
        ModelSpec::new(InputSpec::new(4).with_length(10))
            .push(LayerConfig::Conv1d(Conv1dConfig::new(6, 3)))
            .push(LayerConfig::Conv1d(Conv1dConfig::new(6, 1))),
        0,
        &device,
    )
    .unwrap();
    let err = expand(
        &two,
        &ExpandRequest::new(8, Strategy::Zero).with_layer("conv1d_1"),
    )
    .unwrap_err();
    assert!(
        matches!(err, AdaptError::NotInputConv { index: 1, .. }),
        "{err}"
    );

    // A model that starts with BatchNorm has no input conv.
    let bn_first = Sequential::new(
        ModelSpec::new(InputSpec::new(4).with_length(10))
            .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
            .push(LayerConfig::Conv1d(Conv1dConfig::new(6, 3))),
        0,
        &device,
    )
    .unwrap();
    assert!(matches!(
        expand(&bn_first, &ExpandRequest::new(8, Strategy::RepeatRescale)),
        Err(AdaptError::NotConv1d { .. })
    ));
}

#[test]
fn grouped_convs_need_a_projection() {
    let device = Device::flex();
    let grouped = Sequential::new(
        ModelSpec::new(InputSpec::new(4).with_length(10))
            .push(LayerConfig::Conv1d(Conv1dConfig::new(6, 3).with_groups(2))),
        0,
        &device,
    )
    .unwrap();
    let err = expand(&grouped, &ExpandRequest::new(8, Strategy::Zero)).unwrap_err();
    assert!(matches!(err, AdaptError::Groups { groups: 2, .. }), "{err}");
    assert!(err.to_string().contains("Projection"));
    let ok = expand(
        &grouped,
        &ExpandRequest::new(
            8,
            Strategy::Projection {
                init: ProjectionInit::Identity,
            },
        ),
    );
    assert!(ok.is_ok());
}

#[test]
fn index_maps_must_be_one_to_one_and_in_range() {
    let b = base();
    for (map, what) in [
        (vec![0, 1, 2, 3, 4, 5, 6, 6], "repeated target"),
        (vec![0, 1, 2, 3, 4, 5, 6, 16], "out of range"),
        (vec![0, 1, 2], "too short"),
    ] {
        let err = expand(
            &b,
            &ExpandRequest::new(16, Strategy::Zero).with_placement(Placement::Map(map)),
        )
        .unwrap_err();
        assert!(matches!(err, AdaptError::BadIndexMap(_)), "{what}: {err}");
    }
    let err = expand(
        &b,
        &ExpandRequest::new(2, Strategy::Zero).with_placement(Placement::Keep(vec![1, 1])),
    )
    .unwrap_err();
    assert!(matches!(err, AdaptError::BadIndexMap(_)), "{err}");
}
