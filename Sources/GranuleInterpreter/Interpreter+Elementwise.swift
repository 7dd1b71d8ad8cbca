import Foundation
import GranuleIR

/// Elementwise ops: unary math, broadcasting binary arithmetic, `compare` and `select`.
extension Interpreter {
    func unary(_ opcode: Opcode, _ x: Tensor, _ attributes: Attributes) throws(Diagnostic) -> Tensor {
        switch x.storage {
        case .float(let values):
            let function = try Interpreter.floatFunction(opcode, attributes)
            return Tensor(x.type, floats: values.map(function))
        case .int(let values):
            let dtype = x.type.dtype
            switch opcode {
            case .neg:
                return Tensor(x.type, ints: values.map { dtype.wrap(0 &- $0) })
            case .abs:
                return Tensor(x.type, ints: values.map { dtype.wrap($0 < 0 ? 0 &- $0 : $0) })
            case .relu:
                return Tensor(x.type, ints: values.map { Swift.max($0, 0) })
            default:
                throw Interpreter.internalError("'\(opcode.name)' has no integer form")
            }
        }
    }

    /// The scalar function of a float unary op.
    static func floatFunction(_ opcode: Opcode, _ attributes: Attributes) throws(Diagnostic) -> (Double) -> Double {
        switch opcode {
        case .neg: return { -$0 }
        case .abs: return { Swift.abs($0) }
        case .exp: return { Foundation.exp($0) }
        case .log: return { Foundation.log($0) }
        case .tanh: return { Foundation.tanh($0) }
        case .sigmoid: return { 1 / (1 + Foundation.exp(-$0)) }
        case .relu: return { $0.isNaN ? $0 : ($0 > 0 ? $0 : 0) }
        case .sqrt: return { $0.squareRoot() }
        case .rsqrt: return { 1 / $0.squareRoot() }
        case .erf: return { Foundation.erf($0) }
        case .pow:
            let exponent = try attributes.float("exponent")
            return { Foundation.pow($0, exponent) }
        case .gelu:
            if try attributes.symbol("approx", oneOf: ["erf", "tanh"]) == "erf" {
                return { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }
            }
            let scale = (2 / Double.pi).squareRoot()
            return { x in 0.5 * x * (1 + Foundation.tanh(scale * (x + 0.044715 * x * x * x))) }
        default:
            throw Interpreter.internalError("'\(opcode.name)' is not a unary op")
        }
    }

    func binary(_ opcode: Opcode, _ a: Tensor, _ b: Tensor, type: TensorType) throws(Diagnostic) -> Tensor {
        let (aShape, bShape, shape) = (a.type.shape, b.type.shape, type.shape)
        switch (a.storage, b.storage) {
        case (.float(let x), .float(let y)):
            let values: [Double]
            switch opcode {
            case .add: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { $0 + $1 }
            case .sub: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { $0 - $1 }
            case .mul: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { $0 * $1 }
            case .div: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { $0 / $1 }
            case .max: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { $0.isNaN ? $0 : $1.isNaN ? $1 : ($0 >= $1 ? $0 : $1) }
            case .min: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { $0.isNaN ? $0 : $1.isNaN ? $1 : ($0 <= $1 ? $0 : $1) }
            default: throw Interpreter.internalError("'\(opcode.name)' is not a binary op")
            }
            return Tensor(type, floats: values)
        case (.int(let x), .int(let y)):
            let dtype = type.dtype
            let values: [Int64]
            switch opcode {
            case .add: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { dtype.wrap($0 &+ $1) }
            case .sub: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { dtype.wrap($0 &- $1) }
            case .mul: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { dtype.wrap($0 &* $1) }
            case .div:
                values = try Interpreter.combine(x, aShape, y, bShape, to: shape) { (p: Int64, q: Int64) throws(Diagnostic) -> Int64 in
                    guard q != 0 else { throw Diagnostic("'div': integer division by zero (\(p) / 0)") }
                    // MIN / -1 overflows; it wraps like the other integer ops.
                    return dtype.wrap(q == -1 ? 0 &- p : p / q)
                }
            case .max: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { Swift.max($0, $1) }
            case .min: values = Interpreter.combine(x, aShape, y, bShape, to: shape) { Swift.min($0, $1) }
            default: throw Interpreter.internalError("'\(opcode.name)' is not a binary op")
            }
            return Tensor(type, ints: values)
        default:
            throw Interpreter.internalError("'\(opcode.name)' operands \(a.type) and \(b.type) differ in kind")
        }
    }

