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

/// Memory planning: every intermediate buffer gets an offset in one arena, sharing space with
/// buffers whose lifetimes do not overlap.
///
/// Algorithm: (1) for each buffer, the step that writes it and the last step that reads it (reads
/// through views and fused expressions count); (2) a walk over the steps decides which outputs are
/// computed in place: an elementwise kernel takes over the buffer of an input whose last read it
/// is when every read of that buffer is at the output's own index (same shape, dense), so each
/// element is read before it is overwritten; a `cross_entropy_grad` takes over its logits' buffer
/// and a `scatter_add` its target's (see `nonElementwiseDonor`); (3) offsets, greedy by size: the
/// largest buffer first, each at the lowest offset clear of every placed buffer live at any of its
/// steps (64-byte aligned), so a kernel never writes over a live input except in place. Returned
/// values live in the caller's result buffers; parameters in its arguments.
///
/// Not done: rematerialization (recomputing cheap activations in the backward pass instead of
/// keeping them), which would lower the live peak itself.
struct MemoryPlan {
    private(set) var locations: [Value: BufferLocation] = [:]
    private(set) var arenaBytes = 0
    /// Outputs written over an input's buffer (elementwise in place, the loss gradient over the
    /// logits): output → that input.
    private(set) var inPlaceDonors: [Value: Value] = [:]
    /// Results that may be computed in the buffer of the parameter they write (`writes`), by index:
    /// see `resultsInPlace`. The manifest marks them `in_place`; a caller that binds such a
    /// result's buffer to its parameter's (the training loop) needs no second copy of the
    /// trainable parameters and optimizer moments, and no copy back after each step.
    private(set) var inPlaceResults: Set<Int> = []
    /// Buffers read by each step (for liveness, and for the IR dump).
    private(set) var reads: [[Value]] = []
    /// Each arena buffer's steps, from the one that writes it to the last that reads it.
    private(set) var lifetimes: [Value: ClosedRange<Int>] = [:]

    static let alignment = 64

    init(_ schedule: Schedule) {
        let function = schedule.function
        for (index, parameter) in function.parameters.enumerated() { locations[parameter.value] = .parameter(index) }
        for (index, result) in function.results.enumerated()
        where locations[result.value] == nil && function.parameter(for: result.value) == nil {
            locations[result.value] = .result(index)
        }

        var lastRead: [Value: Int] = [:]
        var written: [[Value]] = []  // by step
        for (index, step) in schedule.steps.enumerated() {
            let buffers = MemoryPlan.buffersRead(by: step, schedule)
            reads.append(buffers)
            for buffer in buffers { lastRead[buffer] = index }
            switch step {
            case .elementwise(let root, _): written.append([root])
            case .elementwiseNorm(let root, _, let norm, _): written.append([root, function.operations[norm].result])
            case .copy(_, let target): written.append([target])
            case .op(let opIndex, _, _): written.append([function.operations[opIndex].result])
            case .gemm(_, _, let output, _): written.append([output])
            case .copyToResult: written.append([])
            }
        }

        inPlaceResults = MemoryPlan.resultsInPlace(schedule, locations: locations, written: written, lastRead: lastRead)

        // The walk decides which outputs take over an input's buffer and how long each buffer
        // lives; buffers that share storage (a donor and its in-place outputs) form one group.
        var live: [Value: Int] = [:]  // arena buffers alive after the step: their sizes
        var groups: [(start: Int, end: Int, size: Int, values: [Value])] = []
        var groupOf: [Value: Int] = [:]
        for (index, step) in schedule.steps.enumerated() {
            for value in written[index] where locations[value] == nil {
                var donor: Value?
                if case .elementwise(_, let leaves) = step {
                    donor = MemoryPlan.inPlaceDonor(for: value, leaves: leaves, function, step: index, lastRead: lastRead, live: live)
                } else if case .op(let opIndex, _, _) = step {
                    donor = MemoryPlan.nonElementwiseDonor(of: function.operations[opIndex], function, step: index, lastRead: lastRead, live: live)
                }
                if lastRead[value] == nil { lastRead[value] = index }  // written but never read
                if let donor, let group = groupOf[donor] {
                    inPlaceDonors[value] = donor
                    live[value] = live[donor]
                    live[donor] = nil
                    groupOf[value] = group
                    groups[group].values.append(value)
                    continue
                }
                let size = MemoryPlan.aligned(function.type(of: value).elementCount * function.type(of: value).dtype.byteSize)
                live[value] = size
                groupOf[value] = groups.count
                groups.append((index, index, size, [value]))
            }
            for value in live.keys where lastRead[value] == index {
                live[value] = nil
                groups[groupOf[value]!].end = index
            }
            for value in written[index] where groupOf[value] != nil {
                lifetimes[value] = index...lastRead[value]!
            }
        }

        // Offsets: largest group first, each at the lowest offset clear of every placed group
        // whose lifetime overlaps its own (steps inclusive, so a step's outputs never overlap its
        // inputs). The first-fit walk this replaced left 66 MB of holes in BART-base's batch-32
        // training step (arena 945 MB for 879 MB live at its peak; now 880 MB).
        var placed: [(offset: Int, size: Int, start: Int, end: Int)] = []
        var top = 0
        let order = groups.indices.sorted { (groups[$0].size, groups[$1].start) > (groups[$1].size, groups[$0].start) }
        for group in order {
            let (start, end, size, values) = groups[group]
            var offset = 0
            for other in placed.filter({ $0.start <= end && start <= $0.end }).sorted(by: { $0.offset < $1.offset }) {
                if other.offset - offset >= size { break }
                offset = max(offset, other.offset + other.size)
            }
            placed.append((offset, size, start, end))
            top = max(top, offset + size)
            for value in values { locations[value] = .arena(offset: offset) }
        }
        arenaBytes = top
    }

