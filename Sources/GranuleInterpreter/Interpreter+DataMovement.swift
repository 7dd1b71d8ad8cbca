import GranuleIR

/// Ops that move elements without arithmetic: `transpose`, `slice`, `pad`, `concat`,
/// `broadcast_to`, `gather`, plus `scatter_add` (gather's adjoint). `reshape` needs no kernel: the
/// row-major element order is unchanged.
extension Interpreter {
    /// `result[i_0, ..., i_{r-1}] = x[j]` where `j[perm[k]] = i_k`: result axis k reads x axis perm[k].
    func transpose(_ x: Tensor, perm: [Int], type: TensorType) -> Tensor {
        let strides = rowMajorStrides(x.type.shape)
        let offsets = Indexing.offsets(shape: type.shape, strides: perm.map { strides[$0] })
        return Tensor(type, storage: x.storage.gathered(offsets))
    }

    /// The box `[start, limit)` with stride 1 (the limits are implied by the result type).
    func slice(_ x: Tensor, start: [Int], type: TensorType) -> Tensor {
        let strides = rowMajorStrides(x.type.shape)
        let base = zip(start, strides).reduce(0) { $0 + $1.0 * $1.1 }
        return Tensor(type, storage: x.storage.gathered(Indexing.offsets(shape: type.shape, strides: strides, offset: base)))
    }

    /// `x` surrounded by `low` zeros before and `high` zeros after each axis (`high` is implied by the type).
    func pad(_ x: Tensor, low: [Int], type: TensorType) -> Tensor {
        let strides = rowMajorStrides(type.shape)
        let base = zip(low, strides).reduce(0) { $0 + $1.0 * $1.1 }
        let positions = Indexing.offsets(shape: x.type.shape, strides: strides, offset: base)
        func place<T>(_ values: [T], zero: T) -> [T] {
            var result = [T](repeating: zero, count: type.elementCount)
            for (i, position) in positions.enumerated() { result[position] = values[i] }
            return result
        }
        switch x.storage {
        case .float(let values): return Tensor(type, floats: place(values, zero: 0))
        case .int(let values): return Tensor(type, ints: place(values, zero: 0))
        }
    }

    /// Operands joined along `axis`: for each index of the axes before it, each operand's
    /// contiguous chunk in turn.
    func concat(_ operands: [Tensor], axis: Int, type: TensorType) throws(Diagnostic) -> Tensor {
        let (outer, _, inner) = Indexing.split(type.shape, at: axis)
        func join<T>(_ parts: [[T]]) -> [T] {
            var result: [T] = []
            result.reserveCapacity(type.elementCount)
            for o in 0..<outer {
                for (part, operand) in zip(parts, operands) {
                    let chunk = operand.type.shape[axis] * inner
                    result += part[(o * chunk)..<((o + 1) * chunk)]
                }
            }
            return result
        }
        if type.dtype.isFloat {
            var parts: [[Double]] = []
            for operand in operands { parts.append(try operand.floatValues()) }
            return Tensor(type, floats: join(parts))
        }
        var parts: [[Int64]] = []
        for operand in operands { parts.append(try operand.intValues()) }
        return Tensor(type, ints: join(parts))
    }

    /// `x` stretched to `type` by numpy broadcasting.
    func broadcast(_ x: Tensor, to type: TensorType) -> Tensor {
        guard let offsets = Indexing.broadcastOffsets(from: x.type.shape, to: type.shape) else { return x }
        return Tensor(type, storage: x.storage.gathered(offsets))
    }

    /// `result[i..., j...] = table[indices[i...], j...]`: rows of the table picked by the indices.
    func gather(_ table: Tensor, _ indices: Tensor, type: TensorType) throws(Diagnostic) -> Tensor {
        let rows = try checkedRows(indices, tableRows: table.type.shape[0], op: "gather")
        let inner = Indexing.count(Array(table.type.shape.dropFirst()))
        var offsets: [Int] = []
        offsets.reserveCapacity(type.elementCount)
        for row in rows {
            for j in 0..<inner { offsets.append(row * inner + j) }
        }
        return Tensor(type, storage: table.storage.gathered(offsets))
    }

    /// `result = target; result[indices[i...], j...] += updates[i..., j...]`, visiting `i` in
    /// row-major order (the order matters for float rounding when indices repeat).
    func scatterAdd(_ target: Tensor, _ indices: Tensor, _ updates: Tensor) throws(Diagnostic) -> Tensor {
        let rows = try checkedRows(indices, tableRows: target.type.shape[0], op: "scatter_add")
        let inner = Indexing.count(Array(target.type.shape.dropFirst()))
        switch (target.storage, updates.storage) {
        case (.float(var result), .float(let values)):
            for (p, row) in rows.enumerated() {
                for j in 0..<inner { result[row * inner + j] += values[p * inner + j] }
            }
            return Tensor(target.type, floats: result)
        case (.int(var result), .int(let values)):
            let dtype = target.type.dtype
            for (p, row) in rows.enumerated() {
                for j in 0..<inner {
                    let (slot, update) = (row * inner + j, values[p * inner + j])
                    result[slot] = dtype.wrap(result[slot] &+ update)
                }
            }
            return Tensor(target.type, ints: result)
        default:
            throw Interpreter.internalError("'scatter_add' operands \(target.type) and \(updates.type) differ in kind")
        }
    }

    /// The indices as table rows, each checked to be in `[0, tableRows)`.
    private func checkedRows(_ indices: Tensor, tableRows: Int, op: String) throws(Diagnostic) -> [Int] {
        let values = try indices.intValues()
        var rows: [Int] = []
        rows.reserveCapacity(values.count)
        for (position, value) in values.enumerated() {
            guard value >= 0, value < Int64(tableRows) else {
                let at = Indexing.multiIndex(position, in: indices.type.shape).map(String.init).joined(separator: ", ")
                throw Diagnostic("'\(op)' index \(value) at indices[\(at)] is out of range [0, \(tableRows))")
            }
            rows.append(Int(value))
        }
        return rows
    }
}

extension Indexing {
    /// The multi-index of flat row-major position `flat` in `shape` (for error messages).
    static func multiIndex(_ flat: Int, in shape: [Int]) -> [Int] {
        var rest = flat
        var index = [Int](repeating: 0, count: shape.count)
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] > 0 {
            index[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return index
    }
}
