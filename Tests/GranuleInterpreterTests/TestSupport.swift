import GranuleIR
import Testing

@testable import GranuleInterpreter

/// Shared helpers: build functions from IR text, make tensors, compare floats with NaN awareness.

/// The first function of `text`, parsed and verified.
func parseFunction(_ text: String) throws -> Function {
    let module = try Parser.parse(text)
    try Verifier.verify(module)
    guard let function = module.functions.first else { throw Diagnostic("no function in test IR") }
    return function
}

/// Runs the first function of `text` and returns its result tensors in signature order.
func run(_ text: String, _ inputs: [String: Tensor] = [:], precision: Interpreter.Precision = .float32) throws -> [Tensor] {
    try Interpreter(precision: precision).run(parseFunction(text), inputs: inputs).map(\.tensor)
}

/// Runs a one-result function and returns that result.
func runOne(_ text: String, _ inputs: [String: Tensor] = [:], precision: Interpreter.Precision = .float32) throws -> Tensor {
    let results = try run(text, inputs, precision: precision)
    guard let first = results.first else { throw Diagnostic("no results") }
    return first
}

/// The diagnostic `body` throws, or nil (recording a failure) if it throws none or another error.
func diagnostic(_ body: () throws -> Void, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> Diagnostic? {
    do {
        try body()
        Issue.record("expected a Diagnostic, but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as Diagnostic {
        return error
    } catch {
        Issue.record("expected a Diagnostic, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

func f32(_ shape: [Int], _ values: [Double]) -> Tensor { Tensor(TensorType(.f32, shape), floats: values) }
func f64(_ shape: [Int], _ values: [Double]) -> Tensor { Tensor(TensorType(.f64, shape), floats: values) }
func i64(_ shape: [Int], _ values: [Int64]) -> Tensor { Tensor(TensorType(.i64, shape), ints: values) }
func i32(_ shape: [Int], _ values: [Int64]) -> Tensor { Tensor(TensorType(.i32, shape), ints: values) }
func i1(_ shape: [Int], _ values: [Int64]) -> Tensor { Tensor(TensorType(.i1, shape), ints: values) }

/// Expects equal counts and each pair equal within `tolerance` (relative to max(1, |expected|)),
/// with NaN matching NaN and infinities matching exactly.
func expectClose(
    _ actual: [Double], _ expected: [Double], tolerance: Double = 1e-12,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    guard actual.count == expected.count else {
        Issue.record("got \(actual.count) values \(actual), expected \(expected.count) \(expected)", sourceLocation: sourceLocation)
        return
    }
    for (index, (a, e)) in zip(actual, expected).enumerated() {
        let ok: Bool
        if e.isNaN {
            ok = a.isNaN
        } else if e.isInfinite {
            ok = a == e
        } else {
            ok = Swift.abs(a - e) <= tolerance * Swift.max(1, Swift.abs(e))
        }
        if !ok {
            Issue.record("element \(index): got \(a), expected \(e) (all: \(actual))", sourceLocation: sourceLocation)
            return
        }
    }
}

/// Expects a tensor of exactly `type` whose elements are close to `expected`.
func expectTensor(
    _ tensor: Tensor, _ type: TensorType, _ expected: [Double], tolerance: Double = 1e-12,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    #expect(tensor.type == type, sourceLocation: sourceLocation)
    expectClose(tensor.floats, expected, tolerance: tolerance, sourceLocation: sourceLocation)
}

/// Expects an integer tensor of exactly `type` with exactly `expected` elements.
func expectInts(
    _ tensor: Tensor, _ type: TensorType, _ expected: [Int64], sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    #expect(tensor.type == type, sourceLocation: sourceLocation)
    #expect(tensor.storage == .int(expected), sourceLocation: sourceLocation)
}

/// `Double(Float(x))`: what f32 arithmetic gives.
func single(_ x: Double) -> Double { Double(Float(x)) }

/// A one-op function of one f32 input `%x` with `type`, producing `%y` of `resultType`.
func unaryIR(_ op: String, _ type: String, result resultType: String? = nil) -> String {
    """
    func @f(%x: \(type) input) -> (y: \(resultType ?? type)) {
      %y = \(op) : \(resultType ?? type)
      return %y
    }
    """
}
