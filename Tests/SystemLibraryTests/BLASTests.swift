import CBLAS
import Testing

/// OpenBLAS through the CBLAS module map: single-precision GEMM against a hand-computed product.
@Suite struct BLASTests {
    // A is 3x4 and B is 4x2, row-major.
    static let a: [Float] = [
        1, 2, 3, 4,
        5, 6, 7, 8,
        9, 10, 11, 12,
    ]
    static let b: [Float] = [
        1, -1,
        2, 0,
        0, 3,
        -2, 1,
    ]
    /// A·B by hand: row i of A dotted with column j of B.
    static let product: [Float] = [
        1 + 4 + 0 - 8, -1 + 0 + 9 + 4,
        5 + 12 + 0 - 16, -5 + 0 + 21 + 8,
        9 + 20 + 0 - 24, -9 + 0 + 33 + 12,
    ]

    static func transposed(_ matrix: [Float], rows: Int, columns: Int) -> [Float] {
        (0..<columns).flatMap { column in (0..<rows).map { row in matrix[row * columns + column] } }
    }

    @Test func handComputedProductIsRight() {
        #expect(Self.product == [-3, 12, 1, 24, 5, 36])
    }

    @Test func sgemmWithoutTransposes() {
        var c = [Float](repeating: 0, count: 6)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 3, 2, 4, 1, Self.a, 4, Self.b, 2, 0, &c, 2)
        #expect(c == Self.product)
    }

    @Test func sgemmWithTransposes() {
        // Aᵀ is stored 4x3 and Bᵀ 2x4; op(X) = Xᵀ undoes that.
        let aT = Self.transposed(Self.a, rows: 3, columns: 4)
        let bT = Self.transposed(Self.b, rows: 4, columns: 2)
        var c = [Float](repeating: 0, count: 6)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, 3, 2, 4, 1, aT, 3, bT, 4, 0, &c, 2)
        #expect(c == Self.product)

        var mixed = [Float](repeating: 0, count: 6)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 3, 2, 4, 1, Self.a, 4, bT, 4, 0, &mixed, 2)
        #expect(mixed == Self.product)
    }

    @Test func sgemmAccumulatesWithAlphaAndBeta() {
        var c = [Float](repeating: 1, count: 6)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 3, 2, 4, 2, Self.a, 4, Self.b, 2, 3, &c, 2)
        #expect(c == Self.product.map { 2 * $0 + 3 })
    }
}
