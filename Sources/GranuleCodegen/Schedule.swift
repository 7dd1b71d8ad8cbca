import GranuleIR

/// How a kernel addresses the elements of a value: the buffer that holds them, an element offset
/// and one stride per axis of the value's shape. Views (transpose, broadcast_to, slice, reshape of
/// a dense value) are layouts over their source's buffer, never copies.
struct Layout: Hashable {
    /// The materialized value whose buffer holds the data.
    var buffer: Value
    var offset: Int
    var strides: [Int]
}

/// How an elementwise kernel reads a value that it does not compute itself.
indirect enum Leaf: Hashable {
    /// Elements at a layout.
    case strided(Layout)
    /// Zero outside `[low, low + inner.shape)` on each axis (the `pad` op), the inner leaf inside.
    case padded(inner: Leaf, innerShape: [Int], low: [Int])
    /// Pieces along `axis` (the `concat` op): piece k covers `[starts[k], starts[k] + sizes[k])`.
    case concatenated(axis: Int, pieces: [Leaf], shapes: [[Int]], starts: [Int])
}

/// One unit of work of a compiled function, in execution order.
enum Step {
    /// Evaluates `root` (and the ops inlined into it) at every element of its shape, reading each
    /// operand it does not compute through `leaves` (fixed when the step is scheduled: a value
    /// materialized later is still read through its view here).
    case elementwise(root: Value, leaves: [Value: Leaf])
    /// Writes the elements `source` describes into the buffer of `target`: views that a
    /// non-elementwise consumer needs dense, pads and concats, and results that are views.
    case copy(source: Leaf, target: Value)
    /// Writes `source` into the buffer of result `index` (results that are parameters, or a value
    /// returned twice).
    case copyToResult(source: Leaf, index: Int)
    /// Any other op: one kernel for `function.operations[index]`, whose operands are read densely
    /// from `operands` (their buffers) — except a reduction's input computed in the kernel from
    /// fused elementwise producers, read through `leaves` (then `operands` is empty).
    case op(Int, operands: [Value], leaves: [Value: Leaf])
    /// An elementwise `root` as above whose rows are then normalised by the layer_norm or rms_norm
    /// `function.operations[norm]` in the same kernel (the residual + LayerNorm tail of a
    /// post-LN sub-layer: one pass writes the sum for the backward pass and normalises it while
    /// the row is in cache). `weights` are the norm's γ (and β) buffers.
    case elementwiseNorm(root: Value, leaves: [Value: Leaf], norm: Int, weights: [Value])
    /// The matmul `function.operations[index]` writing `output`; with `accumulate` the product is
    /// added to what `output` holds (a bias broadcast into it by the previous step: the GEMM's
    /// bias epilogue, `beta = 1`).
    case gemm(Int, operands: [Value], output: Value, accumulate: Bool)
}

/// Decides, for one function, which values live in buffers, which are views of other buffers and
/// which elementwise ops are computed inside their consumers' kernels (fusion), and in which order
/// the kernels run.
///
/// Fusion rule: an elementwise op (unary, binary, compare, select, cast, dropout, iota, constant)
/// is inlined into its consumers when every use is an elementwise op of the same element count
/// (no recomputation by broadcasting) and it has a single use — or it is a constant or iota, which
/// cost nothing to recompute. Transposes, broadcasts, slices and reshapes of dense data are
/// layouts; pads and concats are read piecewise by their consumers. Everything else is
/// materialized. It does not fuse across reductions, normalisations or GEMMs.
struct Schedule {
    let function: Function
    /// Values computed inside their consumers' kernels.
    private(set) var inlined: Set<Value> = []
    /// Views: their layout over a materialized buffer.
    private(set) var views: [Value: Layout] = [:]
    /// Pads and concats: read piecewise.
    private(set) var composites: [Value: Leaf] = [:]
    /// Values with a buffer of their own.
    private(set) var materialized: Set<Value> = []
    private(set) var steps: [Step] = []
    /// The op defining each value, if any.
    let definition: [Int?]

