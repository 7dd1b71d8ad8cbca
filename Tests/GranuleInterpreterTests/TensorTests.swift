import GranuleIR
import Testing

@testable import GranuleInterpreter

/// Tensor construction, accessors and the consistency check used on outside tensors.
@Suite struct TensorTests {
    @Test func scalarsAndZeros() {
        #expect(Tensor.scalar(0.1).floats == [single(0.1)])
        #expect(Tensor.scalar(0.1, .f64).floats == [0.1])
        #expect(Tensor.scalar(-3, .i32).storage == .int([-3]))
        #expect(Tensor.scalar(2, .i1).storage == .int([1]))
        #expect(Tensor.scalar(1).type == TensorType(.f32, []))
        let zeros = Tensor.zeros(TensorType(.i64, [2, 3]))
        #expect(zeros.storage == .int([0, 0, 0, 0, 0, 0]))
        #expect(zeros.elementCount == 6)
        #expect(Tensor.zeros(TensorType(.f32, [0, 4])).elementCount == 0)
    }

    @Test func accessorsConvertBetweenKinds() {
        #expect(i64([3], [1, -2, 3]).floats == [1, -2, 3])
        #expect(f32([5], [1.9, -1.9, .nan, 1e30, -1e30]).ints == [1, -1, 0, .max, .min])
        #expect(f32([2], [1, 2]).floats == [1, 2])
    }

    @Test func inconsistencies() {
        #expect(f32([2], [1, 2]).inconsistency == nil)
        var tensor = f32([2], [1, 2])
        tensor.storage = .int([1, 2])
        #expect(tensor.inconsistency == "holds integers but its type is f32[2]")
        tensor = i64([2], [1, 2])
        tensor.storage = .float([1, 2])
        #expect(tensor.inconsistency == "holds floats but its type is i64[2]")
        tensor.type = TensorType(.f64, [3])
        #expect(tensor.inconsistency == "has 2 elements but f64[3] has 3")
        var big = i32([1], [0])
        big.storage = .int([3_000_000_000])
        #expect(big.inconsistency == "i32 element 0 is 3000000000, outside the i32 range")
        var negative = f32([1], [0])
        negative.type = TensorType(.f32, [-1])
        #expect(negative.inconsistency?.contains("negative dimension") == true)
    }
}
