import GranuleIR
import Testing

@testable import GranuleInterpreter

/// iota, constant, cast.
@Suite struct SourceOpTests {
    func source(_ op: String, _ type: String, precision: Interpreter.Precision = .float32) throws -> Tensor {
        try runOne("func @f() -> (y: \(type)) {\n  %y = \(op) : \(type)\n  return %y\n}", precision: precision)
    }

    @Test func iotaAlongEachAxis() throws {
        expectInts(try source("iota {axis = 1}", "i64[2,3]"), TensorType(.i64, [2, 3]), [0, 1, 2, 0, 1, 2])
        expectTensor(try source("iota {axis = 0}", "f32[2,3]"), TensorType(.f32, [2, 3]), [0, 0, 0, 1, 1, 1])
        expectInts(try source("iota {axis = 1}", "i32[1,2,2]"), TensorType(.i32, [1, 2, 2]), [0, 0, 1, 1])
    }

    @Test func splatAndDenseConstants() throws {
        expectTensor(try source("constant splat<0.1>", "f32[2]"), TensorType(.f32, [2]), [single(0.1), single(0.1)])
        expectTensor(try source("constant splat<0.1>", "f32[2]", precision: .float64), TensorType(.f32, [2]), [0.1, 0.1])
        expectTensor(try source("constant splat<0.1>", "f64[]"), TensorType(.f64, []), [0.1])
        expectTensor(try source("constant splat<3>", "f32[2]"), TensorType(.f32, [2]), [3, 3])
        expectInts(try source("constant dense<[1, -2, 3]>", "i32[3]"), TensorType(.i32, [3]), [1, -2, 3])
        expectInts(try source("constant dense<[true, false, true]>", "i1[3]"), TensorType(.i1, [3]), [1, 0, 1])
        expectTensor(try source("constant dense<[1, 2.5, -inf, nan]>", "f32[2,2]"), TensorType(.f32, [2, 2]), [1, 2.5, -.infinity, .nan])
    }

    func cast(_ from: String, _ to: String, _ input: Tensor, precision: Interpreter.Precision = .float32) throws -> Tensor {
        try runOne(unaryIR("cast %x", from, result: to), ["x": input], precision: precision)
    }

    @Test func floatToIntegerTruncatesTowardZero() throws {
        expectInts(try cast("f32[4]", "i64[4]", f32([4], [1.9, -1.9, 0.5, -0.0])), TensorType(.i64, [4]), [1, -1, 0, 0])
        expectInts(try cast("f64[2]", "i32[2]", f64([2], [2_147_483_647.9, -2_147_483_648.9])), TensorType(.i32, [2]), [2_147_483_647, -2_147_483_648])
    }

    @Test func floatToIntegerRejectsNaNAndOutOfRange() throws {
        let nan = diagnostic { _ = try cast("f32[2]", "i64[2]", f32([2], [1, .nan])) }
        #expect(nan?.message == "'cast' of nan at [1] to i64 is undefined")
        #expect(nan?.location?.line == 2)
        let big = diagnostic { _ = try cast("f64[1]", "i32[1]", f64([1], [3e9])) }
        #expect(big?.message == "'cast' of 3000000000.0 at [0] to i32 is out of range")
        let huge = diagnostic { _ = try cast("f64[1]", "i64[1]", f64([1], [9.223372036854775808e18])) }
        #expect(huge?.message.contains("out of range") == true)
        let infinite = diagnostic { _ = try cast("f32[1]", "i64[1]", f32([1], [-.infinity])) }
        #expect(infinite?.message.contains("out of range") == true)
    }

    @Test func conversionsBetweenFloatsIntegersAndBooleans() throws {
        expectTensor(try cast("i64[2]", "f32[2]", i64([2], [3, 16_777_217])), TensorType(.f32, [2]), [3, 16_777_216])
        expectTensor(try cast("i64[2]", "f32[2]", i64([2], [3, 16_777_217]), precision: .float64), TensorType(.f32, [2]), [3, 16_777_217])
        expectTensor(try cast("f64[1]", "f32[1]", f64([1], [0.1])), TensorType(.f32, [1]), [single(0.1)])
        expectTensor(try cast("f32[1]", "f64[1]", f32([1], [0.5])), TensorType(.f64, [1]), [0.5])
        expectInts(try cast("f32[4]", "i1[4]", f32([4], [0, 2.5, .nan, -0.0])), TensorType(.i1, [4]), [0, 1, 1, 0])
        expectInts(try cast("i64[3]", "i1[3]", i64([3], [0, -4, 1])), TensorType(.i1, [3]), [0, 1, 1])
        expectTensor(try cast("i1[2]", "f32[2]", i1([2], [1, 0])), TensorType(.f32, [2]), [1, 0])
        expectInts(try cast("i1[2]", "i32[2]", i1([2], [1, 0])), TensorType(.i32, [2]), [1, 0])
        expectInts(try cast("i64[2]", "i32[2]", i64([2], [4_294_967_297, -1])), TensorType(.i32, [2]), [1, -1])
    }
}