    func compare(_ a: Tensor, _ b: Tensor, predicate: String, type: TensorType) throws(Diagnostic) -> Tensor {
        let (aShape, bShape, shape) = (a.type.shape, b.type.shape, type.shape)
        switch (a.storage, b.storage) {
        case (.float(let x), .float(let y)):
            let test: (Double, Double) -> Bool = try Interpreter.predicate(predicate)
            return Tensor(type, ints: Interpreter.combine(x, aShape, y, bShape, to: shape) { test($0, $1) ? 1 : 0 })
        case (.int(let x), .int(let y)):
            let test: (Int64, Int64) -> Bool = try Interpreter.predicate(predicate)
            return Tensor(type, ints: Interpreter.combine(x, aShape, y, bShape, to: shape) { test($0, $1) ? 1 : 0 })
        default:
            throw Interpreter.internalError("'compare' operands \(a.type) and \(b.type) differ in kind")
        }
    }

    /// IEEE comparisons for floats: every predicate but `ne` is false when a NaN is involved.
    static func predicate<T: Comparable>(_ name: String) throws(Diagnostic) -> (T, T) -> Bool {
        switch name {
        case "eq": return { $0 == $1 }
        case "ne": return { $0 != $1 }
        case "lt": return { $0 < $1 }
        case "le": return { $0 <= $1 }
        case "gt": return { $0 > $1 }
        case "ge": return { $0 >= $1 }
        default: throw Diagnostic("unknown 'compare' predicate '\(name)'")
        }
    }

    func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor, type: TensorType) throws(Diagnostic) -> Tensor {
        let shape = type.shape
        let c = try condition.intValues()
        let ci = Indexing.broadcastOffsets(from: condition.type.shape, to: shape)
        let ai = Indexing.broadcastOffsets(from: a.type.shape, to: shape)
        let bi = Indexing.broadcastOffsets(from: b.type.shape, to: shape)
        func choose<T>(_ x: [T], _ y: [T]) -> [T] {
            (0..<Indexing.count(shape)).map { i in c[ci?[i] ?? i] != 0 ? x[ai?[i] ?? i] : y[bi?[i] ?? i] }
        }
        switch (a.storage, b.storage) {
        case (.float(let x), .float(let y)): return Tensor(type, floats: choose(x, y))
        case (.int(let x), .int(let y)): return Tensor(type, ints: choose(x, y))
        default: throw Interpreter.internalError("'select' branches \(a.type) and \(b.type) differ in kind")
        }
    }

    /// `f` applied to the elements of `x` and `y` broadcast together to `shape`, in row-major order.
    static func combine<A, B, R, E: Error>(
        _ x: [A], _ xShape: [Int], _ y: [B], _ yShape: [Int], to shape: [Int], _ f: (A, B) throws(E) -> R
    ) throws(E) -> [R] {
        let count = Indexing.count(shape)
        var result: [R] = []
        result.reserveCapacity(count)
        if xShape == shape, yShape == shape {
            for i in 0..<count { result.append(try f(x[i], y[i])) }
            return result
        }
        let xi = Indexing.broadcastOffsets(from: xShape, to: shape)
        let yi = Indexing.broadcastOffsets(from: yShape, to: shape)
        for i in 0..<count { result.append(try f(x[xi?[i] ?? i], y[yi?[i] ?? i])) }
        return result
    }
}
