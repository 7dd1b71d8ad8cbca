/// The data of a `constant` op: one value repeated (`splat<0.5>`) or every element (`dense<[...]>`).
/// Integer and boolean constants keep exact `Int64`s; float constants keep `Double`s.
public enum ConstantData: Hashable, Sendable {
    case splat(Scalar)
    case dense([Scalar])

    public enum Scalar: Hashable, Sendable, CustomStringConvertible {
        case float(Double)
        case int(Int64)

        public var asDouble: Double {
            switch self {
            case .float(let value): value
            case .int(let value): Double(value)
            }
        }

        public var asInt64: Int64? {
            switch self {
            case .int(let value): value
            case .float(let value): value.rounded() == value && Swift.abs(value) < 9.2e18 ? Int64(value) : nil
            }
        }

        public var description: String {
            switch self {
            case .float(let value): formatFloatLiteral(value)
            case .int(let value): String(value)
            }
        }

        /// The same value stored the way `dtype` stores it.
        public func converted(to dtype: DType) -> Scalar? {
            if dtype.isFloat {
                return .float(dtype == .f32 ? Double(Float(asDouble)) : asDouble)
            }
            guard let int = asInt64 else { return nil }
            switch dtype {
            case .i1: return int == 0 || int == 1 ? .int(int) : nil
            case .i32: return Int64(Int32.min)...Int64(Int32.max) ~= int ? .int(int) : nil
            default: return .int(int)
            }
        }
    }

    public var elementCountIfDense: Int? {
        if case .dense(let values) = self { return values.count }
        return nil
    }

}
