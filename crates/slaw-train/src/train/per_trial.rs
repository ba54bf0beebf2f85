//! One scalar per trial of a stack ([`crate::models::stacked`]), on the device, kept shaped once for each
//! rank (`[trials, 1, …]`) so that scaling a parameter or gradient whose first axis is the trial
//! axis is a single broadcast multiplication, which burn-fusion can fuse into the kernel that
//! consumes it. A lone trial is the case `trials = 1`, and then the shape `[1, …]` broadcasts
//! against any parameter. Used for the clipping factor and the learning rates.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

/// Highest rank kept pre-shaped; higher ranks are reshaped on demand.
const KEPT_RANKS: usize = 4;

/// A `[trials]` vector of scalars, pre-shaped for ranks 1 to 4.
pub struct PerTrial<B: Backend> {
    by_rank: Vec<TensorPrimitive<B>>,
    trials: usize,
}

impl<B: Backend> PerTrial<B> {
    /// The scalars `values` (`[trials]`).
    pub fn new(values: Tensor<B, 1>) -> Self {
        let trials = values.dims()[0];
        let by_rank = vec![
            values.clone().into_primitive(),
            values.clone().reshape([trials, 1]).into_primitive(),
            values.clone().reshape([trials, 1, 1]).into_primitive(),
            values.reshape([trials, 1, 1, 1]).into_primitive(),
        ];
        Self { by_rank, trials }
    }

    /// `values` copied to `device`.
    pub fn from_values(values: &[f32], device: &B::Device) -> Self {
        let data = TensorData::new(values.to_vec(), [values.len()]);
        Self::new(Tensor::from_data(data, device))
    }

    /// How many trials.
    pub fn trials(&self) -> usize {
        self.trials
    }

    /// The scalars shaped `[trials, 1, …]` of rank `D`, to broadcast against a rank-`D` tensor
    /// whose first axis is the trial axis (or against any tensor when there is one trial).
    pub fn shaped<const D: usize>(&self) -> Tensor<B, D> {
        match D.checked_sub(1).filter(|&i| i < KEPT_RANKS) {
            Some(i) => Tensor::from_primitive(self.by_rank[i].clone()),
            None => {
                let mut dims = [1; D];
                dims[0] = self.trials;
                Tensor::<B, 1>::from_primitive(self.by_rank[0].clone()).reshape(dims)
            }
        }
    }

    /// The `[trials]` vector.
    pub fn values(&self) -> Tensor<B, 1> {
        self.shaped::<1>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn broadcasts_one_scalar_per_leading_index() {
        let device = Default::default();
        let s = PerTrial::<NdArray<f32>>::from_values(&[2.0, -1.0], &device);
        assert_eq!(s.trials(), 2);
        let x = Tensor::<NdArray<f32>, 3>::ones([2, 2, 3], &device);
        let y: Vec<f32> = (x * s.shaped::<3>()).into_data().to_vec().unwrap();
        assert_eq!(&y[..6], &[2.0; 6]);
        assert_eq!(&y[6..], &[-1.0; 6]);
        assert_eq!(s.shaped::<5>().dims(), [2, 1, 1, 1, 1]);
    }
}
