import GranuleIR

/// Emits an elementwise kernel: `root` — or the elements a leaf describes — evaluated at every
/// element of the output shape, parallel over rows (all axes but the last), the last axis as the
/// inner loop so that LLVM vectorizes it. Inlined producers are evaluated in registers; leaves
/// are loaded through their layouts (views), with clamped indices and selects for pads and concats
/// read inside an expression. A concat that is only copied is copied piece by piece instead.
struct ElementwiseKernel {
    let schedule: Schedule
    let module: ModuleText
    /// Symbol prefix for the kernel's constants.
    let name: String
    /// Buffers passed in the kernel's context, in slot order after the runtime pointer.
    private(set) var buffers: [Value] = []
    /// Whether the kernel can raise a run-time error (integer division, casts).
    private(set) var mayRaise = false
    /// Op ids for error reports.
    let opIds: [Value: Int]
    /// Buffers that are the output's own memory (the memory plan made the kernel in place): they
    /// are read through the output's slot, so that LLVM sees one pointer and vectorizes without a
    /// run-time overlap check.
    var inPlaceInputs: Set<Value> = []

    init(schedule: Schedule, module: ModuleText, name: String, opIds: [Value: Int]) {
        self.schedule = schedule
        self.module = module
        self.name = name
        self.opIds = opIds
    }

    var function: Function { schedule.function }

    /// The kernel for `root` (an elementwise op) or for copying `source` (a leaf), writing a dense
    /// tensor of `type` into the buffer in context slot 1 (`output`).
    /// With `norm`, each row is then normalised into the norm's result (see `Step.elementwiseNorm`).
    mutating func emit(
        root: Value?, leaves: [Value: Leaf] = [:], source: Leaf?, type: TensorType, output: Value,
        norm: (op: Operation, weights: [Value])? = nil
    ) -> (text: String, rows: Int) {
        let shape = type.shape
        let rank = shape.count
        let innerCount = rank == 0 ? 1 : shape[rank - 1]
        let rows = rank <= 1 ? 1 : shape.dropLast().reduce(1, *)
        let ir = IRText()
        ir.begin()
        var slots = [output]
        var raises = false
        ir.loop(from: "%begin", to: "%end", "row") { row in
            // The leading indices of this row (the last axis is the inner loop).
            let leading = ir.unflatten(row, shape: Array(shape.dropLast()))
            if root == nil, norm == nil, case .concatenated(let axis, let pieces, let shapes, let starts)? = source {
                // A concat copied piece by piece: each element loads only its own piece, instead
                // of every piece with clamped indices and selects.
                for (piece, (pieceShape, start)) in zip(pieces, zip(shapes, starts)) {
                    func copyRow(_ pieceLeading: [String], columns: Int, firstColumn: Int) {
                        ir.loop(from: "0", to: String(columns), "j") { j in
                            var evaluator = ElementEvaluator(kernel: self, ir: ir, shape: pieceShape, leading: pieceLeading, inner: j, row: row, buffers: slots, leaves: leaves)
                            let element = evaluator.load(piece, dtype: type.dtype, index: pieceLeading + [j])
                            let column = firstColumn == 0 ? j : ir.value("add nsw i64 \(j), \(firstColumn)")
                            let offset = ir.value("add nsw i64 \(ir.value("mul nsw i64 \(row), \(innerCount)")), \(column)")
                            let address = ir.value("getelementptr inbounds \(type.dtype.llvm), ptr %buf1, i64 \(offset)", "p")
                            ir.emit("store \(type.dtype.llvm) \(element), ptr \(address)")
                            slots = evaluator.kernelBuffers
                        }
                    }
                    if axis == rank - 1 {
                        copyRow(leading, columns: pieceShape[axis], firstColumn: start)
                    } else {
                        let local = start == 0 ? leading[axis] : ir.value("sub nsw i64 \(leading[axis]), \(start)")
                        ir.when(ir.value("icmp ult i64 \(local), \(pieceShape[axis])", "in")) {
                            var pieceLeading = leading
                            pieceLeading[axis] = local
                            copyRow(pieceLeading, columns: innerCount, firstColumn: 0)
                        }
                    }
                }
                return
            }
            ir.loop(from: "0", to: String(innerCount), "j") { j in
                var evaluator = ElementEvaluator(kernel: self, ir: ir, shape: shape, leading: leading, inner: j, row: row, buffers: slots, leaves: leaves)
                let element = root.map { evaluator.computeRoot($0) }
                    ?? evaluator.load(source!, dtype: type.dtype, index: evaluator.index(forShape: shape))
                let offset = rank == 0 ? "0" : ir.value("add nsw i64 \(ir.value("mul nsw i64 \(row), \(innerCount)")), \(j)")
                let address = ir.value("getelementptr inbounds \(type.dtype.llvm), ptr %buf1, i64 \(offset)", "p")
                ir.emit("store \(type.dtype.llvm) \(element), ptr \(address)")
                raises = evaluator.mayRaise
                slots = evaluator.kernelBuffers
            }
            if let norm {
                // The norm's output and weights take the slots after the ones the row used.
                func slot(_ value: Value) -> String {
                    if let index = slots.firstIndex(of: value) { return "%buf\(index + 1)" }
                    slots.append(value)
                    return "%buf\(slots.count)"
                }
                let output = slot(norm.op.result)
                let gamma = slot(norm.weights[0])
                let beta = norm.weights.count > 1 ? slot(norm.weights[1]) : nil
                let base = rank == 0 ? "0" : ir.value("mul nsw i64 \(row), \(innerCount)")
                OpKernel.normalizeRow(
                    ir, module, type.dtype, d: innerCount, eps: (try? norm.op.attributes.float("eps")) ?? 1e-5,
                    isLayerNorm: norm.op.opcode == .layerNorm, base: base, input: "%buf1", gamma: gamma, beta: beta, output: output)
            }
        }
        ir.emit("ret void")
        buffers = slots
        mayRaise = raises
        var pointerLines = ["  %rt = load ptr, ptr %ctx"]
        for slot in buffers.indices {
            pointerLines.append("  %buf\(slot + 1).slot = getelementptr ptr, ptr %ctx, i64 \(slot + 1)")
            pointerLines.append("  %buf\(slot + 1) = load ptr, ptr %buf\(slot + 1).slot")
        }
        var lines = ir.lines
        lines.insert(contentsOf: pointerLines, at: 1)
        let text = "define internal void @\(name)(i64 %begin, i64 %end, ptr %ctx) {\n" + lines.joined(separator: "\n") + "\n}\n"
        return (text, rows)
    }
}

