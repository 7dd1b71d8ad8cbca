/// Element types of IR tensors.
public enum DType: String, Sendable, CaseIterable, Hashable {
    case f32, f64, i32, i64, i1

    public var isFloat: Bool { self == .f32 || self == .f64 }
    public var isInteger: Bool { self == .i32 || self == .i64 }
    public var isBool: Bool { self == .i1 }

    /// Bytes per element in memory and in safetensors files.
    public var byteSize: Int {
        switch self {
        case .f32, .i32: 4
        case .f64, .i64: 8
        case .i1: 1
        }
    }
}