    static let elementwiseOps: Set<Opcode> = [
        .neg, .abs, .exp, .log, .tanh, .sigmoid, .relu, .sqrt, .rsqrt, .erf, .pow, .gelu,
        .add, .sub, .mul, .div, .max, .min, .compare, .select, .cast, .dropout, .iota, .constant,
    ]
    static let viewOps: Set<Opcode> = [.transpose, .broadcastTo, .slice, .reshape]
    static let reductionOps: Set<Opcode> = [.reduceSum, .reduceMean, .reduceMax]

    /// The deepest elementwise expression one kernel computes (real models fuse fewer than 30).
    static let maxFusedDepth = 256

    init(_ function: Function) {
        self.function = function
        definition = function.definingOperationIndices()
        plan()
    }

    func op(_ value: Value) -> Operation? { definition[value.id].map { function.operations[$0] } }

    private mutating func plan() {
        var uses = [[Int]](repeating: [], count: function.valueCount)
        for (index, op) in function.operations.enumerated() {
            for operand in op.operands { uses[operand.id].append(index) }
        }
        let resultValues = Set(function.results.map(\.value))
        for parameter in function.parameters { materialized.insert(parameter.value) }

        // Which elementwise ops fuse into their consumers. An expression deeper than
        // `maxFusedDepth` is cut (materialized) there: kernels are emitted by recursing through
        // the expression, and a chain of 10,000 ops overflowed the compiler's stack.
        var depth = [Int](repeating: 0, count: function.valueCount)  // inlined ops under a value, itself included
        for (index, op) in function.operations.enumerated() where Schedule.elementwiseOps.contains(op.opcode) {
            let value = op.result
            depth[value.id] = 1 + (op.operands.map { inlined.contains($0) ? depth[$0.id] : 0 }.max() ?? 0)
            guard !resultValues.contains(value), !uses[value.id].isEmpty, depth[value.id] < Schedule.maxFusedDepth else { continue }
            if keepsWiderInputAlive(op, at: index, uses: uses) { continue }
            let count = function.type(of: value).elementCount
            let free = op.opcode == .constant || op.opcode == .iota
            let consumersFuse = uses[value.id].allSatisfy { user in
                let consumer = function.operations[user]
                return Schedule.elementwiseOps.contains(consumer.opcode)
                    && (free || function.type(of: consumer.result).elementCount == count)
            }
            // A reduction computes its single-use elementwise input itself, element by element.
            let reduction = uses[value.id].count == 1 && Schedule.reductionOps.contains(function.operations[uses[value.id][0]].opcode)
            if (consumersFuse && (free || uses[value.id].count == 1)) || reduction { inlined.insert(value) }
        }

        // GEMM bias epilogues: `add(matmul, bias)` whose matmul has no other use and whose sum is
        // materialized starts from the broadcast bias and accumulates the product into it.
        var epilogues: [Value: (sum: Value, bias: Value)] = [:]
        for (index, op) in function.operations.enumerated()
        where op.opcode == .add && !inlined.contains(op.result) {
            for (product, bias) in [(op.operands[0], op.operands[1]), (op.operands[1], op.operands[0])] {
                guard self.op(product)?.opcode == .matmul, uses[product.id] == [index], !resultValues.contains(product),
                    function.type(of: product) == function.type(of: op.result), product != bias
                else { continue }
                epilogues[product] = (op.result, bias)
                break
            }
        }
        var fusedIntoGemm: Set<Value> = []

        for (index, op) in function.operations.enumerated() {
            let value = op.result
            if fusedIntoGemm.contains(value) { continue }
            switch op.opcode {
            case _ where Schedule.viewOps.contains(op.opcode):
                // A view of something without a layout (a composite, a non-dense reshape) reads a copy.
                if viewLayout(op) == nil { materialize(op.operands[0]) }
                views[value] = viewLayout(op)
            case .pad:
                let low = (try? op.attributes.ints("low")) ?? []
                composites[value] = .padded(inner: leaf(op.operands[0]), innerShape: function.type(of: op.operands[0]).shape, low: low)
            case .concat:
                let axis = (try? op.attributes.int("axis")) ?? 0
                var starts: [Int] = []
                var start = 0
                for operand in op.operands {
                    starts.append(start)
                    start += function.type(of: operand).shape[axis]
                }
                composites[value] = .concatenated(
                    axis: axis, pieces: op.operands.map(leaf), shapes: op.operands.map { function.type(of: $0).shape }, starts: starts)
            case _ where inlined.contains(value):
                break
            case _ where Schedule.elementwiseOps.contains(op.opcode):
                steps.append(.elementwise(root: value, leaves: leaves(of: op)))
                materialized.insert(value)
            case .matmul:
                for operand in op.operands where !isDense(operand) { materialize(operand) }
                let operands = op.operands.map { layout(of: $0)!.buffer }
                if let (sum, bias) = epilogues[value], let biasLeaf = broadcastLeaf(bias, to: function.type(of: sum).shape) {
                    steps.append(.copy(source: biasLeaf, target: sum))
                    steps.append(.gemm(index, operands: operands, output: sum, accumulate: true))
                    materialized.insert(sum)
                    fusedIntoGemm.insert(sum)
                } else {
                    steps.append(.gemm(index, operands: operands, output: value, accumulate: false))
                    materialized.insert(value)
                }
            case _ where (op.opcode == .layerNorm || op.opcode == .rmsNorm) && fuseNorm(op, index):
                materialized.insert(value)
            case _ where Schedule.reductionOps.contains(op.opcode) && inlined.contains(op.operands[0]):
                steps.append(.op(index, operands: [], leaves: leaves(of: op)))
                materialized.insert(value)
            default:
                // Non-elementwise kernels read dense buffers.
                for operand in op.operands where !isDense(operand) { materialize(operand) }
                steps.append(.op(index, operands: op.operands.map { layout(of: $0)!.buffer }, leaves: [:]))
                materialized.insert(value)
            }
            // A result that is a view or composite gets its buffer right away, before any consumer.
            if resultValues.contains(value), !materialized.contains(value), function.parameter(for: value) == nil {
                materialize(value)
            }
        }
        // Results that are parameters, or returned twice, are copied into their result buffers.
        var seen: Set<Value> = []
        for (index, result) in function.results.enumerated() {
            let value = result.value
            if function.parameter(for: value) != nil || !seen.insert(value).inserted {
                steps.append(.copyToResult(source: leaf(value), index: index))
            }
        }
    }

