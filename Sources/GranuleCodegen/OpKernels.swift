import GranuleIR

/// Kernels for the ops that are not elementwise: reductions, normalisations, softmax,
/// cross-entropy, gather/scatter and pooling. Each reads dense operand buffers (context slots
/// 2...) and writes a dense result (slot 1), parallel over `rows` independent pieces of work.
/// Float accumulations run in double, as the interpreter's do, with `reassoc` so that they
/// vectorize (the order of a row's additions is then fixed by the vector width, not by the
/// source: results are deterministic for a given binary).
struct OpKernel {
    let function: Function
    let op: Operation
    let name: String
    let opId: Int
    let module: ModuleText
    /// For a reduction whose input is computed in the kernel (fused elementwise producers): the
    /// schedule, the leaves of that expression and the op ids for its errors.
    var fusedInput: (schedule: Schedule, leaves: [Value: Leaf], opIds: [Value: Int])? = nil
    /// The operand whose buffer the memory plan gave to the result (`MemoryPlan`'s non-elementwise
    /// donors), if any. `operand(_:)` reads it through the output's pointer, so that LLVM sees one
    /// pointer and vectorizes without a run-time overlap check (which an exactly in-place buffer
    /// fails, sending every element to the scalar loop: BART-base's LM-head gradient took 2.5× as
    /// long). `scatter_add` compares the two pointers itself.
    var inPlaceDonor: Value? = nil

    var mayRaise: Bool {
        [.gather, .scatterAdd, .crossEntropy, .crossEntropyGrad].contains(op.opcode)
    }

    func type(_ value: Value) -> TensorType { function.type(of: value) }

    /// The kernel's text, its row count and the buffers of its context slots after the output
    /// (the operands, or for a fused reduction the buffers its expression reads).
    func emit() throws(Diagnostic) -> (text: String, rows: Int, inputs: [Value]) {
        let ir = IRText()
        ir.begin()
        let rows: Int
        var inputs = op.operands
        switch op.opcode {
        case .reduceSum, .reduceMean, .reduceMax:
            var slots = [op.result]
            rows = try reduce(ir, &slots)
            if fusedInput != nil { inputs = Array(slots.dropFirst()) }
        case .softmax, .logSoftmax: rows = try softmax(ir)
        case .layerNorm, .rmsNorm: rows = try normalize(ir)
        case .crossEntropy: rows = try crossEntropy(ir)
        case .crossEntropyGrad: rows = try crossEntropyGrad(ir)
        case .gather: rows = gather(ir)
        case .scatterAdd: rows = scatterAdd(ir)
        case .maxPool2d: rows = try maxPool(ir)
        case .maxPool2dGrad: rows = try maxPoolGrad(ir)
        default: throw Diagnostic("internal: no kernel for '\(op.opcode.name)'", at: op.location)
        }
        ir.emit("ret void")
        var lines = ir.lines
        var pointers = ["  %rt = load ptr, ptr %ctx"]
        for slot in 1...(inputs.count + 1) {
            pointers.append("  %buf\(slot).slot = getelementptr ptr, ptr %ctx, i64 \(slot)")
            pointers.append("  %buf\(slot) = load ptr, ptr %buf\(slot).slot")
        }
        lines.insert(contentsOf: pointers, at: 1)
        return ("define internal void @\(name)(i64 %begin, i64 %end, ptr %ctx) {\n" + lines.joined(separator: "\n") + "\n}\n", rows, inputs)
    }

    // MARK: helpers

    /// Operand `index`'s buffer: slot index + 2, or the output's `%buf1` for the in-place donor.
    func operand(_ index: Int) -> String { op.operands[index] == inPlaceDonor ? "%buf1" : "%buf\(index + 2)" }

    func load(_ ir: IRText, _ dtype: DType, _ buffer: String, _ offset: String) -> String {
        let address = ir.value("getelementptr inbounds \(dtype.llvm), ptr \(buffer), i64 \(offset)", "p")
        return ir.value("load \(dtype.llvm), ptr \(address)", "v")
    }

    func store(_ ir: IRText, _ dtype: DType, _ value: String, _ buffer: String, _ offset: String) {
        let address = ir.value("getelementptr inbounds \(dtype.llvm), ptr \(buffer), i64 \(offset)", "p")
        ir.emit("store \(dtype.llvm) \(value), ptr \(address)")
    }

    /// A float element widened to double.
    func widen(_ ir: IRText, _ dtype: DType, _ value: String) -> String {
        dtype == .f64 ? value : ir.value("fpext float \(value) to double")
    }