/// FNV-1a of a string: names constants by their contents, the same in every run.
func stableHash(_ text: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    return String(hash, radix: 16)
}

/// Evaluates fused expressions at one element of the output shape.
struct ElementEvaluator {
    let kernel: ElementwiseKernel
    let ir: IRText
    let shape: [Int]
    let leading: [String]
    let inner: String
    let row: String
    var kernelBuffers: [Value]
    let leaves: [Value: Leaf]
    var mayRaise = false
    private var memo: [Value: String] = [:]

    init(kernel: ElementwiseKernel, ir: IRText, shape: [Int], leading: [String], inner: String, row: String, buffers: [Value], leaves: [Value: Leaf]) {
        self.leaves = leaves
        self.kernel = kernel
        self.ir = ir
        self.shape = shape
        self.leading = leading
        self.inner = inner
        self.row = row
        kernelBuffers = buffers
    }

    var module: ModuleText { kernel.module }
    var function: Function { kernel.function }

    /// The output-shape index names: leading row indices and the inner index.
    var outputIndex: [String] { shape.isEmpty ? [] : leading + [inner] }

    /// The index into a (broadcast) operand of `operandShape` for the current output element.
    func index(forShape operandShape: [Int]) -> [String] {
        let lead = shape.count - operandShape.count
        let full = outputIndex
        return operandShape.indices.map { axis in operandShape[axis] == 1 ? "0" : full[axis + lead] }
    }

    mutating func slot(_ buffer: Value) -> String {
        if kernel.inPlaceInputs.contains(buffer) { return "%buf1" }
        if let index = kernelBuffers.firstIndex(of: buffer) { return "%buf\(index + 1)" }
        kernelBuffers.append(buffer)
        return "%buf\(kernelBuffers.count)"
    }

    /// The element of the kernel's root op (computed, never loaded).
    mutating func computeRoot(_ root: Value) -> String {
        guard let op = kernel.schedule.op(root) else { return zero(function.type(of: root).dtype) }
        return compute(op, function.type(of: root))
    }

