//! Reaching code written for one concrete backend from slaw's generic training code: a type
//! check and a cast through `Any` (Rust has no specialisation). Used where one backend has a
//! faster path for the same arithmetic (`ops::adamw::cuda` on CUDA, `ops::adamw::cpu` on ndarray,
//! `foreach`'s CUDA kernel).

use std::any::{Any, TypeId};

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

/// Whether the type `A` is the type `T`.
pub(crate) fn is<A: 'static, T: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<T>()
}

/// `t` as type `U`, which it is (callers check [`is`] first).
pub(crate) fn cast<T: 'static, U: 'static>(t: T) -> U {
    match (Box::new(t) as Box<dyn Any>).downcast::<U>() {
        Ok(u) => *u,
        Err(_) => unreachable!("cast between different types (the type was not checked)"),
    }
}

/// The primitive float tensor of `t` on backend `P`, which `B` is.
pub(crate) fn primitive<B: Backend, P: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<P> {
    cast::<_, Tensor<P, D>>(t).into_primitive().tensor()
}

/// The tensor of `B` (which `P` is) around the primitive `t`.
pub(crate) fn tensor<B: Backend, P: Backend, const D: usize>(t: FloatTensor<P>) -> Tensor<B, D> {
    cast(Tensor::<P, D>::from_primitive(TensorPrimitive::Float(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_only_between_equal_types() {
        assert!(is::<f32, f32>());
        assert!(!is::<f32, f64>());
        let v: Vec<u8> = cast(vec![1u8, 2]);
        assert_eq!(v, [1, 2]);
        let other = std::panic::catch_unwind(|| cast::<u8, u16>(1));
        assert!(other.is_err());
    }
}