    func narrow(_ ir: IRText, _ dtype: DType, _ value: String) -> String {
        dtype == .f64 ? value : ir.value("fptrunc double \(value) to float")
    }

    func add(_ ir: IRText, _ a: String, _ b: String) -> String { ir.value("add nsw i64 \(a), \(b)") }
    func mul(_ ir: IRText, _ a: String, _ b: Int) -> String { b == 1 ? a : ir.value("mul nsw i64 \(a), \(b)") }

    /// e^x of a double: for float tensors through the vectorizable float polynomial (the argument
    /// is a float difference, the sum it feeds accumulates in double); libm for doubles.
    func exp(_ ir: IRText, _ x: String) -> String {
        if type(op.operands[0]).dtype == .f32 {
            module.useVectorMath()
            let narrow = ir.value("fptrunc double \(x) to float")
            return ir.value("fpext float \(ir.value("call float @gr.expf(float \(narrow))")) to double")
        }
        module.declare("declare double @exp(double)")
        return ir.value("call double @exp(double \(x))")
    }

    func log(_ ir: IRText, _ x: String) -> String {
        module.declare("declare double @log(double)")
        return ir.value("call double @log(double \(x))")
    }

    func sqrt(_ ir: IRText, _ x: String) -> String {
        module.declare("declare double @llvm.sqrt.f64(double)")
        return ir.value("call double @llvm.sqrt.f64(double \(x))")
    }

    /// Reads an integer index element as i64.
    func loadIndex(_ ir: IRText, _ dtype: DType, _ buffer: String, _ offset: String) -> String {
        let raw = load(ir, dtype, buffer, offset)
        return dtype == .i64 ? raw : ir.value("sext \(dtype.llvm) \(raw) to i64")
    }

    func raise(_ ir: IRText, kind: Int, value: String, bound: Int) {
        module.declare("declare void @gr_raise(ptr, i32, i32, i64, i64)")
        ir.emit("call void @gr_raise(ptr %rt, i32 \(opId), i32 \(kind), i64 \(value), i64 \(bound))")
    }

    // MARK: reductions

    /// Outputs processed together by `reduceLeadingAxes`: one row of double accumulators.
    static let reductionBlock = 64

    /// A sum or mean over the leading axes (a bias or norm-weight gradient: `[B, T, D] → [D]`),
    /// in blocks of `reductionBlock` outputs: for each reduced index in order, the block's
    /// contiguous input elements are added to per-output double accumulators, a loop LLVM
    /// vectorizes. The generic nest would walk each output's column with a stride of a whole row.
    /// Same order of additions as the generic nest, so the same result.
    private func reduceLeadingAxes(_ ir: IRText, _ slots: inout [Value], x: TensorType, reducedAxes: Int) -> Int {
        let block = OpKernel.reductionBlock
        let outputs = x.shape[reducedAxes...].reduce(1, *)
        let reducedCount = x.shape[..<reducedAxes].reduce(1, *)
        let accumulators = ir.array("double", count: block)
        ir.loop(from: "%begin", to: "%end", "b") { b in
            let first = mul(ir, b, block)
            let remaining = ir.value("sub nsw i64 \(outputs), \(first)")
            let count = ir.value("select i1 \(ir.value("icmp slt i64 \(remaining), \(block)")), i64 \(remaining), i64 \(block)")
            ir.loop(from: "0", to: count, "z") { j in
                ir.emit("store double 0.0, ptr \(ir.value("getelementptr inbounds double, ptr \(accumulators), i64 \(j)", "acc"))")
            }
            ir.loop(from: "0", to: String(reducedCount), "r") { r in
                // The reduced axes' indices of r (for a fused input's expression).
                let leading = ir.unflatten(r, shape: Array(x.shape[..<reducedAxes]))
                let rowBase = mul(ir, r, outputs)
                ir.loop(from: "0", to: count, "j") { j in
                    let o = add(ir, first, j)
                    let element: String
                    if let fused = fusedInput {
                        let host = ElementwiseKernel(schedule: fused.schedule, module: module, name: name, opIds: fused.opIds)
                        var evaluator = ElementEvaluator(
                            kernel: host, ir: ir, shape: x.shape, leading: leading, inner: o, row: r, buffers: slots, leaves: fused.leaves)
                        element = evaluator.evaluate(op.operands[0])
                        slots = evaluator.kernelBuffers
                    } else {
                        element = load(ir, x.dtype, "%buf2", add(ir, rowBase, o))
                    }
                    let address = ir.value("getelementptr inbounds double, ptr \(accumulators), i64 \(j)", "acc")
                    let sum = ir.value("fadd double \(ir.value("load double, ptr \(address)")), \(widen(ir, x.dtype, element))")
                    ir.emit("store double \(sum), ptr \(address)")
                }
            }
            ir.loop(from: "0", to: count, "j") { j in
                var result = ir.value("load double, ptr \(ir.value("getelementptr inbounds double, ptr \(accumulators), i64 \(j)", "acc"))")
                if op.opcode == .reduceMean { result = ir.value("fdiv double \(result), \(llvmFloat(Double(reducedCount), .f64))") }
                store(ir, x.dtype, narrow(ir, x.dtype, result), "%buf1", add(ir, first, j))
            }
        }
        return (outputs + block - 1) / block
    }