    /// How an elementwise op's kernel reads each operand it does not compute (through inlined
    /// producers), as of now.
    private func leaves(of op: Operation) -> [Value: Leaf] {
        var result: [Value: Leaf] = [:]
        var stack = op.operands
        while let value = stack.popLast() {
            guard result[value] == nil else { continue }
            if inlined.contains(value), let producer = self.op(value) {
                if producer.opcode != .constant && producer.opcode != .iota { stack += producer.operands }
            } else {
                result[value] = leaf(value)
            }
        }
        return result
    }

    /// Folds a normalisation into the elementwise kernel that computes its input, when its weights
    /// are parameters (available from the start).
    private mutating func fuseNorm(_ op: Operation, _ index: Int) -> Bool {
        let weights = Array(op.operands.dropFirst())
        guard weights.allSatisfy({ function.parameter(for: $0) != nil }) else { return false }
        for (position, step) in steps.enumerated().reversed() {
            guard case .elementwise(let root, let leaves) = step, root == op.operands[0] else { continue }
            steps[position] = .elementwiseNorm(root: root, leaves: leaves, norm: index, weights: weights)
            return true
        }
        return false
    }

    /// `value` read at every element of `shape` (numpy broadcasting), if it has a strided layout
    /// available now.
    private func broadcastLeaf(_ value: Value, to shape: [Int]) -> Leaf? {
        guard let source = layout(of: value) else { return nil }
        let own = function.type(of: value).shape
        let lead = shape.count - own.count
        let strides = shape.indices.map { axis -> Int in
            axis < lead || own[axis - lead] == 1 ? 0 : source.strides[axis - lead]
        }
        return .strided(Layout(buffer: source.buffer, offset: source.offset, strides: strides))
    }

