import GranuleIR

/// Where a materialized value's buffer lives when a compiled function runs.
enum BufferLocation: Equatable {
    /// The caller's argument `index` (a parameter).
    case parameter(Int)
    /// The caller's result buffer `index`: values returned by the function are computed in place.
    case result(Int)
    /// Bytes `[offset, offset + size)` of the arena.
    case arena(offset: Int)
}

/// Memory planning: every intermediate buffer gets an offset in one arena, reusing space whose
/// value is dead.
///
/// Algorithm: (1) for each buffer, the step that writes it and the last step that reads it (reads
/// through views and fused expressions count); (2) walking the steps in order, allocate each
/// written buffer first-fit among the free ranges (64-byte aligned), then free the buffers whose
/// last read was this step. Buffers are freed only after the step's outputs are placed, so a
/// kernel never writes over a live input — except in place: an elementwise kernel takes over the
/// buffer of an input whose last read it is when every read of that buffer is at the output's own
/// index (same shape, dense), so each element is read before it is overwritten. Returned values
/// live in the caller's result buffers; parameters in its arguments.
struct MemoryPlan {
    private(set) var locations: [Value: BufferLocation] = [:]
    private(set) var arenaBytes = 0
    /// Elementwise outputs written over an input's buffer: output → that input.
    private(set) var inPlaceDonors: [Value: Value] = [:]
    /// Buffers read by each step (for liveness, and for the IR dump).
    private(set) var reads: [[Value]] = []

    static let alignment = 64

    init(_ schedule: Schedule) {
        let function = schedule.function
        for (index, parameter) in function.parameters.enumerated() { locations[parameter.value] = .parameter(index) }
        for (index, result) in function.results.enumerated()
        where locations[result.value] == nil && function.parameter(for: result.value) == nil {
            locations[result.value] = .result(index)
        }

        var lastRead: [Value: Int] = [:]
        var written: [(step: Int, value: Value)] = []
        for (index, step) in schedule.steps.enumerated() {
            let buffers = MemoryPlan.buffersRead(by: step, schedule)
            reads.append(buffers)
            for buffer in buffers { lastRead[buffer] = index }
            switch step {
            case .elementwise(let root, _): written.append((index, root))
            case .elementwiseNorm(let root, _, let norm, _):
                written.append((index, root))
                written.append((index, function.operations[norm].result))
            case .copy(_, let target): written.append((index, target))
            case .op(let opIndex, _, _): written.append((index, function.operations[opIndex].result))
            case .gemm(_, _, let output, _): written.append((index, output))
            case .copyToResult: break
            }
        }

        var free: [(offset: Int, size: Int)] = []
        var live: [Value: (offset: Int, size: Int)] = [:]
        var top = 0
        for (index, step) in schedule.steps.enumerated() {
            for (_, value) in written.filter({ $0.step == index }) where locations[value] == nil {
                if case .elementwise(_, let leaves) = step,
                    let donor = MemoryPlan.inPlaceDonor(for: value, leaves: leaves, function, step: index, lastRead: lastRead, live: live)
                {
                    locations[value] = locations[donor]
                    inPlaceDonors[value] = donor
                    live[value] = live[donor]
                    live[donor] = nil
                    if lastRead[value] == nil { lastRead[value] = index }
                    continue
                }
                let size = MemoryPlan.aligned(function.type(of: value).elementCount * function.type(of: value).dtype.byteSize)
                var offset: Int
                if let slot = free.firstIndex(where: { $0.size >= size }) {
                    offset = free[slot].offset
                    free[slot].offset += size
                    free[slot].size -= size
                    if free[slot].size == 0 { free.remove(at: slot) }
                } else {
                    offset = top
                    top += size
                }
                locations[value] = .arena(offset: offset)
                live[value] = (offset, size)
                if lastRead[value] == nil { lastRead[value] = index }  // written but never read
            }
            for (value, range) in live where lastRead[value] == index {
                live[value] = nil
                free.append(range)
            }
            free = MemoryPlan.coalesce(free)
        }
        arenaBytes = top
    }

    /// An arena buffer read for the last time by this elementwise step, only at the output's own
    /// index, and as large as the output: the output can overwrite it.
    private static func inPlaceDonor(
        for output: Value, leaves: [Value: Leaf], _ function: Function, step: Int, lastRead: [Value: Int],
        live: [Value: (offset: Int, size: Int)]
    ) -> Value? {
        let type = function.type(of: output)
        let identical = Layout(buffer: output, offset: 0, strides: rowMajorStrides(type.shape))
        var exact: Set<Value> = []
        var other: Set<Value> = []
        func collect(_ leaf: Leaf, sameShape: Bool) {
            switch leaf {
            case .strided(let layout):
                let isIdentical = sameShape && layout.offset == 0 && layout.strides == identical.strides
                if isIdentical { exact.insert(layout.buffer) } else { other.insert(layout.buffer) }
            case .padded(let inner, _, _):
                collect(inner, sameShape: false)
            case .concatenated(_, let pieces, _, _):
                pieces.forEach { collect($0, sameShape: false) }
            }
        }
        for (value, leaf) in leaves {
            collect(leaf, sameShape: function.type(of: value).shape == type.shape)
        }
        for buffer in exact.subtracting(other).sorted() {
            guard lastRead[buffer] == step, let range = live[buffer], function.type(of: buffer).dtype == type.dtype,
                range.size >= aligned(type.elementCount * type.dtype.byteSize)
            else { continue }
            return buffer
        }
        return nil
    }

    static func aligned(_ bytes: Int) -> Int { max(alignment, (bytes + alignment - 1) / alignment * alignment) }

    private static func coalesce(_ ranges: [(offset: Int, size: Int)]) -> [(offset: Int, size: Int)] {
        var merged: [(offset: Int, size: Int)] = []
        for range in ranges.sorted(by: { $0.offset < $1.offset }) {
            if let last = merged.last, last.offset + last.size == range.offset {
                merged[merged.count - 1].size += range.size
            } else {
                merged.append(range)
            }
        }
        return merged
    }

    /// The materialized buffers a step reads.
    static func buffersRead(by step: Step, _ schedule: Schedule) -> [Value] {
        var result: [Value] = []
        func addLeaf(_ leaf: Leaf) {
            switch leaf {
            case .strided(let layout): result.append(layout.buffer)
            case .padded(let inner, _, _): addLeaf(inner)
            case .concatenated(_, let pieces, _, _): pieces.forEach(addLeaf)
            }
        }
        switch step {
        case .elementwise(_, let leaves):
            leaves.values.forEach(addLeaf)
        case .elementwiseNorm(_, let leaves, _, let weights):
            leaves.values.forEach(addLeaf)
            result += weights
        case .copy(let source, _), .copyToResult(let source, _):
            addLeaf(source)
        case .op(_, let operands, let leaves):
            result += operands
            leaves.values.forEach(addLeaf)
        case .gemm(_, let operands, let output, let accumulate):
            result += operands
            if accumulate { result.append(output) }
        }
        return Array(Set(result)).sorted()
    }
}