    /// `slots` starts as [output]; a fused input's expression appends the buffers it reads.
    private func reduce(_ ir: IRText, _ slots: inout [Value]) throws(Diagnostic) -> Int {
        let x = type(op.operands[0])
        let dtype = x.dtype
        let axes = try op.attributes.ints("axes")
        let strides = rowMajorStrides(x.shape)
        let kept = x.shape.indices.filter { !axes.contains($0) }
        let outputs = kept.reduce(1) { $0 * x.shape[$1] }
        let reducedCount = axes.reduce(1) { $0 * x.shape[$1] }
        if dtype.isFloat, op.opcode != .reduceMax, let first = kept.first, first > 0, axes.sorted() == Array(0..<first),
            kept == Array(first..<x.rank), fusedInput == nil || kept.count == 1, outputs >= 16
        {
            return reduceLeadingAxes(ir, &slots, x: x, reducedAxes: first)
        }
        ir.loop(from: "%begin", to: "%end", "o") { o in
            // The kept indices of output element o → the base offset in x.
            var base = "0"
            var remainder = o
            var axisIndex = [String](repeating: "0", count: x.rank)
            for axis in kept.reversed() {
                let index = axis == kept.first ? remainder : ir.value("urem i64 \(remainder), \(x.shape[axis])", "ix")
                if axis != kept.first { remainder = ir.value("udiv i64 \(remainder), \(x.shape[axis])", "q") }
                base = add(ir, base, mul(ir, index, strides[axis]))
                axisIndex[axis] = index
            }
            let accumulatorType = dtype.isFloat ? "double" : dtype.llvm
            let initial: String
            switch op.opcode {
            case .reduceMax: initial = dtype.isFloat ? llvmFloat(-.infinity, .f64) : String(dtype == .i32 ? Int64(Int32.min) : Int64.min)
            default: initial = dtype.isFloat ? llvmFloat(0, .f64) : "0"
            }
            let accumulator = ir.variable(accumulatorType, initial: initial)
            func nest(_ depth: Int, _ offset: String) {
                if depth == axes.count {
                    let element: String
                    if let fused = fusedInput {
                        // The input element computed in place from the fused expression.
                        let host = ElementwiseKernel(schedule: fused.schedule, module: module, name: name, opIds: fused.opIds)
                        let last = max(x.rank - 1, 0)
                        var row = "0"
                        for axis in 0..<last where axisIndex[axis] != "0" {
                            row = add(ir, row, mul(ir, axisIndex[axis], strides[axis] / max(x.shape[last], 1)))
                        }
                        var evaluator = ElementEvaluator(
                            kernel: host, ir: ir, shape: x.shape, leading: Array(axisIndex.prefix(last)),
                            inner: x.rank == 0 ? "0" : axisIndex[last], row: row, buffers: slots, leaves: fused.leaves)
                        element = evaluator.evaluate(op.operands[0])
                        slots = evaluator.kernelBuffers
                    } else {
                        element = load(ir, dtype, "%buf2", offset)
                    }
                    let current = ir.value("load \(accumulatorType), ptr \(accumulator)")
                    let updated: String
                    if dtype.isFloat {
                        let wide = widen(ir, dtype, element)
                        if op.opcode == .reduceMax {
                            module.declare("declare double @llvm.maximum.f64(double, double)")
                            updated = ir.value("call double @llvm.maximum.f64(double \(current), double \(wide))")
                        } else {
                            updated = ir.value("fadd reassoc double \(current), \(wide)")
                        }
                    } else if op.opcode == .reduceMax {
                        updated = ir.value("select i1 \(ir.value("icmp sgt \(accumulatorType) \(element), \(current)")), \(accumulatorType) \(element), \(accumulatorType) \(current)")
                    } else {
                        updated = ir.value("add \(accumulatorType) \(current), \(element)")
                    }
                    ir.emit("store \(accumulatorType) \(updated), ptr \(accumulator)")
                    return
                }
                let axis = axes[depth]
                ir.loop(from: "0", to: String(x.shape[axis]), "r") { index in
                    axisIndex[axis] = index
                    nest(depth + 1, add(ir, offset, mul(ir, index, strides[axis])))
                }
            }
            nest(0, base)
            var result = ir.value("load \(accumulatorType), ptr \(accumulator)")
            if op.opcode == .reduceMean {
                result = ir.value("fdiv double \(result), \(llvmFloat(Double(reducedCount), .f64))")
            }
            if dtype.isFloat { result = narrow(ir, dtype, result) }
            store(ir, dtype, result, "%buf1", o)
        }
        return outputs
    }

