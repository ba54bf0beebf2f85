//! slaw's CPU backend (Burn's ndarray, f32) as seen from generic code: whether a backend is it,
//! and the ndarray arrays under its tensors, for the loops that do in one pass what Burn's
//! tensor operations do in several (`ops::adamw::cpu`, `foreach`'s sum of squares, `layer_norm`'s CPU passes).

use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};
use burn_ndarray::{NdArrayTensor, SharedArray};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use crate::ops::specialise::{cast, is};

/// slaw's CPU backend.
pub(crate) type Cpu = NdArray<f32>;

/// Loops over fewer elements run on the calling thread (rayon's threads cost more than they
/// save on a bias or a norm's gain).
pub(crate) const PARALLEL_FROM: usize = 1 << 15;

/// Whether `B` is slaw's f32 CPU backend.
pub(crate) fn is_cpu_f32<B: Backend>() -> bool {
    is::<B, Cpu>()
}

/// The array under a tensor of `B`, which must be the CPU backend ([`is_cpu_f32`]).
pub(crate) fn array<B: Backend, const D: usize>(t: Tensor<B, D>) -> SharedArray<f32> {
    primitive_array(cast::<_, Tensor<Cpu, D>>(t).into_primitive().tensor())
}

/// A tensor of `B`, which must be the CPU backend, over `array`.
pub(crate) fn tensor<B: Backend, const D: usize>(array: SharedArray<f32>) -> Tensor<B, D> {
    cast(Tensor::<Cpu, D>::from_primitive(TensorPrimitive::Float(
        primitive(array),
    )))
}

/// The array under a primitive tensor of the CPU backend.
pub(crate) fn primitive_array(t: FloatTensor<Cpu>) -> SharedArray<f32> {
    match t {
        NdArrayTensor::F32(storage) => storage.into_shared(),
        other => unreachable!("an f32 backend holds {:?} tensors", other.dtype()),
    }
}

/// A primitive tensor of the CPU backend over `array`.
pub(crate) fn primitive(array: SharedArray<f32>) -> FloatTensor<Cpu> {
    NdArrayTensor::from(array)
}

/// A primitive tensor's array in row-major order (copied only when it is not).
pub(crate) fn row_major(t: FloatTensor<Cpu>) -> SharedArray<f32> {
    let a = primitive_array(t);
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned().into_shared()
    }
}

/// The elements of a row-major array.
pub(crate) fn values(a: &SharedArray<f32>) -> &[f32] {
    a.as_slice().expect("a row-major array is one slice")
}

/// A primitive tensor of `shape` over row-major `values`.
pub(crate) fn primitive_from(shape: &[usize], values: Vec<f32>) -> FloatTensor<Cpu> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), values).expect("values fill the shape");
    primitive(a.into_shared())
}

/// Calls `f(row, out_row, extra)` for every row of `out` (`width` wide) and the row's element
/// of `extra`, on rayon's threads when `out` is large.
pub(crate) fn for_rows<T: Send>(
    out: &mut [f32],
    width: usize,
    extra: &mut [T],
    f: impl Fn(usize, &mut [f32], &mut T) + Sync + Send,
) {
    if out.len() >= PARALLEL_FROM {
        out.par_chunks_mut(width)
            .zip(extra.par_iter_mut())
            .enumerate()
            .for_each(|(r, (o, e))| f(r, o, e));
    } else {
        out.chunks_mut(width)
            .zip(extra.iter_mut())
            .enumerate()
            .for_each(|(r, (o, e))| f(r, o, e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;

    #[test]
    fn recognises_only_the_f32_cpu_backend() {
        assert!(is_cpu_f32::<NdArray<f32>>());
        assert!(!is_cpu_f32::<NdArray<f64>>());
        assert!(!is_cpu_f32::<Autodiff<NdArray<f32>>>());
    }

    #[test]
    fn arrays_and_tensors_round_trip() {
        let t = Tensor::<Cpu, 2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &Default::default());
        let a = array(t.clone());
        assert_eq!(a.shape(), [2, 2]);
        assert_eq!(a[[1, 0]], 3.0);
        let back: Tensor<Cpu, 2> = tensor(a);
        assert_eq!(back.into_data(), t.into_data());
    }
}
