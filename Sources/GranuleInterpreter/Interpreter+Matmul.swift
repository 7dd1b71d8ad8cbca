import GranuleIR

/// `matmul`: batched matrix products over the last two axes, each operand optionally transposed.
///
/// The kernel is the textbook i-k-j loop: for each row i of A and each k, row k of B scaled by
/// A[i, k] is added into row i of C, so the innermost loop runs over contiguous memory. A
/// transposed B is first copied into row-major k×n order to keep that property. Each C[i, j] is
/// accumulated in `Double` in increasing k order, starting from zero.
extension Interpreter {
    func matmul(_ a: Tensor, _ b: Tensor, _ attributes: Attributes, type: TensorType) throws(Diagnostic) -> Tensor {
        let dims = try TypeRules.matmulDims(a.type, b.type, attributes)
        let transposeA = try attributes.bool("transpose_a")
        let transposeB = try attributes.bool("transpose_b")
        let (m, k, n) = (dims.m, dims.k, dims.n)
        let batches = Indexing.count(dims.batch)
        let sharedB = b.type.rank == 2
        let x = try a.floatValues()
        let y = try b.floatValues()

        var result = [Double](repeating: 0, count: batches * m * n)
        var transposedB: [Double] = []
        for batch in 0..<batches {
            let aBase = batch * m * k
            var bBase = sharedB ? 0 : batch * k * n
            if transposeB, !sharedB || batch == 0 {
                // B is stored n×k; copy it to k×n so that its rows are contiguous.
                transposedB = [Double](repeating: 0, count: k * n)
                for j in 0..<n {
                    for kk in 0..<k { transposedB[kk * n + j] = y[bBase + j * k + kk] }
                }
            }
            if transposeB { bBase = 0 }
            let cBase = batch * m * n
            x.withUnsafeBufferPointer { av in
                (transposeB ? transposedB : y).withUnsafeBufferPointer { bv in
                    result.withUnsafeMutableBufferPointer { cv in
                        for i in 0..<m {
                            let cRow = cBase + i * n
                            for kk in 0..<k {
                                let aik = transposeA ? av[aBase + kk * m + i] : av[aBase + i * k + kk]
                                let bRow = bBase + kk * n
                                for j in 0..<n { cv[cRow + j] += aik * bv[bRow + j] }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(type, floats: result)
    }
}
