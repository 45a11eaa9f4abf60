//! Tensors from a dataset, in the layout the model takes, and parameter ids that stay the same
//! from one process to the next (what makes an optimiser's saved state loadable).

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use widen_data::Dataset;
use widen_layers::{DataFormat, Model};

/// The cases `cases` of `data` as one batch in the model's input layout: `[b, length,
/// channels]` for a channels-last (Keras) model, `[b, channels, length]` otherwise.
pub fn batch(data: &Dataset, cases: &[usize], format: DataFormat, device: &Device) -> Tensor<3> {
    let per = data.channels * data.length;
    let mut v = Vec::with_capacity(cases.len() * per);
    for &i in cases {
        if let Some(case) = data.series.get(i * per..(i + 1) * per) {
            v.extend_from_slice(case);
        }
    }
    let t = Tensor::<3>::from_data(
        TensorData::new(v, [cases.len(), data.channels, data.length]),
        device,
    );
    match format {
        DataFormat::ChannelsLast => t.swap_dims(1, 2),
        DataFormat::ChannelsFirst => t,
    }
}

/// The labels of `cases`.
pub fn labels_of(data: &Dataset, cases: &[usize]) -> Vec<usize> {
    cases
        .iter()
        .filter_map(|&i| data.labels.get(i).copied())
        .collect()
}

/// Gives every float parameter of `model` the id `salt + k` in visiting order (a model built
/// from the same spec visits its parameters in the same order), so an optimiser record saved
/// by one process applies to the model the next process loads.
pub fn stable_param_ids(model: Model, salt: u64) -> Model {
    struct Renumber(u64);
    impl ModuleMapper for Renumber {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            self.0 += 1;
            let (_, value, mapper) = param.consume();
            Param::from_mapped_value(ParamId::from(self.0), value, mapper)
        }
    }
    model.map(&mut Renumber(salt))
}