    /// Whether inlining `op` into its single consumer would keep a wider input alive longer: `op`
    /// narrows (a mask, 1 byte an element, of an f32 tensor), the consumer is not the next op, and
    /// some op result `op` reads has its last use before the consumer (inlined, it would be read
    /// there). Such an op (the ReLU gradient's mask that `HoistMasks` moved into the forward pass)
    /// gets a buffer of its own, so that its input can die in the forward pass.
    private func keepsWiderInputAlive(_ op: Operation, at index: Int, uses: [[Int]]) -> Bool {
        guard uses[op.result.id].count == 1, let consumer = uses[op.result.id].first, consumer > index + 1 else { return false }
        let width = function.type(of: op.result).dtype.byteSize
        return op.operands.contains { operand in
            definition[operand.id] != nil && function.type(of: operand).dtype.byteSize > width
                && (uses[operand.id].max() ?? index) < consumer
        }
    }

    /// Gives a view or composite a buffer of its own, filled by a copy kernel (once).
    private mutating func materialize(_ value: Value) {
        guard !materialized.contains(value) else { return }
        let source = leaf(value)
        materialized.insert(value)
        steps.append(.copy(source: source, target: value))
    }

    /// Whether a value's elements sit densely in row-major order in a buffer of their own size.
    func isDense(_ value: Value) -> Bool {
        if materialized.contains(value) { return true }
        guard let layout = views[value] else { return false }
        let type = function.type(of: value)
        return layout.offset == 0 && layout.strides == rowMajorStrides(type.shape)
            && function.type(of: layout.buffer).elementCount == type.elementCount
    }

    /// The layout of a materialized value or a view.
    func layout(of value: Value) -> Layout? {
        if materialized.contains(value) {
            return Layout(buffer: value, offset: 0, strides: rowMajorStrides(function.type(of: value).shape))
        }
        return views[value]
    }

    /// How an elementwise kernel reads a value it does not compute: its buffer, its view's layout,
    /// or its pad/concat pieces. (Inlined values are never leaves.)
    func leaf(_ value: Value) -> Leaf {
        if let layout = layout(of: value) { return .strided(layout) }
        if let composite = composites[value] { return composite }
        preconditionFailure("value \(function.name(of: value)) has no buffer, view or composite")
    }

    /// The layout a view op defines over its operand's layout, or nil when it needs a copy.
    private func viewLayout(_ op: Operation) -> Layout? {
        guard let source = layout(of: op.operands[0]) else { return nil }
        let inputShape = function.type(of: op.operands[0]).shape
        let outputShape = function.type(of: op.result).shape
        switch op.opcode {
        case .transpose:
            guard let perm = try? op.attributes.ints("perm") else { return nil }
            return Layout(buffer: source.buffer, offset: source.offset, strides: perm.map { source.strides[$0] })
        case .broadcastTo:
            let lead = outputShape.count - inputShape.count
            let strides = outputShape.indices.map { axis -> Int in
                axis < lead || inputShape[axis - lead] == 1 ? 0 : source.strides[axis - lead]
            }
            return Layout(buffer: source.buffer, offset: source.offset, strides: strides)
        case .slice:
            guard let start = try? op.attributes.ints("start") else { return nil }
            let offset = source.offset + zip(start, source.strides).reduce(0) { $0 + $1.0 * $1.1 }
            return Layout(buffer: source.buffer, offset: offset, strides: source.strides)
        case .reshape:
            // A dense run of elements can take any shape.
            let dense = source.strides == rowMajorStrides(inputShape)
                || inputShape.reduce(1, *) <= 1
            guard dense else { return nil }
            return Layout(buffer: source.buffer, offset: source.offset, strides: rowMajorStrides(outputShape))
        default:
            return nil
        }
    }
}
