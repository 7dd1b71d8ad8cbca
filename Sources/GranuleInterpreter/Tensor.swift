import GranuleIR

/// A tensor value: its type and its elements in row-major order.
///
/// Floats are kept as `Double` whatever their dtype, so one set of kernels serves f32 and f64: the
/// interpreter rounds f32 results to `Float` in `.float32` mode, and keeps full precision in
/// `.float64` mode (where an f32 tensor may hold any `Double`). Integers and booleans are kept as
/// `Int64` (i1 as 0/1), which holds every value of every integer dtype exactly.
public struct Tensor: Hashable, Sendable {
    public var type: TensorType
    public var storage: Storage

    /// The elements, in the representation their dtype uses.
    public enum Storage: Hashable, Sendable {
        case float([Double])
        case int([Int64])

        public var count: Int {
            switch self {
            case .float(let values): values.count
            case .int(let values): values.count
            }
        }
    }

    /// A float tensor. The element count must match the type (misuse is a programming error).
    public init(_ type: TensorType, floats: [Double]) {
        precondition(type.dtype.isFloat, "Tensor(floats:) needs a float dtype, got \(type)")
        precondition(type.checkedElementCount == floats.count, "\(floats.count) values for \(type)")
        self.type = type
        self.storage = .float(floats)
    }

    /// An integer or i1 tensor. The element count must match the type (misuse is a programming error).
    public init(_ type: TensorType, ints: [Int64]) {
        precondition(!type.dtype.isFloat, "Tensor(ints:) needs an integer or i1 dtype, got \(type)")
        precondition(type.checkedElementCount == ints.count, "\(ints.count) values for \(type)")
        self.type = type
        self.storage = .int(ints)
    }

    /// A tensor from ready-made storage whose kind and count match `type` (misuse is a programming error).
    public init(_ type: TensorType, storage: Storage) {
        switch storage {
        case .float(let values): self.init(type, floats: values)
        case .int(let values): self.init(type, ints: values)
        }
    }

    /// All elements zero (false for i1).
    public static func zeros(_ type: TensorType) -> Tensor {
        guard let count = type.checkedElementCount else { preconditionFailure("invalid type \(type)") }
        return type.dtype.isFloat
            ? Tensor(type, floats: Array(repeating: 0, count: count))
            : Tensor(type, ints: Array(repeating: 0, count: count))
    }

    /// A rank-0 tensor. For f32 the value is rounded to `Float`; for integer dtypes it must be
    /// integral and in range; for i1 any non-zero value is true.
    public static func scalar(_ value: Double, _ dtype: DType = .f32) -> Tensor {
        let type = TensorType.scalar(dtype)
        switch dtype {
        case .f32: return Tensor(type, floats: [Double(Float(value))])
        case .f64: return Tensor(type, floats: [value])
        case .i1: return Tensor(type, ints: [value != 0 ? 1 : 0])
        case .i32, .i64:
            guard let int = Int64(exactly: value), dtype == .i64 || Int32(exactly: int) != nil else {
                preconditionFailure("\(value) is not a valid \(dtype) value")
            }
            return Tensor(type, ints: [int])
        }
    }

    /// The elements as `Double`s (integers converted): a convenience view for tests and tools.
    public var floats: [Double] {
        switch storage {
        case .float(let values): values
        case .int(let values): values.map(Double.init)
        }
    }

    /// The elements as `Int64`s; floats are truncated toward zero, saturate at the `Int64` bounds,
    /// and NaN becomes 0: a convenience view for tests and tools that never traps.
    public var ints: [Int64] {
        switch storage {
        case .int(let values):
            return values
        case .float(let values):
            return values.map { value in
                if value.isNaN { return 0 }
                if value >= 9.223372036854775807e18 { return .max }
                if value <= -9.223372036854775808e18 { return .min }
                return Int64(value.rounded(.towardZero))
            }
        }
    }

    public var elementCount: Int { storage.count }

    /// Why this tensor is not a well-formed value of its own type, or nil if it is: the storage kind
    /// must match the dtype, the count the shape, i1 elements must be 0/1 and i32 elements in range.
    /// Tensors from outside (interpreter inputs, safetensors writes) are checked with this because
    /// `type` and `storage` are public and can be set independently.
    public var inconsistency: String? {
        guard let expected = type.checkedElementCount else {
            return "type \(type) has a negative dimension or too many elements"
        }
        switch storage {
        case .float(let values):
            guard type.dtype.isFloat else { return "holds floats but its type is \(type)" }
            guard values.count == expected else { return "has \(values.count) elements but \(type) has \(expected)" }
        case .int(let values):
            guard !type.dtype.isFloat else { return "holds integers but its type is \(type)" }
            guard values.count == expected else { return "has \(values.count) elements but \(type) has \(expected)" }
            if type.dtype == .i1, let index = values.firstIndex(where: { $0 != 0 && $0 != 1 }) {
                return "i1 element \(index) is \(values[index]), not 0 or 1"
            }
            if type.dtype == .i32, let index = values.firstIndex(where: { Int32(exactly: $0) == nil }) {
                return "i32 element \(index) is \(values[index]), outside the i32 range"
            }
        }
        return nil
    }
}