    /// The element of an operand: computed when fused (inlined, or a free constant/iota without a
    /// buffer), loaded through its leaf otherwise.
    mutating func evaluate(_ value: Value) -> String {
        if let known = memo[value] { return known }
        let type = function.type(of: value)
        let schedule = kernel.schedule
        let result: String
        if let op = schedule.op(value), schedule.inlined.contains(value) {
            result = compute(op, type)
        } else {
            guard let leaf = leaves[value] else { preconditionFailure("no leaf for \(function.name(of: value))") }
            result = load(leaf, dtype: type.dtype, index: index(forShape: type.shape))
        }
        memo[value] = result
        return result
    }

    /// Loads a leaf's element at `index` (an index into the leaf's own shape).
    mutating func load(_ leaf: Leaf, dtype: DType, index: [String]) -> String {
        switch leaf {
        case .strided(let layout):
            var offset = String(layout.offset)
            for (axis, stride) in layout.strides.enumerated() where stride != 0 && index[axis] != "0" {
                let term = stride == 1 ? index[axis] : ir.value("mul nsw i64 \(index[axis]), \(stride)")
                offset = ir.value("add nsw i64 \(offset), \(term)")
            }
            let buffer = slot(layout.buffer)
            let address = ir.value("getelementptr inbounds \(dtype.llvm), ptr \(buffer), i64 \(offset)", "p")
            return ir.value("load \(dtype.llvm), ptr \(address)", "v")
        case .padded(let innerLeaf, let innerShape, let low):
            var inside = "true"
            var innerIndex: [String] = []
            for axis in innerShape.indices {
                let shifted = low[axis] == 0 ? index[axis] : ir.value("sub nsw i64 \(index[axis]), \(low[axis])")
                let inRange = ir.value("icmp ult i64 \(shifted), \(innerShape[axis])", "in")
                inside = inside == "true" ? inRange : ir.value("and i1 \(inside), \(inRange)", "in")
                innerIndex.append(ir.value("select i1 \(inRange), i64 \(shifted), i64 0", "ix"))
            }
            let element = load(innerLeaf, dtype: dtype, index: innerIndex)
            return ir.value("select i1 \(inside), \(dtype.llvm) \(element), \(dtype.llvm) \(zero(dtype))")
        case .concatenated(let axis, let pieces, let shapes, let starts):
            var result = zero(dtype)
            for (piece, (pieceShape, start)) in zip(pieces, zip(shapes, starts)) {
                let local = start == 0 ? index[axis] : ir.value("sub nsw i64 \(index[axis]), \(start)")
                let inPiece = ir.value("icmp ult i64 \(local), \(pieceShape[axis])", "in")
                var pieceIndex = index
                pieceIndex[axis] = ir.value("select i1 \(inPiece), i64 \(local), i64 0", "ix")
                let element = load(piece, dtype: dtype, index: pieceIndex)
                result = ir.value("select i1 \(inPiece), \(dtype.llvm) \(element), \(dtype.llvm) \(result)")
            }
            return result
        }
    }

    func zero(_ dtype: DType) -> String { dtype.isFloat ? llvmFloat(0, dtype) : "0" }

    /// The row-major linear index of the current element within a tensor of `ownShape`
    /// (equal to the output's up to leading ones).
    func linearIndex(_ ownShape: [Int]) -> String {
        if ownShape.reduce(1, *) == shape.reduce(1, *) {
            if shape.isEmpty { return "0" }
            let lastDim = shape[shape.count - 1]
            return ir.value("add nsw i64 \(ir.value("mul nsw i64 \(row), \(lastDim)")), \(inner)")
        }
        return linearIndexBroadcast(ownShape)
    }

