import Foundation
import GranuleIR
import GranuleInterpreter
import GranuleJIT
import Testing

/// The inline float32 polynomials against libm in double, over their useful range.
@Test("vectorized exp, log, tanh, sigmoid and erf are accurate", arguments: [
    ("exp", -87.0, 88.0),
    ("tanh", -12.0, 12.0),
    ("sigmoid", -30.0, 30.0),
    ("erf", -6.0, 6.0),
    ("log", 1e-30, 1e30),
])
func vectorMathAccuracy(_ op: String, _ low: Double, _ high: Double) throws {
    let count = 20_001
    let module = try Parser.parse("""
        func @f(%x: f32[\(count)] input) -> (y: f32[\(count)]) {
          %y = \(op) %x : f32[\(count)]
          return %y
        }
        """)
    // log is checked on a geometric grid; the others on an even one.
    let xs = (0..<count).map { index -> Double in
        let t = Double(index) / Double(count - 1)
        return Double(Float(op == "log" ? Foundation.exp(Foundation.log(low) + (Foundation.log(high) - Foundation.log(low)) * t) : low + (high - low) * t))
    }
    let result = try JITProgram(module: module, threads: 1).run("f", inputs: ["x": Tensor(TensorType(.f32, [count]), floats: xs)])
    let ys = result[0].tensor.floats
    var worstRelative = 0.0
    var worstAbsolute = 0.0
    for (x, y) in zip(xs, ys) {
        let exact: Double
        switch op {
        case "exp": exact = Foundation.exp(x)
        case "tanh": exact = Foundation.tanh(x)
        case "sigmoid": exact = 1 / (1 + Foundation.exp(-x))
        case "log": exact = Foundation.log(x)
        default: exact = Foundation.erf(x)
        }
        worstAbsolute = max(worstAbsolute, Swift.abs(y - exact))
        worstRelative = max(worstRelative, Swift.abs(y - exact) / max(Swift.abs(exact), Double(Float.leastNormalMagnitude)))
    }
    if op == "exp" {
        // One float32 ulp is 6e-8 to 1.2e-7 of the value: within 1 ulp.
        #expect(worstRelative <= 1.2e-7, "\(op) relative error \(worstRelative)")
    } else if op == "log" {
        #expect(worstRelative <= 3e-7, "\(op) relative error \(worstRelative)")
    } else {
        #expect(worstAbsolute <= (op == "erf" ? 5e-7 : 2.5e-7), "\(op) absolute error \(worstAbsolute)")
    }
}
