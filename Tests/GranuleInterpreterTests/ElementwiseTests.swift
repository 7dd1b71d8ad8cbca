import GranuleIR
import Testing

@testable import GranuleInterpreter

/// Unary math, broadcasting binary arithmetic, compare and select.
@Suite struct ElementwiseTests {
    let x = f32([4], [-1, 0, 0.5, 2])

    func unary(_ op: String, _ input: Tensor) throws -> [Double] {
        try runOne(unaryIR(op, "f32[4]"), ["x": input], precision: .float64).floats
    }

    @Test func unaryMath() throws {
        expectClose(try unary("neg %x", x), [1, 0, -0.5, -2])
        expectClose(try unary("abs %x", x), [1, 0, 0.5, 2])
        expectClose(try unary("relu %x", x), [0, 0, 0.5, 2])
        expectClose(try unary("exp %x", x), [0.36787944117144233, 1.0, 1.6487212707001282, 7.38905609893065])
        expectClose(try unary("log %x", f32([4], [1, 0.5, 4, 0])), [0, -0.6931471805599453, 1.3862943611198906, -.infinity])
        expectClose(try unary("tanh %x", f32([4], [0, 0.5, -2, 100])), [0, 0.46211715726000974, -0.9640275800758169, 1])
        expectClose(try unary("sigmoid %x", f32([4], [0, 2, -1, 1000])), [0.5, 0.8807970779778823, 0.2689414213699951, 1])
        expectClose(try unary("sqrt %x", f32([4], [4, 2.25, 0, -1])), [2, 1.5, 0, .nan])
        expectClose(try unary("rsqrt %x", f32([4], [4, 0.25, 1, 0])), [0.5, 2, 1, .infinity])
        expectClose(try unary("erf %x", f32([4], [0, 0.5, 1, -2])), [0, 0.5204998778130465, 0.8427007929497149, -0.9953222650189527])
        expectClose(try unary("pow %x {exponent = 3}", f32([4], [2, -1, 0.5, 0])), [8, -1, 0.125, 0])
        expectClose(try unary("pow %x {exponent = 0.5}", f32([4], [9, 4, 0, 2.25])), [3, 2, 0, 1.5])
        expectClose(try unary("gelu %x {approx = erf}", f32([4], [-1, 0, 1, 2])),
                    [-0.15865525393145707, 0, 0.8413447460685429, 1.9544997361036416])
        expectClose(try unary("gelu %x {approx = tanh}", f32([4], [-1, 0, 1, 2])),
                    [-0.15880800939172324, 0, 0.8411919906082768, 1.954597694087775])
    }

    @Test func reluPropagatesNaN() throws {
        expectClose(try unary("relu %x", f32([4], [.nan, -.infinity, .infinity, -3])), [.nan, 0, .infinity, 0])
    }

    @Test func integerUnaryOpsWrap() throws {
        let ir = unaryIR("neg %x", "i32[3]")
        expectInts(try runOne(ir, ["x": i32([3], [5, -7, -2_147_483_648])]), TensorType(.i32, [3]), [-5, 7, -2_147_483_648])
        let abs = unaryIR("abs %x", "i64[3]")
        expectInts(try runOne(abs, ["x": i64([3], [5, -7, .min])]), TensorType(.i64, [3]), [5, 7, .min])
        let relu = unaryIR("relu %x", "i64[3]")
        expectInts(try runOne(relu, ["x": i64([3], [5, -7, 0])]), TensorType(.i64, [3]), [5, 0, 0])
    }

    @Test func addBroadcastsTrailingAxis() throws {
        let ir = """
        func @f(%a: f32[2,3] input, %b: f32[3] input) -> (y: f32[2,3]) {
          %y = add %a, %b : f32[2,3]
          return %y
        }
        """
        let y = try runOne(ir, ["a": f32([2, 3], [1, 2, 3, 4, 5, 6]), "b": f32([3], [10, 20, 30])])
        expectTensor(y, TensorType(.f32, [2, 3]), [11, 22, 33, 14, 25, 36])
    }

    @Test func binaryOpsBroadcastBothWays() throws {
        func binary(_ op: String) throws -> [Double] {
            let ir = """
            func @f(%a: f32[2,1] input, %b: f32[1,3] input) -> (y: f32[2,3]) {
              %y = \(op) %a, %b : f32[2,3]
              return %y
            }
            """
            return try runOne(ir, ["a": f32([2, 1], [1, 6]), "b": f32([1, 3], [2, 4, 8])], precision: .float64).floats
        }
        expectClose(try binary("add"), [3, 5, 9, 8, 10, 14])
        expectClose(try binary("sub"), [-1, -3, -7, 4, 2, -2])
        expectClose(try binary("mul"), [2, 4, 8, 12, 24, 48])
        expectClose(try binary("div"), [0.5, 0.25, 0.125, 3, 1.5, 0.75])
        expectClose(try binary("max"), [2, 4, 8, 6, 6, 8])
        expectClose(try binary("min"), [1, 1, 1, 2, 4, 6])
    }