    private mutating func compute(_ op: Operation, _ type: TensorType) -> String {
        let t = type.dtype.llvm
        let operands = op.opcode == .constant || op.opcode == .iota ? [] : op.operands.map { evaluate($0) }
        let operandType = op.operands.first.map { function.type(of: $0).dtype } ?? type.dtype
        let isFloat = type.dtype.isFloat
        switch op.opcode {
        case .constant:
            guard let data = op.constant else { return zero(type.dtype) }
            switch data {
            case .splat(let scalar): return llvmConstant(scalar, type.dtype)
            case .dense(let values):
                let elements = values.map { "\(t) \(llvmConstant($0, type.dtype))" }.joined(separator: ", ")
                let global = "@const.\(t).\(stableHash(elements))"
                module.addGlobal(named: global, "\(global) = private unnamed_addr constant [\(values.count) x \(t)] [\(elements)], align 64")
                let offset = linearIndexBroadcast(type.shape)
                let address = ir.value("getelementptr inbounds \(t), ptr \(global), i64 \(offset)", "p")
                return ir.value("load \(t), ptr \(address)", "v")
            }
        case .iota:
            let axis = (try? op.attributes.int("axis")) ?? 0
            let position = index(forShape: type.shape)[axis]
            return convertIndex(position, to: type.dtype)
        case .neg:
            return isFloat ? ir.value("fneg \(t) \(operands[0])") : ir.value("sub \(t) 0, \(operands[0])")
        case .abs:
            if isFloat { return module.call("llvm.fabs.\(floatSuffix(type.dtype))", type.dtype, operands, ir) }
            let negative = ir.value("icmp slt \(t) \(operands[0]), 0")
            let negated = ir.value("sub \(t) 0, \(operands[0])")
            return ir.value("select i1 \(negative), \(t) \(negated), \(t) \(operands[0])")
        case .relu:
            let zeroValue = zero(type.dtype)
            let positive = isFloat ? ir.value("fcmp ogt \(t) \(operands[0]), \(zeroValue)") : ir.value("icmp sgt \(t) \(operands[0]), 0")
            return ir.value("select i1 \(positive), \(t) \(operands[0]), \(t) \(zeroValue)")
        case .exp: return libm("exp", type.dtype, operands)
        case .log: return libm("log", type.dtype, operands)
        case .tanh: return libm("tanh", type.dtype, operands)
        case .erf: return libm("erf", type.dtype, operands)
        case .sqrt: return module.call("llvm.sqrt.\(floatSuffix(type.dtype))", type.dtype, operands, ir)
        case .rsqrt:
            let root = module.call("llvm.sqrt.\(floatSuffix(type.dtype))", type.dtype, operands, ir)
            return ir.value("fdiv \(t) \(llvmFloat(1, type.dtype)), \(root)")
        case .sigmoid:
            if type.dtype == .f32 { return libm("sigmoid", .f32, operands) }
            let negated = ir.value("fneg \(t) \(operands[0])")
            let exponential = libm("exp", type.dtype, [negated])
            let denominator = ir.value("fadd \(t) \(llvmFloat(1, type.dtype)), \(exponential)")
            return ir.value("fdiv \(t) \(llvmFloat(1, type.dtype)), \(denominator)")
        case .pow:
            let exponent = (try? op.attributes.float("exponent")) ?? 1
            return libm("pow", type.dtype, [operands[0], llvmFloat(exponent, type.dtype)])
        case .gelu:
            return gelu(operands[0], type.dtype, approx: (try? op.attributes.symbol("approx", oneOf: ["erf", "tanh"])) ?? "erf")
        case .add: return ir.value(isFloat ? "fadd \(t) \(operands[0]), \(operands[1])" : "add \(t) \(operands[0]), \(operands[1])")
        case .sub: return ir.value(isFloat ? "fsub \(t) \(operands[0]), \(operands[1])" : "sub \(t) \(operands[0]), \(operands[1])")
        case .mul: return ir.value(isFloat ? "fmul \(t) \(operands[0]), \(operands[1])" : "mul \(t) \(operands[0]), \(operands[1])")
        case .div:
            if isFloat { return ir.value("fdiv \(t) \(operands[0]), \(operands[1])") }
            return integerDivide(operands[0], operands[1], type.dtype, op: op.result)
        case .max, .min:
            if isFloat {
                return module.call("llvm.\(op.opcode == .max ? "maximum" : "minimum").\(floatSuffix(type.dtype))", type.dtype, operands, ir)
            }
            let predicate = op.opcode == .max ? "sgt" : "slt"
            let first = ir.value("icmp \(predicate) \(t) \(operands[0]), \(operands[1])")
            return ir.value("select i1 \(first), \(t) \(operands[0]), \(t) \(operands[1])")
        case .compare:
            let predicate = (try? op.attributes.symbol("predicate", oneOf: TypeRules.comparePredicates)) ?? "eq"
            let operandLLVM = operandType.llvm
            let condition: String
            if operandType.isFloat {
                let fcmp = ["eq": "oeq", "ne": "une", "lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge"][predicate]!
                condition = ir.value("fcmp \(fcmp) \(operandLLVM) \(operands[0]), \(operands[1])")
            } else {
                let icmp = ["eq": "eq", "ne": "ne", "lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge"][predicate]!
                condition = ir.value("icmp \(icmp) \(operandLLVM) \(operands[0]), \(operands[1])")
            }
            return ir.value("zext i1 \(condition) to i8")
        case .select:
            let condition = ir.value("icmp ne i8 \(operands[0]), 0")
            return ir.value("select i1 \(condition), \(t) \(operands[1]), \(t) \(operands[2])")
        case .cast:
            return cast(operands[0], from: operandType, to: type.dtype, op: op.result)
        case .dropout:
            return dropout(op, operands[0], operands[1], type)
        default:
            return zero(type.dtype)
        }
    }

