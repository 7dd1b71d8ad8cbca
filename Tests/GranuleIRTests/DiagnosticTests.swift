import GranuleIR
import Testing

/// Typical mistakes and the exact `file:line:col: error: message` the parser or verifier gives.
@Suite struct DiagnosticTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var text: String
        var expected: String
        var testDescription: String { label }
    }

    /// Parses and verifies `text` as `bad.tir`; the diagnostic's description, or nil if it is valid.
    static func diagnose(_ text: String) -> String? {
        do {
            try Verifier.verify(try Parser.parse(text, file: "bad.tir"))
            return nil
        } catch {
            return error.description
        }
    }

    static let cases: [Case] = [
        Case(label: "unknown op", text: """
            func @f(%x: f32[2] input) -> (y: f32[2]) {
              %y = ngate %x : f32[2]
              return %y
            }
            """, expected: "bad.tir:2:8: error: unknown op 'ngate'"),
        Case(label: "undefined operand", text: """
            func @f(%x: f32[2] input) -> (y: f32[2]) {
              %y = add %x, %z : f32[2]
              return %y
            }
            """, expected: "bad.tir:2:16: error: use of undefined value %z"),
        Case(label: "value defined twice", text: """
            func @f(%x: f32[2] input) -> (y: f32[2]) {
              %y = neg %x : f32[2]
              %y = abs %x : f32[2]
              return %y
            }
            """, expected: "bad.tir:3:3: error: value %y is already defined at bad.tir:2:3"),
        Case(label: "shapes that do not broadcast", text: """
            func @f(%x: f32[2] input, %w: f32[3] input) -> (y: f32[3]) {
              %y = add %x, %w : f32[3]
              return %y
            }
            """, expected: "bad.tir:2:8: error: shapes [2] and [3] do not broadcast"),
        Case(label: "wrong result type", text: """
            func @f(%x: f32[2] input) -> (y: f32[3]) {
              %y = neg %x : f32[3]
              return %y
            }
            """, expected: "bad.tir:2:8: error: 'neg' produces f32[2] but the result is written as f32[3]"),
        Case(label: "unknown element type", text: """
            func @f(%x: f16[2] input) -> (y: f16[2]) {
              return %x
            }
            """, expected: "bad.tir:1:13: error: unknown element type 'f16'; expected f32, f64, i32, i64 or i1"),
        Case(label: "negative dimension", text: """
            func @f(%x: f32[2,-1] input) -> (y: f32[2]) {
              return %x
            }
            """, expected: "bad.tir:1:19: error: dimension -1 is negative"),
        Case(label: "huge dimension", text: """
            func @f(%x: f32[99999999999999999999] input) -> (y: f32[2]) {
              return %x
            }
            """, expected: "bad.tir:1:17: error: integer 99999999999999999999 is out of range"),
        Case(label: "dimension too large behind a zero", text: """
            func @f(%x: f32[0,1099511627777] input) -> (y: f32[2]) {
              return %x
            }
            """, expected: "bad.tir:1:19: error: dimension 1099511627777 is larger than 2^40"),
        Case(label: "too many elements", text: """
            func @f(%x: f32[1048576,1048577] input) -> (y: f32[2]) {
              return %x
            }
            """, expected: "bad.tir:1:13: error: type f32[1048576,1048577] has more than 2^40 elements"),
        Case(label: "missing result type", text: """
            func @f(%x: f32[2] input) -> (y: f32[2]) {
              %y = neg %x
              return %y
            }
            """, expected: "bad.tir:3:3: error: expected ':', found 'return'"),
        Case(label: "unknown role", text: """
            func @f(%x: f32[2] weight) -> (y: f32[2]) {
              return %x
            }
            """, expected: "bad.tir:1:20: error: unknown role 'weight'; expected input, frozen, trainable or state"),
        Case(label: "return count", text: """
            func @f(%x: f32[2] input) -> (y: f32[2], z: f32[2]) {
              return %x
            }
            """, expected: "bad.tir:2:3: error: 'return' gives 1 value but the signature declares 2"),
        Case(label: "returned type differs from the signature", text: """
            func @f(%x: f32[2] input) -> (y: f64[2]) {
              return %x
            }
            """, expected: "bad.tir:2:10: error: result 'y' is declared f64[2] but %x is f32[2]"),
        Case(label: "misspelt attribute", text: """
            func @f(%a: f32[2,3] input, %b: f32[4,3] input) -> (y: f32[2,4]) {
              %y = matmul %a, %b {tranpose_b = true} : f32[2,4]
              return %y
            }
            """, expected: "bad.tir:2:8: error: 'matmul' has no attribute 'tranpose_b' (expected: transpose_a, transpose_b)"),
        Case(label: "missing attribute", text: """
            func @f(%x: f32[2,3] input) -> (y: f32[2,3]) {
              %y = softmax %x : f32[2,3]
              return %y
            }
            """, expected: "bad.tir:2:8: error: missing attribute 'axis'"),
        Case(label: "writing an input", text: """
            func @f(%x: f32[2] input) -> (y: f32[2] writes %x) {
              %y = neg %x : f32[2]
              return %y
            }
            """, expected: "bad.tir:1:31: error: result 'y' writes the input parameter %x; only state and trainable parameters may be written"),
        Case(label: "integer weights", text: """
            func @f(%w: i32[2] trainable) -> (y: i32[2]) {
              %y = neg %w : i32[2]
              return %y
            }
            """, expected: "bad.tir:1:9: error: trainable parameter %w must be a float tensor, got i32[2]"),
        Case(label: "stray character", text: """
            func @f(%x: f32[2] input) -> (y: f32[2]) {
              %y = neg $x : f32[2]
              return %y
            }
            """, expected: "bad.tir:2:12: error: unexpected character '$'"),
        Case(label: "constant of the wrong size", text: """
            func @f() -> (c: f32[3]) {
              %c = constant dense<[1.0, 2.0]> : f32[3]
              return %c
            }
            """, expected: "bad.tir:2:8: error: constant has 2 values but f32[3] has 3 elements"),
        Case(label: "function defined twice", text: """
            func @f() -> (c: f32[]) {
              %c = constant splat<1.0> : f32[]
              return %c
            }
            func @f() -> (c: f32[]) {
              %c = constant splat<2.0> : f32[]
              return %c
            }
            """, expected: "bad.tir:5:1: error: function @f is already defined at bad.tir:1:1"),
        Case(label: "function without results", text: """
            func @f(%x: f32[2] input) -> () {
              return
            }
            """, expected: "bad.tir:1:1: error: function @f returns nothing"),
        Case(label: "truncated file", text: """
            func @f(%x: f32[2] input) -> (y: f32[2]) {
              %y = neg %x : f32[2]
            """, expected: "bad.tir:2:23: error: expected a value name like '%x', found end of file"),
    ]

    @Test(arguments: cases)
    func diagnostic(_ testCase: Case) {
        #expect(Self.diagnose(testCase.text) == testCase.expected)
    }

    @Test func verifierErrorsWithoutLocationsSayError() throws {
        var function = Function(name: "built")
        let x = function.addParameter(named: "x", type: TensorType(.f32, [2]), role: .input)
        function.results = [FunctionResult(name: "y", value: x, writes: x)]
        #expect(throws: Diagnostic("result 'y' writes the input parameter %x; only state and trainable parameters may be written")) {
            try Verifier.verify(Module(functions: [function]))
        }
        #expect(Diagnostic("oops").description == "error: oops")
    }

    @Test func verifierRejectsInvalidParameterTypes() {
        for shape in [[-1], [0, Int.max], [1 << 21, 1 << 20]] {
            var function = Function(name: "built")
            let x = function.addParameter(named: "x", type: TensorType(.f32, shape), role: .input)
            function.results = [FunctionResult(name: "y", value: x)]
            let type = TensorType(.f32, shape)
            #expect(throws: Diagnostic("parameter %x has type \(type), which has a negative dimension or more than 2^40 elements")) {
                try Verifier.verify(Module(functions: [function]))
            }
        }
    }
}
