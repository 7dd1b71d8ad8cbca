import GranuleIR

/// Ops that create values or change their dtype: `iota`, `constant`, `cast`.
extension Interpreter {
    /// Each element is its index along `axis`.
    func iota(axis: Int, type: TensorType) -> Tensor {
        let (_, size, inner) = Indexing.split(type.shape, at: axis)
        let positions = (0..<type.elementCount).map { ($0 / inner) % size }
        if type.dtype.isFloat { return Tensor(type, floats: positions.map(Double.init)) }
        return Tensor(type, ints: positions.map { type.dtype.wrap(Int64($0)) })
    }

    /// The constant's data in the declared dtype. In `.float64` mode f32 data is not rounded.
    func constant(_ data: ConstantData?, type: TensorType) throws(Diagnostic) -> Tensor {
        guard let data else { throw Interpreter.internalError("'constant' has no data") }
        let storedAs: DType = precision == .float64 && type.dtype == .f32 ? .f64 : type.dtype
        func convert(_ scalar: ConstantData.Scalar) throws(Diagnostic) -> ConstantData.Scalar {
            guard let converted = scalar.converted(to: storedAs) else {
                throw Diagnostic("\(scalar) is not a valid \(type.dtype) value")
            }
            return converted
        }
        let scalars: [ConstantData.Scalar]
        switch data {
        case .splat(let scalar):
            scalars = Array(repeating: try convert(scalar), count: type.elementCount)
        case .dense(let values):
            guard values.count == type.elementCount else {
                throw Diagnostic("constant has \(values.count) values but \(type) has \(type.elementCount) elements")
            }
            var converted: [ConstantData.Scalar] = []
            converted.reserveCapacity(values.count)
            for value in values { converted.append(try convert(value)) }
            scalars = converted
        }
        if type.dtype.isFloat { return Tensor(type, floats: scalars.map(\.asDouble)) }
        return Tensor(type, ints: scalars.map { $0.asInt64 ?? 0 })
    }

    /// Conversions: float→float rounds (to `Float` for f32 in `.float32` mode); float→integer
    /// truncates toward zero and fails on NaN or out-of-range values; integer→integer wraps to the
    /// target width; anything→i1 is `x != 0`; i1→number is 0/1.
    func cast(_ x: Tensor, to type: TensorType) throws(Diagnostic) -> Tensor {
        let target = type.dtype
        switch x.storage {
        case .float(let values):
            if target.isFloat { return Tensor(type, floats: values) }
            if target == .i1 { return Tensor(type, ints: values.map { $0 != 0 ? 1 : 0 }) }
            // The open upper bounds are 2^63 and 2^31, exactly representable as Double.
            let (low, high): (Double, Double) = target == .i32 ? (-2_147_483_648, 2_147_483_648) : (-9_223_372_036_854_775_808, 9_223_372_036_854_775_808)
            var result: [Int64] = []
            result.reserveCapacity(values.count)
            for (index, value) in values.enumerated() {
                let truncated = value.rounded(.towardZero)
                guard truncated >= low, truncated < high else {
                    let at = Indexing.multiIndex(index, in: type.shape).map(String.init).joined(separator: ", ")
                    throw Diagnostic("'cast' of \(formatFloatLiteral(value)) at [\(at)] to \(target) is \(value.isNaN ? "undefined" : "out of range")")
                }
                result.append(Int64(truncated))
            }
            return Tensor(type, ints: result)
        case .int(let values):
            if target == .f32, precision == .float32 { return Tensor(type, floats: values.map { Double(Float($0)) }) }
            if target.isFloat { return Tensor(type, floats: values.map(Double.init)) }
            if target == .i1 { return Tensor(type, ints: values.map { $0 != 0 ? 1 : 0 }) }
            return Tensor(type, ints: values.map(target.wrap))
        }
    }
}
