import GranuleIR

/// Index arithmetic shared by the kernels. Most data movement (broadcasting, transposes, slices,
/// reduction bookkeeping) is "walk an output shape in row-major order and read the input at
/// `offset + Σ index[k]·stride[k]`"; computing those flat offsets once keeps every kernel a plain
/// loop over flat arrays.
enum Indexing {
    /// Product of the dimensions (1 for a scalar).
    static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// For each element of `shape` in row-major order, `offset + Σ index[k]·strides[k]`.
    static func offsets(shape: [Int], strides: [Int], offset: Int = 0) -> [Int] {
        let total = count(shape)
        guard total > 0 else { return [] }
        let rank = shape.count
        guard rank > 0 else { return [offset] }
        var result = [Int](repeating: 0, count: total)
        var index = [Int](repeating: 0, count: rank)
        let innerSize = shape[rank - 1]
        let innerStride = strides[rank - 1]
        var base = offset
        var position = 0
        result.withUnsafeMutableBufferPointer { out in
            while position < total {
                var current = base
                for _ in 0..<innerSize {
                    out[position] = current
                    current += innerStride
                    position += 1
                }
                // Advance the odometer over the outer axes.
                var axis = rank - 2
                while axis >= 0 {
                    index[axis] += 1
                    base += strides[axis]
                    if index[axis] < shape[axis] { break }
                    base -= strides[axis] * shape[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
        return result
    }

    /// Strides that read a tensor of `shape` as if it had the broadcast shape `target` (numpy
    /// rules: right-aligned, missing and size-1 axes get stride 0).
    static func broadcastStrides(from shape: [Int], to target: [Int]) -> [Int] {
        let own = rowMajorStrides(shape)
        let lead = target.count - shape.count
        return (0..<target.count).map { axis in
            axis < lead || shape[axis - lead] == 1 ? 0 : own[axis - lead]
        }
    }

    /// For each element of `target`, the flat index of the element of `shape` that broadcasts to it;
    /// nil when the shapes are equal (the identity).
    static func broadcastOffsets(from shape: [Int], to target: [Int]) -> [Int]? {
        shape == target ? nil : offsets(shape: target, strides: broadcastStrides(from: shape, to: target))
    }

    /// Sizes of the axes before `axis`, at `axis`, and after it: a tensor viewed as
    /// `[outer, size, inner]`, the layout of every kernel that works along one axis.
    static func split(_ shape: [Int], at axis: Int) -> (outer: Int, size: Int, inner: Int) {
        (count(Array(shape[..<axis])), shape[axis], count(Array(shape[(axis + 1)...])))
    }
}

extension Tensor.Storage {
    /// The elements at `offsets`, in order.
    func gathered(_ offsets: [Int]) -> Tensor.Storage {
        switch self {
        case .float(let values): .float(values.withUnsafeBufferPointer { v in offsets.map { v[$0] } })
        case .int(let values): .int(values.withUnsafeBufferPointer { v in offsets.map { v[$0] } })
        }
    }
}

extension Tensor {
    /// The float elements of a tensor that the verifier typed as float.
    func floatValues() throws(Diagnostic) -> [Double] {
        guard case .float(let values) = storage else { throw Interpreter.internalError("expected float storage for \(type)") }
        return values
    }

    /// The integer elements of a tensor that the verifier typed as integer or i1.
    func intValues() throws(Diagnostic) -> [Int64] {
        guard case .int(let values) = storage else { throw Interpreter.internalError("expected integer storage for \(type)") }
        return values
    }
}

extension DType {
    /// `value` wrapped to this integer dtype's width (two's complement), as compiled code computes it.
    @inline(__always)
    func wrap(_ value: Int64) -> Int64 {
        switch self {
        case .i32: Int64(Int32(truncatingIfNeeded: value))
        case .i1: value & 1
        default: value
        }
    }
}
