//! What a trainer reports while a trial trains ([`Reporter`] and its events) and how the trial
//! ended ([`Outcome`]). The executors turn these into stored metrics and trial states; the
//! trainer knows nothing of storage.

/// Facts known once the model is built.
#[derive(Debug, Clone, PartialEq)]
pub struct StartInfo {
    /// Parameters of the Burn module, counted by Burn.
    pub params: u64,
    /// Optimiser steps the trial will take.
    pub total_steps: u64,
    /// Training examples available.
    pub train_examples: usize,
    /// Validation examples used per evaluation.
    pub validation_examples: usize,
    /// Backend description, e.g. `ndarray` or `cuda:0`.
    pub backend: String,
}

/// A periodic training-loss reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Steps done.
    pub step: u64,
    /// Steps in the trial.
    pub total_steps: u64,
    /// Examples seen so far.
    pub examples: u64,
    /// Mean training loss since the previous reading.
    pub train_loss: f64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Seconds since training started.
    pub wall_seconds: f64,
}

/// One evaluation on the validation split.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Steps done.
    pub step: u64,
    /// Examples seen so far.
    pub examples: u64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Mean training loss since the previous evaluation.
    pub train_loss: f64,
    /// Mean cross-entropy on the validation examples.
    pub val_loss: f64,
    /// Fraction of validation examples classified correctly.
    pub val_accuracy: f64,
    /// Seconds since training started.
    pub wall_seconds: f64,
}

/// Receives a trial's progress. `should_stop` is asked before every step.
pub trait Reporter {
    /// The model is built and training is about to start.
    fn started(&mut self, _info: &StartInfo) {}
    /// A training-loss reading (every few steps).
    fn progress(&mut self, _progress: &Progress) {}
    /// An evaluation point.
    fn evaluated(&mut self, _evaluation: &Evaluation) {}
    /// True to end the trial early (Ctrl-C, lost lease).
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// The final numbers of a trial.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Steps done.
    pub steps: u64,
    /// Examples seen.
    pub examples: u64,
    /// Mean training loss over the last evaluation interval.
    pub train_loss: Option<f64>,
    /// Validation loss at the end.
    pub val_loss: Option<f64>,
    /// Validation accuracy at the end.
    pub val_accuracy: Option<f64>,
    /// Lowest validation loss seen at any evaluation.
    pub best_val_loss: Option<f64>,
    /// Seconds of training.
    pub wall_seconds: f64,
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every step ran.
    Completed(Summary),
    /// A loss became NaN or infinite.
    Diverged(Summary),
    /// The reporter asked to stop.
    Stopped(Summary),
}
