use crate::{
    NdArray, NdArrayTensor, SharedArray,
    element::{FloatNdArrayElement, IntNdArrayElement, QuantElement},
    execute_with_float_dtype, execute_with_numeric_dtype,
    ops::NdArrayMathOps,
};
use burn_backend::{ElementConversion, TensorMetadata, ops::ActivationOps, tensor::FloatTensor};

impl<E: FloatNdArrayElement, I: IntNdArrayElement, Q: QuantElement> ActivationOps<Self>
    for NdArray<E, I, Q>
where
    NdArrayTensor: From<SharedArray<E>>,
    NdArrayTensor: From<SharedArray<I>>,
{
    fn relu(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        execute_with_numeric_dtype!(tensor, |array| NdArrayMathOps::clamp_min(array, 0.elem()))
    }

    // slaw patch: GELU and its gradient in one pass over the elements each. Upstream composes
    // the forward of five tensor operations (erf through f64) and the backward of fifteen,
    // each a pass with its own allocation, and its backward is the derivative of the tanh
    // approximation while its forward is the exact (erf) GELU. Here the backward is the
    // derivative of the exact GELU, as in PyTorch: Φ(x) + x·φ(x).
    fn gelu(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        execute_with_float_dtype!(tensor, F, |mut array: SharedArray<F>| {
            if parallel(array.len()) {
                #[cfg(feature = "multi-threads")]
                array.par_mapv_inplace(<F as Gelu>::gelu);
            } else {
                array.mapv_inplace(<F as Gelu>::gelu);
            }
            array
        })
    }

    fn gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        execute_with_float_dtype!((x, grad), F, |x: SharedArray<F>, grad: SharedArray<F>| {
            let zip = ndarray::Zip::from(&x).and(&grad);
            let each = |&x: &F, &g: &F| <F as Gelu>::gelu_grad(x, g);
            #[cfg(feature = "multi-threads")]
            if parallel(x.len()) {
                return zip.par_map_collect(each).into_shared();
            }
            zip.map_collect(each).into_shared()
        })
    }
}

/// Whether an element-wise pass over `len` elements is worth rayon's threads (slaw patch).
fn parallel(len: usize) -> bool {
    cfg!(feature = "multi-threads") && len >= 1 << 15
}

/// The exact GELU, `x·Φ(x)`, and its derivative, in the element's own precision (slaw patch).
trait Gelu: Copy {
    fn gelu(self) -> Self;
    /// `grad · (Φ(x) + x·φ(x))`.
    fn gelu_grad(self, grad: Self) -> Self;
}

impl Gelu for f32 {
    fn gelu(self) -> f32 {
        0.5 * self * (1.0 + libm::erff(self * core::f32::consts::FRAC_1_SQRT_2))
    }

    fn gelu_grad(self, grad: f32) -> f32 {
        // 1/√(2π)
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let cdf = 0.5 * (1.0 + libm::erff(self * core::f32::consts::FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * libm::expf(-0.5 * self * self);
        grad * (cdf + self * pdf)
    }
}

impl Gelu for f64 {
    fn gelu(self) -> f64 {
        0.5 * self * (1.0 + libm::erf(self * core::f64::consts::FRAC_1_SQRT_2))
    }

    fn gelu_grad(self, grad: f64) -> f64 {
        const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
        let cdf = 0.5 * (1.0 + libm::erf(self * core::f64::consts::FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * libm::exp(-0.5 * self * self);
        grad * (cdf + self * pdf)
    }
}