    /// Row-major index, within `ownShape`, of the element a broadcast operand supplies.
    private func linearIndexBroadcast(_ ownShape: [Int]) -> String {
        let index = index(forShape: ownShape)
        var linear = "0"
        for (axis, stride) in rowMajorStrides(ownShape).enumerated() where index[axis] != "0" {
            linear = ir.value("add nsw i64 \(linear), \(ir.value("mul nsw i64 \(index[axis]), \(stride)"))")
        }
        return linear
    }

    private func floatSuffix(_ dtype: DType) -> String { dtype == .f32 ? "f32" : "f64" }

    /// libm for doubles (and float pow); float exp, log, tanh and erf use the inline polynomials
    /// of `VectorMath`, which vectorize.
    private func libm(_ name: String, _ dtype: DType, _ operands: [String]) -> String {
        if dtype == .f32, ["exp", "log", "tanh", "erf", "sigmoid"].contains(name) {
            module.useVectorMath()
            return ir.value("call float @gr.\(name)f(float \(operands[0]))")
        }
        return module.call(dtype == .f32 ? name + "f" : name, dtype, operands, ir)
    }

    private func gelu(_ x: String, _ dtype: DType, approx: String) -> String {
        let t = dtype.llvm
        let half = ir.value("fmul \(t) \(x), \(llvmFloat(0.5, dtype))")
        let inner: String
        if approx == "erf" {
            let scaled = ir.value("fmul \(t) \(x), \(llvmFloat(1 / 2.0.squareRoot(), dtype))")
            inner = libm("erf", dtype, [scaled])
        } else {
            let cube = ir.value("fmul \(t) \(ir.value("fmul \(t) \(x), \(x)")), \(x)")
            let sum = ir.value("fadd \(t) \(x), \(ir.value("fmul \(t) \(cube), \(llvmFloat(0.044715, dtype))"))")
            inner = libm("tanh", dtype, [ir.value("fmul \(t) \(sum), \(llvmFloat((2 / Double.pi).squareRoot(), dtype))")])
        }
        return ir.value("fmul \(t) \(half), \(ir.value("fadd \(t) \(llvmFloat(1, dtype)), \(inner)"))")
    }

    private mutating func integerDivide(_ a: String, _ b: String, _ dtype: DType, op: Value) -> String {
        let t = dtype.llvm
        mayRaise = true
        let isZero = ir.value("icmp eq \(t) \(b), 0")
        let opId = kernel.opIds[op] ?? -1
        ir.when(isZero) {
            ir.emit("call void @gr_raise(ptr %rt, i32 \(opId), i32 3, i64 0, i64 0)")
        }
        // Division by −1 negates (wrapping), sidestepping MIN / −1, which LLVM leaves undefined.
        let isMinusOne = ir.value("icmp eq \(t) \(b), -1")
        let safeDivisor = ir.value("select i1 \(ir.value("or i1 \(isZero), \(isMinusOne)")), \(t) 1, \(t) \(b)")
        let quotient = ir.value("sdiv \(t) \(a), \(safeDivisor)")
        let negated = ir.value("sub \(t) 0, \(a)")
        let signed = ir.value("select i1 \(isMinusOne), \(t) \(negated), \(t) \(quotient)")
        return ir.value("select i1 \(isZero), \(t) 0, \(t) \(signed)")
    }