    // MARK: softmax

    private func softmax(_ ir: IRText) throws(Diagnostic) -> Int {
        let x = type(op.operands[0])
        let dtype = x.dtype
        let axis = try op.attributes.int("axis")
        let length = x.shape[axis]
        let innerBlock = x.shape[(axis + 1)...].reduce(1, *)
        let rows = x.elementCount / max(length, 1)
        ir.loop(from: "%begin", to: "%end", "row") { row in
            let outer = ir.value("udiv i64 \(row), \(innerBlock)")
            let within = ir.value("urem i64 \(row), \(innerBlock)")
            let base = add(ir, mul(ir, outer, length * innerBlock), within)
            let maximum = ir.variable("double", initial: llvmFloat(-.infinity, .f64))
            module.declare("declare double @llvm.maximum.f64(double, double)")
            ir.loop(from: "0", to: String(length), "k") { k in
                let element = widen(ir, dtype, load(ir, dtype, "%buf2", add(ir, base, mul(ir, k, innerBlock))))
                let current = ir.value("load double, ptr \(maximum)")
                ir.emit("store double \(ir.value("call double @llvm.maximum.f64(double \(current), double \(element))")), ptr \(maximum)")
            }
            let top = ir.value("load double, ptr \(maximum)")
            let total = ir.variable("double", initial: llvmFloat(0, .f64))
            ir.loop(from: "0", to: String(length), "k") { k in
                let element = widen(ir, dtype, load(ir, dtype, "%buf2", add(ir, base, mul(ir, k, innerBlock))))
                let term = exp(ir, ir.value("fsub double \(element), \(top)"))
                ir.emit("store double \(ir.value("fadd reassoc double \(ir.value("load double, ptr \(total)")), \(term)")), ptr \(total)")
            }
            let sum = ir.value("load double, ptr \(total)")
            let logSum = op.opcode == .logSoftmax ? log(ir, sum) : ""
            ir.loop(from: "0", to: String(length), "k") { k in
                let offset = add(ir, base, mul(ir, k, innerBlock))
                let shifted = ir.value("fsub double \(widen(ir, dtype, load(ir, dtype, "%buf2", offset))), \(top)")
                let result = op.opcode == .logSoftmax
                    ? ir.value("fsub double \(shifted), \(logSum)")
                    : ir.value("fdiv double \(exp(ir, shifted)), \(sum)")
                store(ir, dtype, narrow(ir, dtype, result), "%buf1", offset)
            }
        }
        return rows
    }

    // MARK: normalisation

    private func normalize(_ ir: IRText) throws(Diagnostic) -> Int {
        let x = type(op.operands[0])
        let d = x.shape.last ?? 1
        let eps = try op.attributes.float("eps")
        ir.loop(from: "%begin", to: "%end", "row") { row in
            OpKernel.normalizeRow(
                ir, module, x.dtype, d: d, eps: eps, isLayerNorm: op.opcode == .layerNorm, base: mul(ir, row, d),
                input: "%buf2", gamma: "%buf3", beta: op.opcode == .layerNorm ? "%buf4" : nil, output: "%buf1")
        }
        return x.elementCount / max(d, 1)
    }

