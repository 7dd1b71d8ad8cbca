/// A statically shaped tensor type, written `f32[4,56,768]`; a scalar is `f32[]`.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Int]

    /// The largest element count a type may have: keeps every size computation far from overflow.
    public static let maxElementCount = 1 << 40

    public init(_ dtype: DType, _ shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
    }

    public static func scalar(_ dtype: DType) -> TensorType { TensorType(dtype, []) }

    public var rank: Int { shape.count }

    /// Product of the dimensions; nil if a dimension is negative or the product of the non-zero
    /// dimensions exceeds `maxElementCount` (so no permutation of a valid shape can overflow).
    public var checkedElementCount: Int? {
        var bounded = 1
        var hasZero = false
        for dim in shape {
            guard dim >= 0 else { return nil }
            if dim == 0 {
                hasZero = true
                continue
            }
            let (product, overflow) = bounded.multipliedReportingOverflow(by: dim)
            guard !overflow, product <= TensorType.maxElementCount else { return nil }
            bounded = product
        }
        return hasZero ? 0 : bounded
    }

    /// Product of the dimensions of a verified type.
    public var elementCount: Int { shape.reduce(1, *) }

    public func with(shape: [Int]) -> TensorType { TensorType(dtype, shape) }
    public func with(dtype: DType) -> TensorType { TensorType(dtype, shape) }

    public var description: String {
        "\(dtype.rawValue)[\(shape.map(String.init).joined(separator: ","))]"
    }
}

/// Row-major strides of a shape.
public func rowMajorStrides(_ shape: [Int]) -> [Int] {
    var strides = Array(repeating: 1, count: shape.count)
    var running = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[axis] = running
        running *= shape[axis]
    }
    return strides
}

/// Numpy-style broadcast of two shapes (right-aligned; a dimension of 1 stretches), or nil.
public func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var result = Array(repeating: 0, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if da == db || db == 1 {
            result[i] = da
        } else if da == 1 {
            result[i] = db
        } else {
            return nil
        }
    }
    return result
}