    private func convertIndex(_ index: String, to dtype: DType) -> String {
        switch dtype {
        case .f32, .f64: return ir.value("sitofp i64 \(index) to \(dtype.llvm)")
        case .i64: return index
        default: return ir.value("trunc i64 \(index) to \(dtype.llvm)")
        }
    }

    private mutating func cast(_ x: String, from source: DType, to target: DType, op: Value) -> String {
        if source == target { return x }
        let (s, t) = (source.llvm, target.llvm)
        switch (source.isFloat, target) {
        case (true, .f32), (true, .f64):
            return ir.value("\(source.bitWidth < target.bitWidth ? "fpext" : "fptrunc") \(s) \(x) to \(t)")
        case (true, .i1):
            return ir.value("zext i1 \(ir.value("fcmp une \(s) \(x), \(zero(source))")) to i8")
        case (true, _):
            // NaN or out of range is a run-time error, as in the interpreter.
            mayRaise = true
            let limit = Double(sign: .plus, exponent: target.bitWidth - 1, significand: 1)
            let inRange = ir.value("and i1 \(ir.value("fcmp oge \(s) \(x), \(llvmFloat(-limit, source))")), \(ir.value("fcmp olt \(s) \(x), \(llvmFloat(limit, source))"))")
            let opId = kernel.opIds[op] ?? -1
            ir.when(ir.value("xor i1 \(inRange), true")) {
                ir.emit("call void @gr_raise(ptr %rt, i32 \(opId), i32 4, i64 0, i64 0)")
            }
            let safe = ir.value("select i1 \(inRange), \(s) \(x), \(s) \(zero(source))")
            return ir.value("fptosi \(s) \(safe) to \(t)")
        case (false, .f32), (false, .f64):
            return ir.value("\(source == .i1 ? "uitofp" : "sitofp") \(s) \(x) to \(t)")
        case (false, .i1):
            return ir.value("zext i1 \(ir.value("icmp ne \(s) \(x), 0")) to i8")
        default:
            if source.bitWidth > target.bitWidth { return ir.value("trunc \(s) \(x) to \(t)") }
            return ir.value("\(source == .i1 ? "zext" : "sext") \(s) \(x) to \(t)")
        }
    }

    private mutating func dropout(_ op: Operation, _ x: String, _ seed: String, _ type: TensorType) -> String {
        let rate = (try? op.attributes.float("rate")) ?? 0
        let offset = (try? op.attributes.int("offset")) ?? 0
        guard rate > 0 else { return x }
        let index = linearIndex(type.shape)
        module.usePhilox()
        // The offset arrives through the context, not as a literal, so that the dropout kernels of
        // every layer are one kernel: LLVM then compiles each shape's Philox code once.
        let offsetSlot = slot(KernelImmediate.value(offset))
        let offsetValue = ir.value("ptrtoint ptr \(offsetSlot) to i64", "offset")
        let word = ir.value("call i32 @gr.philox_word(i64 \(seed), i64 \(offsetValue), i64 \(index))")
        let high = ir.value("lshr i32 \(word), 8")
        let keep = ir.value("fcmp oge double \(ir.value("uitofp i32 \(high) to double")), \(llvmFloat(rate * 16777216.0, .f64))")
        let t = type.dtype.llvm
        let wide = type.dtype == .f64 ? x : ir.value("fpext \(t) \(x) to double")
        let scaled = ir.value("fmul double \(wide), \(llvmFloat(1 / (1 - rate), .f64))")
        let narrowed = type.dtype == .f64 ? scaled : ir.value("fptrunc double \(scaled) to \(t)")
        return ir.value("select i1 \(keep), \(t) \(narrowed), \(t) \(zero(type.dtype))")
    }
}

/// Integers a kernel reads from its context like buffer pointers (`ptrtoint` of the slot), so that
/// kernels differing only in such a constant share one LLVM function. They are keyed by Values in
/// a negative range no value of a function (nor `copyToResult`'s stand-ins, -1 - slot) reaches;
/// the entry function stores `inttoptr (i64 n to ptr)` in their slots.
enum KernelImmediate {
    static let base = -(1 << 62)

    static func value(_ integer: Int) -> Value {
        precondition(integer >= 0 && integer < 1 << 61, "kernel immediate out of range: \(integer)")
        return Value(base + integer)
    }

    /// The integer `value` stands for, if it is an immediate.
    static func integer(_ value: Value) -> Int? { value.id < -(1 << 61) ? value.id - base : nil }
}
