//! Where a trial's training batches come from: the order in which it sees its examples (a
//! seeded shuffle per epoch) and the batches themselves, selected from the examples on the
//! device or received from the streaming thread of an images data set, then augmented and
//! brought to the model's layout on the device.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::data::Dataset;
use super::trainer::one_hot;
use crate::config::{ModelConfig, TrialConfig};

/// Where a trial's training batches come from: the examples on the device, selected by the
/// batch order, or the streaming thread's host batches; in image layout they are augmented
/// and brought to the model's layout on the device.
pub(crate) struct TrainBatches<B: Backend> {
    order: BatchOrder,
    stream: Option<std::sync::mpsc::Receiver<crate::train::images::HostBatch>>,
    augment: Option<crate::config::Augment>,
    image_layout: bool,
    rng: ChaCha8Rng,
    shape: crate::config::InputShape,
    model: ModelConfig,
    _backend: std::marker::PhantomData<B>,
}

impl<B: Backend> TrainBatches<B> {
    pub(crate) fn new(config: &TrialConfig, data: &Dataset, batch: usize) -> Self {
        let features = data.shape.features();
        let order = BatchOrder::new(config.seed, data.train.len(), batch);
        let stream = data.streamed.as_ref().map(|s| {
            s.batches(
                BatchOrder::new(config.seed, data.train.len(), batch),
                features,
            )
        });
        let augment = Dataset::augment(&config.data);
        Self {
            order,
            image_layout: stream.is_some() || augment.is_some(),
            stream,
            augment,
            rng: ChaCha8Rng::seed_from_u64(
                config.seed.wrapping_mul(0x94D0_49BB_1331_11EB) ^ 0xa06e,
            ),
            shape: data.shape,
            model: config.model.clone(),
            _backend: std::marker::PhantomData,
        }
    }

    /// The first `n` training examples in the model's layout, unaugmented (AIM's probe).
    pub(crate) fn first(
        &self,
        data: &Dataset,
        train_x: &Tensor<B, 2>,
        n: usize,
        device: &B::Device,
    ) -> Tensor<B, 2> {
        let x = match &data.streamed {
            Some(s) => Tensor::from_data(
                TensorData::new(s.first(n, &self.shape), [n, self.shape.features()]),
                device,
            ),
            None => train_x.clone().narrow(0, 0, n),
        };
        if self.image_layout {
            crate::train::augment::model_layout(x, &self.shape, &self.model)
        } else {
            x
        }
    }

    /// The next batch's inputs (in the model's layout) and one-hot targets.
    pub(crate) fn next(
        &mut self,
        train_x: &Tensor<B, 2>,
        train_y: &Tensor<B, 2>,
        device: &B::Device,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let (x, y) = match &self.stream {
            Some(rx) => {
                // The thread ends only when this receiver is dropped, or by a panic of its own
                // (a bug), which this repeats here.
                let b = rx.recv().expect("the batch-reading thread panicked");
                let n = b.labels.len();
                let f = self.shape.features();
                let x = Tensor::from_data(TensorData::new(b.pixels, [n, f]), device);
                let c = self.shape.classes;
                let y = Tensor::from_data(TensorData::new(one_hot(&b.labels, c), [n, c]), device);
                (x, y)
            }
            None => {
                let idx = self.order.next_batch();
                let n = idx.len();
                let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [n]), device);
                (
                    train_x.clone().select(0, idx.clone()),
                    train_y.clone().select(0, idx),
                )
            }
        };
        if !self.image_layout {
            return (x, y);
        }
        let x = match &self.augment {
            Some(a) => crate::train::augment::augment(x, &self.shape, a, &mut self.rng),
            None => x,
        };
        (
            crate::train::augment::model_layout(x, &self.shape, &self.model),
            y,
        )
    }
}

/// The order in which a trial sees its training examples: a fresh shuffle of all of them each
/// epoch, drawn from the trial's seed; batches run across epoch boundaries.
pub struct BatchOrder {
    rng: ChaCha8Rng,
    order: Vec<usize>,
    cursor: usize,
    batch: usize,
}

impl BatchOrder {
    pub fn new(seed: u64, examples: usize, batch: usize) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x51a3),
            order: (0..examples).collect(),
            cursor: examples, // forces a shuffle before the first batch
            batch,
        }
    }

    /// The indices of the next batch.
    pub fn next_batch(&mut self) -> Vec<i64> {
        let n = self.order.len();
        let mut idx = Vec::with_capacity(self.batch);
        while idx.len() < self.batch {
            if self.cursor == n {
                self.order.shuffle(&mut self.rng);
                self.cursor = 0;
            }
            let take = (self.batch - idx.len()).min(n - self.cursor);
            idx.extend(
                self.order[self.cursor..self.cursor + take]
                    .iter()
                    .map(|&i| i as i64),
            );
            self.cursor += take;
        }
        idx
    }
}