    /// An arena buffer read for the last time by this elementwise step, only at the output's own
    /// index, and as large as the output: the output can overwrite it.
    private static func inPlaceDonor(
        for output: Value, leaves: [Value: Leaf], _ function: Function, step: Int, lastRead: [Value: Int],
        live: [Value: Int]
    ) -> Value? {
        let type = function.type(of: output)
        for buffer in readOnlyAtOwnIndex(output, leaves: leaves, function).sorted() {
            guard lastRead[buffer] == step, let size = live[buffer], function.type(of: buffer).dtype == type.dtype,
                size >= aligned(type.elementCount * type.dtype.byteSize)
            else { continue }
            return buffer
        }
        return nil
    }

    /// The buffers an elementwise step computing `output` reads only at the output's own index
    /// (same shape, dense, no offset), so that writing an element after reading it is safe.
    private static func readOnlyAtOwnIndex(_ output: Value, leaves: [Value: Leaf], _ function: Function) -> Set<Value> {
        let type = function.type(of: output)
        let identical = rowMajorStrides(type.shape)
        var exact: Set<Value> = []
        var other: Set<Value> = []
        func collect(_ leaf: Leaf, sameShape: Bool) {
            switch leaf {
            case .strided(let layout):
                let isIdentical = sameShape && layout.offset == 0 && layout.strides == identical
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
        return exact.subtracting(other)
    }

    /// The results that can be computed over the parameter they write: result `r` with `writes %p`
    /// whose value lives in result buffer `r` and is written by exactly one step,
    /// an elementwise kernel, after which nothing reads `%p`, and which itself reads `%p` only at
    /// the output's own index. AdamW's updates (`new.<p>`, the moments) are such kernels: the
    /// forward and backward passes read the parameters before the first update. Sharing the buffer
    /// is then safe whether or not the caller does it, so a binding may choose (the runtime's
    /// `GR_BIND_RESULTS_IN_PLACE`). Not taken: results written by a GEMM, a copy or any other
    /// kernel, whose reads and writes this plan does not order element by element.
    private static func resultsInPlace(
        _ schedule: Schedule, locations: [Value: BufferLocation], written: [[Value]], lastRead: [Value: Int]
    ) -> Set<Int> {
        let function = schedule.function
        var taken: Set<Int> = []
        for (index, result) in function.results.enumerated() {
            // The verifier guarantees the rest: `target` is a parameter of the result's type (never
            // written by a step) and no other result writes it.
            guard let target = result.writes, locations[result.value] == .result(index) else { continue }
            let writers = written.indices.filter { written[$0].contains(result.value) }
            guard writers.count == 1, let step = writers.first, case .elementwise(_, let leaves) = schedule.steps[step] else { continue }
            let lastReadOfTarget = lastRead[target] ?? -1
            if lastReadOfTarget > step { continue }
            if lastReadOfTarget == step, !readOnlyAtOwnIndex(result.value, leaves: leaves, function).contains(target) { continue }
            taken.insert(index)
        }
        return taken
    }

    /// An operand a non-elementwise op's output may overwrite, when this op is its last read:
    ///
    /// * the logits of a `cross_entropy_grad`: its kernel reads a whole row (maximum, sum of
    ///   exponentials) before it writes that row, element by element, each element read just
    ///   before its gradient is stored. At batch 32 that is 65 MB (320 positions × VL-BART's
    ///   50,465 logits) off the training step's peak.
    /// * the target of a `scatter_add`: its kernel copies the target element by element into the
    ///   output, then only adds into the output, so in place it skips the copy. An embedding's
    ///   gradient is a scatter into a [vocabulary × d_model] buffer (155 MB for BART-base).
    ///
    /// Other row-wise ops (softmax, norms) are fused into elementwise steps or read their input
    /// again later and are not taken.
    private static func nonElementwiseDonor(
        of op: Operation, _ function: Function, step: Int, lastRead: [Value: Int], live: [Value: Int]
    ) -> Value? {
        guard op.opcode == .crossEntropyGrad || op.opcode == .scatterAdd, let donor = op.operands.first,
            !op.operands.dropFirst().contains(donor), lastRead[donor] == step, let size = live[donor]
        else { return nil }
        let type = function.type(of: op.result)
        guard function.type(of: donor) == type, size >= aligned(type.elementCount * type.dtype.byteSize) else { return nil }
        return donor
    }

    static func aligned(_ bytes: Int) -> Int { max(alignment, (bytes + alignment - 1) / alignment * alignment) }

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