    /// One row of layer_norm (with `beta`) or rms_norm: statistics in double from `input[base..<base+d]`,
    /// `output[base + k] = (x − μ)·r·γ[k] (+ β[k])`. Shared by the normalisation kernel and the
    /// fused residual + normalisation kernel.
    static func normalizeRow(
        _ ir: IRText, _ module: ModuleText, _ dtype: DType, d: Int, eps: Double, isLayerNorm: Bool, base: String,
        input: String, gamma: String, beta: String?, output: String
    ) {
        func load(_ buffer: String, _ offset: String) -> String {
            let address = ir.value("getelementptr inbounds \(dtype.llvm), ptr \(buffer), i64 \(offset)", "p")
            let value = ir.value("load \(dtype.llvm), ptr \(address)", "v")
            return dtype == .f64 ? value : ir.value("fpext float \(value) to double")
        }
        func offset(_ k: String) -> String { ir.value("add nsw i64 \(base), \(k)") }
        var mean = llvmFloat(0, .f64)
        if isLayerNorm {
            let total = ir.variable("double", initial: llvmFloat(0, .f64))
            ir.loop(from: "0", to: String(d), "k") { k in
                ir.emit("store double \(ir.value("fadd reassoc double \(ir.value("load double, ptr \(total)")), \(load(input, offset(k)))")), ptr \(total)")
            }
            mean = ir.value("fdiv double \(ir.value("load double, ptr \(total)")), \(llvmFloat(Double(d), .f64))")
        }
        let squares = ir.variable("double", initial: llvmFloat(0, .f64))
        ir.loop(from: "0", to: String(d), "k") { k in
            let centered = ir.value("fsub double \(load(input, offset(k))), \(mean)")
            let square = ir.value("fmul double \(centered), \(centered)")
            ir.emit("store double \(ir.value("fadd reassoc double \(ir.value("load double, ptr \(squares)")), \(square)")), ptr \(squares)")
        }
        let variance = ir.value("fdiv double \(ir.value("load double, ptr \(squares)")), \(llvmFloat(Double(d), .f64))")
        module.declare("declare double @llvm.sqrt.f64(double)")
        let root = ir.value("call double @llvm.sqrt.f64(double \(ir.value("fadd double \(variance), \(llvmFloat(eps, .f64))")))")
        let inverse = ir.value("fdiv double \(llvmFloat(1, .f64)), \(root)")
        ir.loop(from: "0", to: String(d), "k") { k in
            let position = offset(k)
            let centered = ir.value("fsub double \(load(input, position)), \(mean)")
            var y = ir.value("fmul double \(ir.value("fmul double \(centered), \(inverse)")), \(load(gamma, k))")
            if let beta { y = ir.value("fadd double \(y), \(load(beta, k))") }
            let narrowed = dtype == .f64 ? y : ir.value("fptrunc double \(y) to float")
            let address = ir.value("getelementptr inbounds \(dtype.llvm), ptr \(output), i64 \(position)", "p")
            ir.emit("store \(dtype.llvm) \(narrowed), ptr \(address)")
        }
    }

    // MARK: cross-entropy

    /// logsumexp of row `position` of the logits in `logits` (double), and the row's base offset.
    private func logSumExp(_ ir: IRText, _ dtype: DType, _ position: String, _ classes: Int, logits: String = "%buf2") -> (String, String) {
        let base = mul(ir, position, classes)
        let maximum = ir.variable("double", initial: llvmFloat(-.infinity, .f64))
        module.declare("declare double @llvm.maximum.f64(double, double)")
        ir.loop(from: "0", to: String(classes), "v") { v in
            let element = widen(ir, dtype, load(ir, dtype, logits, add(ir, base, v)))
            ir.emit("store double \(ir.value("call double @llvm.maximum.f64(double \(ir.value("load double, ptr \(maximum)")), double \(element))")), ptr \(maximum)")
        }
        let top = ir.value("load double, ptr \(maximum)")
        let total = ir.variable("double", initial: llvmFloat(0, .f64))
        ir.loop(from: "0", to: String(classes), "v") { v in
            let element = widen(ir, dtype, load(ir, dtype, logits, add(ir, base, v)))
            let term = exp(ir, ir.value("fsub double \(element), \(top)"))
            ir.emit("store double \(ir.value("fadd reassoc double \(ir.value("load double, ptr \(total)")), \(term)")), ptr \(total)")
        }
        return (ir.value("fadd double \(top), \(log(ir, ir.value("load double, ptr \(total)")))"), base)
    }

    /// The label at `position`, whether it counts, and a range check raising kind 2.
    private func label(_ ir: IRText, _ position: String, classes: Int, ignore: Int) -> (label: String, counted: String) {
        let labels = type(op.operands[1])
        let value = loadIndex(ir, labels.dtype, "%buf3", position)
        let counted = ir.value("icmp ne i64 \(value), \(ignore)")
        let outside = ir.value("icmp uge i64 \(value), \(classes)")
        ir.when(ir.value("and i1 \(counted), \(outside)")) { raise(ir, kind: 2, value: value, bound: classes) }
        let valid = ir.value("and i1 \(counted), \(ir.value("xor i1 \(outside), true"))")
        return (ir.value("select i1 \(valid), i64 \(value), i64 0"), valid)
    }

