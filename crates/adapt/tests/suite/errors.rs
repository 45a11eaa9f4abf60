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

    // A BatchNorm in front is channel-local: it widens with the conv behind it.
    let bn_first = Sequential::new(
        ModelSpec::new(InputSpec::new(4).with_length(10))
            .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
            .push(LayerConfig::Conv1d(Conv1dConfig::new(6, 3))),
        0,
        &device,
    )
    .unwrap();
    let wide = expand(&bn_first, &ExpandRequest::new(8, Strategy::RepeatRescale)).unwrap();
    assert_eq!(wide.adapted_layers, ["batch_normalization", "conv1d"]);

    // A model whose output still carries the input's channels cannot take more of them.
    let pooled = Sequential::new(
        ModelSpec::new(InputSpec::new(4).with_length(10))
            .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
            .push(LayerConfig::GlobalAvgPool1d),
        0,
        &device,
    )
    .unwrap();
    match expand(&pooled, &ExpandRequest::new(8, Strategy::Zero)) {
        Err(AdaptError::CannotWiden { name, reason, .. }) => {
            assert_eq!(name, "global_average_pooling1d");
            assert!(reason.contains("output"), "{reason}");
        }
        other => panic!("expected CannotWiden, got {other:?}"),
    }
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

/// Expanding a checkpoint reads the input and never writes it; a refused request or an output
/// path equal to the input leaves nothing behind.
#[test]
fn checkpoint_expansion_never_touches_the_input() {
    use widen_adapt::expand_checkpoint;
    use widen_layers::WeightFormat;
    let device = Device::flex();
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("widen-adapt-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let src = root.join("base");
    base().save(&src, WeightFormat::Burnpack).unwrap();
    let read_all = |dir: &std::path::Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = read_all(&src);
    let dst = root.join("wide");
    let done = expand_checkpoint(
        &src,
        &dst,
        &ExpandRequest::new(16, Strategy::Zero),
        None,
        &device,
    )
    .unwrap();
    assert_eq!((done.old_channels, done.new_channels), (8, 16));
    assert_eq!(
        done.format,
        WeightFormat::Burnpack,
        "the input's weight format is kept"
    );
    assert_eq!(
        Sequential::load(&dst, &device).unwrap().input().channels,
        16
    );
    assert_eq!(read_all(&src), before, "input checkpoint unchanged");

    let bad = root.join("bad");
    assert!(
        expand_checkpoint(
            &src,
            &bad,
            &ExpandRequest::new(4, Strategy::Zero),
            None,
            &device
        )
        .is_err()
    );
    assert!(!bad.exists(), "a refused expansion writes nothing");
    assert!(
        expand_checkpoint(
            &src,
            &src,
            &ExpandRequest::new(16, Strategy::Zero),
            None,
            &device
        )
        .is_err()
    );
    assert_eq!(read_all(&src), before);
    let _ = std::fs::remove_dir_all(&root);
}

/// Widening to the width the model has is not a widening; a caller-sized width that no
/// machine holds is a budget refusal before anything is allocated, for every strategy.
#[test]
fn same_and_absurd_widths_are_refused() {
    let err = expand(&base(), &ExpandRequest::new(8, Strategy::Zero)).unwrap_err();
    assert!(
        matches!(err, AdaptError::SameWidth { channels: 8 }),
        "{err}"
    );
    assert!(err.to_string().contains("already has 8"), "{err}");
    let strategies = [
        Strategy::Zero,
        Strategy::RepeatRescale,
        Strategy::Projection {
            init: ProjectionInit::Identity,
        },
    ];
    for strategy in strategies {
        for to in [usize::MAX, 1 << 40] {
            let err = expand(&base(), &ExpandRequest::new(to, strategy.clone())).unwrap_err();
            assert!(matches!(err, AdaptError::Budget(_)), "{to}: {err}");
            assert!(err.to_string().contains("memory budget"), "{err}");
        }
    }
}
