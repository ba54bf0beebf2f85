//! How cuBLASLt reads slaw's row-major operands: a row-major `C[m, n] = op(A)[m, k] · op(B)[k, n]`
//! is the column-major product `Cᵀ[n, m] = op(B)ᵀ · op(A)ᵀ`, so cuBLASLt's first operand is B and
//! its second A, each read as the column-major transpose of its row-major storage. Pure
//! arithmetic on shapes, tested on the CPU against a column-major product computed the way
//! cuBLASLt defines it (the GPU tests then compare the whole path with Burn's products).

/// One product: `batch` independent `[m, k] · [k, n]` products of row-major operands stored one
/// after the other; `ta` / `tb`: the operand is stored transposed (`[k, m]` / `[n, k]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Gemm {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ta: bool,
    pub tb: bool,
    /// The operands are bf16 (else f32); the result is f32 either way.
    pub bf16: bool,
    /// A bias of `n` f32 values is added to every row of the result.
    pub bias: bool,
}

/// One matrix as cuBLASLt reads it: column-major `rows × cols` with leading dimension `ld`, read
/// transposed when `transposed`; `batch_stride` elements from one product's matrix to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColumnMajor {
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
    pub transposed: bool,
    pub batch_stride: usize,
}

fn matrix(rows: usize, cols: usize, transposed: bool) -> ColumnMajor {
    ColumnMajor {
        rows,
        cols,
        ld: rows,
        transposed,
        batch_stride: rows * cols,
    }
}

/// cuBLASLt's first operand (B), second operand (A) and result for `g`.
pub(crate) fn column_major(g: &Gemm) -> [ColumnMajor; 3] {
    let (m, n, k) = (g.m, g.n, g.k);
    // B stored [k, n] is column-major n×k, op(B)ᵀ as it is; stored [n, k] it is k×n, transposed.
    let first = if g.tb {
        matrix(k, n, true)
    } else {
        matrix(n, k, false)
    };
    // A stored [m, k] is column-major k×m, op(A)ᵀ as it is; stored [k, m] it is m×k, transposed.
    let second = if g.ta {
        matrix(m, k, true)
    } else {
        matrix(k, m, false)
    };
    [first, second, matrix(n, m, false)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Element `(r, c)` of `op(M)` for the column-major matrix `M` at `base` of `buf`.
    fn at(buf: &[f64], base: usize, m: &ColumnMajor, r: usize, c: usize) -> f64 {
        let (r, c) = if m.transposed { (c, r) } else { (r, c) };
        buf[base + r + c * m.ld]
    }

    /// The row-major product of row-major operands, computed directly and through the layouts
    /// (cuBLASLt's definition `D = op(first) · op(second)`, column-major), agree.
    #[test]
    fn the_column_major_product_is_the_row_major_product() {
        for (batch, m, n, k) in [(1, 3, 5, 4), (3, 2, 7, 6), (2, 1, 1, 9), (4, 6, 2, 1)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let g = Gemm {
                        batch,
                        m,
                        n,
                        k,
                        ta,
                        tb,
                        bf16: false,
                        bias: false,
                    };
                    let a: Vec<f64> = (0..batch * m * k)
                        .map(|i| (i as f64 * 0.37).sin())
                        .collect();
                    let b: Vec<f64> = (0..batch * k * n)
                        .map(|i| (i as f64 * 0.91).cos())
                        .collect();
                    // Row-major reference: A is [m, k] or stored [k, m]; B [k, n] or [n, k].
                    let a_at = |p: usize, i: usize, l: usize| {
                        if ta {
                            a[p * m * k + l * m + i]
                        } else {
                            a[p * m * k + i * k + l]
                        }
                    };
                    let b_at = |p: usize, l: usize, j: usize| {
                        if tb {
                            b[p * k * n + j * k + l]
                        } else {
                            b[p * k * n + l * n + j]
                        }
                    };
                    let [first, second, out] = column_major(&g);
                    assert_eq!((out.rows, out.cols), (n, m));
                    assert_eq!(first.rows * first.cols, k * n);
                    assert_eq!(second.rows * second.cols, m * k);
                    let mut d = vec![0.0; batch * m * n];
                    for p in 0..batch {
                        for i in 0..n {
                            for j in 0..m {
                                let s: f64 = (0..k)
                                    .map(|l| {
                                        at(&b, p * first.batch_stride, &first, i, l)
                                            * at(&a, p * second.batch_stride, &second, l, j)
                                    })
                                    .sum();
                                d[p * out.batch_stride + i + j * out.ld] = s;
                            }
                        }
                    }
                    for p in 0..batch {
                        for i in 0..m {
                            for j in 0..n {
                                let c: f64 = (0..k).map(|l| a_at(p, i, l) * b_at(p, l, j)).sum();
                                let got = d[p * m * n + i * n + j];
                                assert!(
                                    (got - c).abs() < 1e-12,
                                    "{g:?} [{p},{i},{j}]: {got} vs {c}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