    private func crossEntropy(_ ir: IRText) throws(Diagnostic) -> Int {
        let logits = type(op.operands[0])
        let dtype = logits.dtype
        let classes = logits.shape.last ?? 1
        let positions = logits.elementCount / max(classes, 1)
        let ignore = try op.attributes.int("ignore_index", default: -100)
        let reduction = try op.attributes.symbol("reduction", oneOf: TypeRules.crossEntropyReductions)
        let samples = reduction == "sample_mean" ? type(op.operands[1]).shape[0] : 1
        let perSample = reduction == "sample_mean" ? positions / max(samples, 1) : positions
        if reduction == "none" {
            ir.loop(from: "%begin", to: "%end", "pos") { position in
                let (lse, base) = logSumExp(ir, dtype, position, classes)
                let (label, counted) = self.label(ir, position, classes: classes, ignore: ignore)
                let picked = widen(ir, dtype, load(ir, dtype, "%buf2", add(ir, base, label)))
                let loss = ir.value("select i1 \(counted), double \(ir.value("fsub double \(lse), \(picked)")), double \(llvmFloat(0, .f64))")
                store(ir, dtype, narrow(ir, dtype, loss), "%buf1", position)
            }
            return positions
        }
        // sum / mean: one piece of work; sample_mean: one per sample.
        ir.loop(from: "%begin", to: "%end", "s") { sample in
            let total = ir.variable("double", initial: llvmFloat(0, .f64))
            let count = ir.variable("i64", initial: "0")
            ir.loop(from: "0", to: String(perSample), "k") { k in
                let position = add(ir, mul(ir, sample, perSample), k)
                let (lse, base) = logSumExp(ir, dtype, position, classes)
                let (label, counted) = self.label(ir, position, classes: classes, ignore: ignore)
                let picked = widen(ir, dtype, load(ir, dtype, "%buf2", add(ir, base, label)))
                let loss = ir.value("select i1 \(counted), double \(ir.value("fsub double \(lse), \(picked)")), double \(llvmFloat(0, .f64))")
                ir.emit("store double \(ir.value("fadd double \(ir.value("load double, ptr \(total)")), \(loss)")), ptr \(total)")
                ir.emit("store i64 \(ir.value("add i64 \(ir.value("load i64, ptr \(count)")), \(ir.value("zext i1 \(counted) to i64"))")), ptr \(count)")
            }
            var result = ir.value("load double, ptr \(total)")
            if reduction != "sum" {
                let counted = ir.value("load i64, ptr \(count)")
                let divisor = ir.value("select i1 \(ir.value("icmp sgt i64 \(counted), 1")), i64 \(counted), i64 1")
                result = ir.value("fdiv double \(result), \(ir.value("sitofp i64 \(divisor) to double"))")
            }
            store(ir, dtype, narrow(ir, dtype, result), "%buf1", sample)
        }
        return samples
    }

    private func crossEntropyGrad(_ ir: IRText) throws(Diagnostic) -> Int {
        let logits = type(op.operands[0])
        let labelsType = type(op.operands[1])
        let dtype = logits.dtype
        let classes = logits.shape.last ?? 1
        let positions = logits.elementCount / max(classes, 1)
        let ignore = try op.attributes.int("ignore_index", default: -100)
        let reduction = try op.attributes.symbol("reduction", oneOf: TypeRules.crossEntropyReductions)
        let samples = labelsType.shape.first ?? 1
        let perSample = labelsType.rank == 0 ? 1 : positions / max(samples, 1)
        ir.loop(from: "%begin", to: "%end", "pos") { position in
            // The upstream gradient of this position's loss.
            var scale: String
            switch reduction {
            case "none": scale = widen(ir, dtype, load(ir, dtype, "%buf4", position))
            case "sum": scale = widen(ir, dtype, load(ir, dtype, "%buf4", "0"))
            default:
                let isSample = reduction == "sample_mean"
                let sample = isSample ? ir.value("udiv i64 \(position), \(perSample)") : "0"
                let first = isSample ? mul(ir, sample, perSample) : "0"
                let count = ir.variable("i64", initial: "0")
                ir.loop(from: "0", to: String(isSample ? perSample : positions), "k") { k in
                    let other = loadIndex(ir, labelsType.dtype, "%buf3", add(ir, first, k))
                    let counted = ir.value("zext i1 \(ir.value("icmp ne i64 \(other), \(ignore)")) to i64")
                    ir.emit("store i64 \(ir.value("add i64 \(ir.value("load i64, ptr \(count)")), \(counted)")), ptr \(count)")
                }
                let counted = ir.value("load i64, ptr \(count)")
                let divisor = ir.value("sitofp i64 \(ir.value("select i1 \(ir.value("icmp sgt i64 \(counted), 1")), i64 \(counted), i64 1")) to double")
                scale = ir.value("fdiv double \(widen(ir, dtype, load(ir, dtype, "%buf4", sample))), \(divisor)")
            }
            let source = operand(0)
            let (lse, base) = logSumExp(ir, dtype, position, classes, logits: source)
            let (label, counted) = self.label(ir, position, classes: classes, ignore: ignore)
            let g = ir.value("select i1 \(counted), double \(scale), double \(llvmFloat(0, .f64))")
            ir.loop(from: "0", to: String(classes), "v") { v in
                let offset = add(ir, base, v)
                let probability = exp(ir, ir.value("fsub double \(widen(ir, dtype, load(ir, dtype, source, offset))), \(lse)"))
                let isLabel = ir.value("uitofp i1 \(ir.value("icmp eq i64 \(v), \(label)")) to double")
                let gradient = ir.value("fmul double \(g), \(ir.value("fsub double \(probability), \(isLabel)"))")
                store(ir, dtype, narrow(ir, dtype, gradient), "%buf1", offset)
            }
        }
        return positions
    }