    @Test func scalarOperandBroadcasts() throws {
        let ir = """
        func @f(%a: f32[3] input, %s: f32[] input) -> (y: f32[3]) {
          %y = mul %s, %a : f32[3]
          return %y
        }
        """
        expectTensor(try runOne(ir, ["a": f32([3], [1, -2, 3]), "s": .scalar(2)]), TensorType(.f32, [3]), [2, -4, 6])
    }

    @Test func maxAndMinPropagateNaN() throws {
        for op in ["max", "min"] {
            let ir = """
            func @f(%a: f32[3] input, %b: f32[3] input) -> (y: f32[3]) {
              %y = \(op) %a, %b : f32[3]
              return %y
            }
            """
            let y = try runOne(ir, ["a": f32([3], [.nan, 1, 2]), "b": f32([3], [1, .nan, 3])])
            expectClose(y.floats, [.nan, .nan, op == "max" ? 3 : 2])
        }
    }

    @Test func integerDivisionTruncatesTowardZero() throws {
        let ir = """
        func @f(%a: i64[5] input, %b: i64[5] input) -> (y: i64[5]) {
          %y = div %a, %b : i64[5]
          return %y
        }
        """
        let y = try runOne(ir, ["a": i64([5], [7, -7, 7, -7, .min]), "b": i64([5], [2, 2, -2, -2, -1])])
        expectInts(y, TensorType(.i64, [5]), [3, -3, -3, 3, .min])
    }

    @Test func integerDivisionByZeroIsARunTimeError() throws {
        let ir = """
        func @f(%a: i32[2] input, %b: i32[2] input) -> (y: i32[2]) {
          %y = div %a, %b : i32[2]
          return %y
        }
        """
        let error = diagnostic { _ = try runOne(ir, ["a": i32([2], [1, 2]), "b": i32([2], [1, 0])]) }
        #expect(error?.message.contains("division by zero") == true)
        #expect(error?.location?.line == 2)
        #expect(error?.location?.column == 8)
    }

    @Test func integerArithmeticWrapsToTheDtypeWidth() throws {
        let ir = """
        func @f(%a: i32[2] input, %b: i32[2] input) -> (s: i32[2], p: i32[2]) {
          %s = add %a, %b : i32[2]
          %p = mul %a, %b : i32[2]
          return %s, %p
        }
        """
        let results = try run(ir, ["a": i32([2], [2_147_483_647, 65536]), "b": i32([2], [1, 65536])])
        expectInts(results[0], TensorType(.i32, [2]), [-2_147_483_648, 131_072])
        expectInts(results[1], TensorType(.i32, [2]), [2_147_483_647, 0])
    }

    @Test func comparePredicates() throws {
        func compare(_ predicate: String, _ a: Tensor) throws -> Tensor {
            let ir = """
            func @f(%a: f32[4] input, %b: f32[] input) -> (y: i1[4]) {
              %y = compare %a, %b {predicate = \(predicate)} : i1[4]
              return %y
            }
            """
            return try runOne(ir, ["a": a, "b": .scalar(2)])
        }
        let a = f32([4], [1, 2, 3, .nan])
        let type = TensorType(.i1, [4])
        expectInts(try compare("eq", a), type, [0, 1, 0, 0])
        expectInts(try compare("ne", a), type, [1, 0, 1, 1])
        expectInts(try compare("lt", a), type, [1, 0, 0, 0])
        expectInts(try compare("le", a), type, [1, 1, 0, 0])
        expectInts(try compare("gt", a), type, [0, 0, 1, 0])
        expectInts(try compare("ge", a), type, [0, 1, 1, 0])
    }

    @Test func compareIntegersBroadcasting() throws {
        let ir = """
        func @f(%a: i64[2,1] input, %b: i64[3] input) -> (y: i1[2,3]) {
          %y = compare %a, %b {predicate = lt} : i1[2,3]
          return %y
        }
        """
        let y = try runOne(ir, ["a": i64([2, 1], [1, 3]), "b": i64([3], [0, 2, 4])])
        expectInts(y, TensorType(.i1, [2, 3]), [0, 1, 1, 0, 0, 1])
    }

    @Test func selectBroadcastsAllThreeOperands() throws {
        let ir = """
        func @f(%c: i1[2,1] input, %a: f32[2,2] input, %b: f32[] input) -> (y: f32[2,2]) {
          %y = select %c, %a, %b : f32[2,2]
          return %y
        }
        """
        let y = try runOne(ir, ["c": i1([2, 1], [1, 0]), "a": f32([2, 2], [1, 2, 3, 4]), "b": .scalar(-1)])
        expectTensor(y, TensorType(.f32, [2, 2]), [1, 2, -1, -1])
    }

    @Test func selectOnIntegers() throws {
        let ir = """
        func @f(%c: i1[3] input, %a: i64[3] input, %b: i64[3] input) -> (y: i64[3]) {
          %y = select %c, %a, %b : i64[3]
          return %y
        }
        """
        let y = try runOne(ir, ["c": i1([3], [0, 1, 0]), "a": i64([3], [1, 2, 3]), "b": i64([3], [-1, -2, -3])])
        expectInts(y, TensorType(.i64, [3]), [-1, 2, -3])
    }
}
