import GranuleIR
import Testing

@testable import GranuleInterpreter

/// reduce_sum, reduce_mean, reduce_max.
@Suite struct ReductionTests {
    let x = f32([2, 3], [1, 2, 3, 4, 5, 6])

    func reduce(_ op: String, _ attributes: String, _ result: String, input: Tensor? = nil, type: String = "f32[2,3]") throws -> Tensor {
        try runOne(unaryIR("\(op) %x {\(attributes)}", type, result: result), ["x": input ?? x])
    }

    @Test func sumOverEachAxis() throws {
        expectTensor(try reduce("reduce_sum", "axes = [1]", "f32[2]"), TensorType(.f32, [2]), [6, 15])
        expectTensor(try reduce("reduce_sum", "axes = [0]", "f32[3]"), TensorType(.f32, [3]), [5, 7, 9])
        expectTensor(try reduce("reduce_sum", "axes = [0, 1]", "f32[]"), TensorType(.f32, []), [21])
        expectTensor(try reduce("reduce_sum", "axes = []", "f32[2,3]"), TensorType(.f32, [2, 3]), [1, 2, 3, 4, 5, 6])
    }

    @Test func keepDims() throws {
        expectTensor(try reduce("reduce_sum", "axes = [0], keepdims = true", "f32[1,3]"), TensorType(.f32, [1, 3]), [5, 7, 9])
        expectTensor(try reduce("reduce_max", "axes = [1], keepdims = true", "f32[2,1]"), TensorType(.f32, [2, 1]), [3, 6])
    }

    @Test func meanAndMax() throws {
        expectTensor(try reduce("reduce_mean", "axes = [1]", "f32[2]"), TensorType(.f32, [2]), [2, 5])
        expectTensor(try reduce("reduce_mean", "axes = [0, 1]", "f32[]"), TensorType(.f32, []), [3.5])
        expectTensor(try reduce("reduce_max", "axes = [0]", "f32[3]"), TensorType(.f32, [3]), [4, 5, 6])
        expectTensor(try reduce("reduce_max", "axes = [1]", "f32[2]", input: f32([2, 3], [-5, -2, -9, 1, .nan, 0])),
                     TensorType(.f32, [2]), [-2, .nan])
    }

    @Test func middleAxisOfRank3() throws {
        let input = f32([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8])
        let y = try reduce("reduce_sum", "axes = [1]", "f32[2,2]", input: input, type: "f32[2,2,2]")
        expectTensor(y, TensorType(.f32, [2, 2]), [4, 6, 12, 14])
    }

    @Test func emptyReductions() throws {
        let empty = f32([0, 2], [])
        expectTensor(try reduce("reduce_mean", "axes = [0]", "f32[2]", input: empty, type: "f32[0,2]"), TensorType(.f32, [2]), [.nan, .nan])
        expectTensor(try reduce("reduce_max", "axes = [0]", "f32[2]", input: empty, type: "f32[0,2]"), TensorType(.f32, [2]), [-.infinity, -.infinity])
        expectTensor(try reduce("reduce_sum", "axes = [0]", "f32[2]", input: empty, type: "f32[0,2]"), TensorType(.f32, [2]), [0, 0])
        let ints = try runOne(unaryIR("reduce_max %x {axes = [0]}", "i64[0]", result: "i64[]"), ["x": i64([0], [])])
        expectInts(ints, TensorType(.i64, []), [.min])
    }

    @Test func integerSumAndMax() throws {
        let input = i64([2, 2], [1, -2, 30, 4])
        expectInts(try runOne(unaryIR("reduce_sum %x {axes = [1]}", "i64[2,2]", result: "i64[2]"), ["x": input]), TensorType(.i64, [2]), [-1, 34])
        expectInts(try runOne(unaryIR("reduce_max %x {axes = [0]}", "i64[2,2]", result: "i64[2]"), ["x": input]), TensorType(.i64, [2]), [30, 4])
    }

    @Test func sumAccumulatesInDoubleBeforeRounding() throws {
        // 2^24 + 1 + 1: f32 running sums would stay at 2^24; Double sums give 2^24 + 2 exactly.
        let input = f32([3], [16_777_216, 1, 1])
        let y = try runOne(unaryIR("reduce_sum %x {axes = [0]}", "f32[3]", result: "f32[]"), ["x": input])
        expectTensor(y, TensorType(.f32, []), [16_777_218])
    }
}