    // MARK: gather / scatter

    /// Element `n` of the index tensor in `buffer`, checked against [0, bound): outside it the op's
    /// index error is raised (the kernel finishes its rows; the entry returns after it) and row 0
    /// is used instead, so no access strays. Returns that row and the `outside` flag.
    private func checkedIndex(_ ir: IRText, _ dtype: DType, _ buffer: String, _ n: String, bound: Int) -> (safe: String, outside: String) {
        let index = loadIndex(ir, dtype, buffer, n)
        let outside = ir.value("icmp uge i64 \(index), \(bound)")
        ir.when(outside) { raise(ir, kind: 1, value: index, bound: bound) }
        return (ir.value("select i1 \(outside), i64 0, i64 \(index)"), outside)
    }

    private func gather(_ ir: IRText) -> Int {
        let table = type(op.operands[0])
        let indices = type(op.operands[1])
        let rowsInTable = table.shape[0]
        let width = table.shape.dropFirst().reduce(1, *)
        let t = table.dtype
        ir.loop(from: "%begin", to: "%end", "n") { n in
            let (safe, _) = checkedIndex(ir, indices.dtype, "%buf3", n, bound: rowsInTable)
            let source = mul(ir, safe, width)
            let target = mul(ir, n, width)
            ir.loop(from: "0", to: String(width), "k") { k in
                store(ir, t, load(ir, t, "%buf2", add(ir, source, k)), "%buf1", add(ir, target, k))
            }
        }
        return indices.elementCount
    }

    /// Parallel over columns: each thread owns the columns [begin, end) of every row, copies the
    /// target there then adds the updates in index order, so each element's sum is the same for any
    /// split and no two threads write one element. Rows are walked outermost so that a thread reads
    /// and writes its columns of a row contiguously (walking a column down a [50465 × 768]
    /// embedding gradient touched a new cache line per element: ~0.3 s per scatter at batch 4). The
    /// copy is skipped when the output was planned over the target's buffer (`MemoryPlan`).
    private func scatterAdd(_ ir: IRText) -> Int {
        let target = type(op.operands[0])
        let indices = type(op.operands[1])
        let rowsInTarget = target.shape[0]
        let width = target.shape.dropFirst().reduce(1, *)
        let t = target.dtype
        let separate = ir.value("icmp ne ptr %buf1, %buf2")
        ir.when(separate) {
            ir.loop(from: "0", to: String(rowsInTarget), "r") { row in
                let base = mul(ir, row, width)
                ir.loop(from: "%begin", to: "%end", "c") { column in
                    let offset = add(ir, base, column)
                    store(ir, t, load(ir, t, "%buf2", offset), "%buf1", offset)
                }
            }
        }
        ir.loop(from: "0", to: String(indices.elementCount), "n") { n in
            let (safe, outside) = checkedIndex(ir, indices.dtype, "%buf3", n, bound: rowsInTarget)
            let targetRow = mul(ir, safe, width)
            let updateRow = mul(ir, n, width)
            ir.loop(from: "%begin", to: "%end", "c") { column in
                let offset = add(ir, targetRow, column)
                let update = load(ir, t, "%buf4", add(ir, updateRow, column))
                let current = load(ir, t, "%buf1", offset)
                let sum = t.isFloat ? ir.value("fadd \(t.llvm) \(current), \(update)") : ir.value("add \(t.llvm) \(current), \(update)")
                let kept = ir.value("select i1 \(outside), \(t.llvm) \(current), \(t.llvm) \(sum)")
                store(ir, t, kept, "%buf1", offset)
            }
        }
        return width
    }

    // MARK: pooling

