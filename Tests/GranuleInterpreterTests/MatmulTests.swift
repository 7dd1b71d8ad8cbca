import GranuleIR
import Testing

@testable import GranuleInterpreter

/// matmul with transposes, batches and a shared right-hand matrix.
@Suite struct MatmulTests {
    let a = [1.0, 2, 3, 4, 5, 6]  // [[1,2,3],[4,5,6]]
    let b = [7.0, 8, 9, 10, 11, 12]  // [[7,8],[9,10],[11,12]]
    let product = [58.0, 64, 139, 154]

    func matmul(_ aType: String, _ bType: String, _ result: String, _ attributes: String = "", _ x: Tensor, _ y: Tensor) throws -> Tensor {
        let ir = """
        func @f(%a: \(aType) input, %b: \(bType) input) -> (y: \(result)) {
          %y = matmul %a, %b \(attributes) : \(result)
          return %y
        }
        """
        return try runOne(ir, ["a": x, "b": y])
    }

    @Test func plainProduct() throws {
        let y = try matmul("f32[2,3]", "f32[3,2]", "f32[2,2]", "", f32([2, 3], a), f32([3, 2], b))
        expectTensor(y, TensorType(.f32, [2, 2]), product)
    }

    @Test func transposedOperands() throws {
        let bT = f32([2, 3], [7, 9, 11, 8, 10, 12])
        let aT = f32([3, 2], [1, 4, 2, 5, 3, 6])
        expectTensor(try matmul("f32[2,3]", "f32[2,3]", "f32[2,2]", "{transpose_b = true}", f32([2, 3], a), bT), TensorType(.f32, [2, 2]), product)
        expectTensor(try matmul("f32[3,2]", "f32[3,2]", "f32[2,2]", "{transpose_a = true}", aT, f32([3, 2], b)), TensorType(.f32, [2, 2]), product)
        expectTensor(try matmul("f32[3,2]", "f32[2,3]", "f32[2,2]", "{transpose_a = true, transpose_b = true}", aT, bT), TensorType(.f32, [2, 2]), product)
    }

    @Test func batched() throws {
        let a1 = [1.0, 0, 0, 0, 1, 0]
        let b1 = [1.0, 2, 3, 4, 5, 6]
        let y = try matmul("f32[2,2,3]", "f32[2,3,2]", "f32[2,2,2]", "", f32([2, 2, 3], a + a1), f32([2, 3, 2], b + b1))
        expectTensor(y, TensorType(.f32, [2, 2, 2]), product + [1, 2, 3, 4])
        // The same with both batches' B transposed.
        let bT = f32([2, 2, 3], [7, 9, 11, 8, 10, 12, 1, 3, 5, 2, 4, 6])
        let yT = try matmul("f32[2,2,3]", "f32[2,2,3]", "f32[2,2,2]", "{transpose_b = true}", f32([2, 2, 3], a + a1), bT)
        expectTensor(yT, TensorType(.f32, [2, 2, 2]), product + [1, 2, 3, 4])
    }

    @Test func sharedMatrixForEveryBatch() throws {
        let a1 = [1.0, 0, 0, 0, 1, 0]
        let y = try matmul("f32[2,2,3]", "f32[3,2]", "f32[2,2,2]", "", f32([2, 2, 3], a + a1), f32([3, 2], b))
        expectTensor(y, TensorType(.f32, [2, 2, 2]), product + [7, 8, 9, 10])
        let bT = f32([2, 3], [7, 9, 11, 8, 10, 12])
        let yT = try matmul("f32[2,2,3]", "f32[2,3]", "f32[2,2,2]", "{transpose_b = true}", f32([2, 2, 3], a + a1), bT)
        expectTensor(yT, TensorType(.f32, [2, 2, 2]), product + [7, 8, 9, 10])
    }

    @Test func emptyInnerDimensionGivesZeros() throws {
        let y = try matmul("f32[2,0]", "f32[0,3]", "f32[2,3]", "", f32([2, 0], []), f32([0, 3], []))
        expectTensor(y, TensorType(.f32, [2, 3]), [0, 0, 0, 0, 0, 0])
    }

    @Test func modelSizedProductMatchesNaiveSum() throws {
        let (m, k, n) = (64, 48, 40)
        let x = (0..<(m * k)).map { Double(($0 * 7) % 13) - 6 }
        let w = (0..<(k * n)).map { Double(($0 * 5) % 11) - 5 }
        let y = try matmul("f64[\(m),\(k)]", "f64[\(k),\(n)]", "f64[\(m),\(n)]", "", f64([m, k], x), f64([k, n], w))
        var expected = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k { expected[i * n + j] += x[i * k + p] * w[p * n + j] } } }
        expectTensor(y, TensorType(.f64, [m, n]), expected)
    }
}