    private func poolDims() throws(Diagnostic) -> (lead: Int, h: Int, w: Int, c: Int, kh: Int, kw: Int) {
        let x = type(op.operands[0])
        let window = try op.attributes.ints("window")
        let rank = x.rank
        return (x.shape[..<(rank - 3)].reduce(1, *), x.shape[rank - 3], x.shape[rank - 2], x.shape[rank - 1], window[0], window[1])
    }

    private func maxPool(_ ir: IRText) throws(Diagnostic) -> Int {
        let (lead, h, w, c, kh, kw) = try poolDims()
        let (oh, ow) = (h - kh + 1, w - kw + 1)
        let t = type(op.operands[0]).dtype
        ir.loop(from: "%begin", to: "%end", "pos") { position in
            // position = ((b · oh) + i) · ow + j
            let j = ir.value("urem i64 \(position), \(ow)")
            let rest = ir.value("udiv i64 \(position), \(ow)")
            let i = ir.value("urem i64 \(rest), \(oh)")
            let b = ir.value("udiv i64 \(rest), \(oh)")
            ir.loop(from: "0", to: String(c), "ch") { channel in
                let best = ir.variable(t.llvm, initial: llvmFloat(-.infinity, t))
                for di in 0..<kh {
                    for dj in 0..<kw {
                        let row = ir.value("add i64 \(i), \(di)")
                        let column = ir.value("add i64 \(j), \(dj)")
                        let offset = add(ir, mul(ir, add(ir, mul(ir, add(ir, mul(ir, b, h), row), w), column), c), channel)
                        let element = load(ir, t, "%buf2", offset)
                        let current = ir.value("load \(t.llvm), ptr \(best)")
                        let larger = ir.value("fcmp ogt \(t.llvm) \(element), \(current)")
                        ir.emit("store \(t.llvm) \(ir.value("select i1 \(larger), \(t.llvm) \(element), \(t.llvm) \(current)")), ptr \(best)")
                    }
                }
                store(ir, t, ir.value("load \(t.llvm), ptr \(best)"), "%buf1", add(ir, mul(ir, position, c), channel))
            }
        }
        return lead * oh * ow
    }

    /// One piece of work per leading index (windows overlap, so positions of one image are
    /// accumulated by one thread).
    private func maxPoolGrad(_ ir: IRText) throws(Diagnostic) -> Int {
        let (lead, h, w, c, kh, kw) = try poolDims()
        let (oh, ow) = (h - kh + 1, w - kw + 1)
        let t = type(op.operands[0]).dtype
        ir.loop(from: "%begin", to: "%end", "b") { b in
            let imageBase = mul(ir, b, h * w * c)
            ir.loop(from: "0", to: String(h * w * c), "z") { z in
                store(ir, t, llvmFloat(0, t), "%buf1", add(ir, imageBase, z))
            }
            ir.loop(from: "0", to: String(oh), "i") { i in
                ir.loop(from: "0", to: String(ow), "j") { j in
                    ir.loop(from: "0", to: String(c), "ch") { channel in
                        let best = ir.variable(t.llvm, initial: llvmFloat(-.infinity, t))
                        let bestOffset = ir.variable("i64", initial: "-1")
                        for di in 0..<kh {
                            for dj in 0..<kw {
                                let offset = add(ir, imageBase, add(ir, mul(ir, add(ir, mul(ir, ir.value("add i64 \(i), \(di)"), w), ir.value("add i64 \(j), \(dj)")), c), channel))
                                let element = load(ir, t, "%buf2", offset)
                                let current = ir.value("load \(t.llvm), ptr \(best)")
                                let unset = ir.value("icmp eq i64 \(ir.value("load i64, ptr \(bestOffset)")), -1")
                                let larger = ir.value("or i1 \(unset), \(ir.value("fcmp ogt \(t.llvm) \(element), \(current)"))")
                                ir.emit("store \(t.llvm) \(ir.value("select i1 \(larger), \(t.llvm) \(element), \(t.llvm) \(current)")), ptr \(best)")
                                ir.emit("store i64 \(ir.value("select i1 \(larger), i64 \(offset), i64 \(ir.value("load i64, ptr \(bestOffset)"))")), ptr \(bestOffset)")
                            }
                        }
                        let target = ir.value("load i64, ptr \(bestOffset)")
                        let gradientOffset = add(ir, mul(ir, add(ir, mul(ir, add(ir, mul(ir, b, oh), i), ow), j), c), channel)
                        let gradient = load(ir, t, "%buf3", gradientOffset)
                        let current = load(ir, t, "%buf1", target)
                        store(ir, t, ir.value("fadd \(t.llvm) \(current), \(gradient)"), "%buf1", target)
                    }
                }
            }
        }
        return lead
    }
}
