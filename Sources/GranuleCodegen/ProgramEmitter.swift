import GranuleIR
import GranuleSupport

/// A compiled program: LLVM IR text for every function of a module, the manifest the runtime
/// reads, and per-function facts for `granule stats`.
public struct CompiledProgram: Sendable {
    public var llvmText: String
    public var manifest: String
    public var functions: [FunctionSummary]

    public struct FunctionSummary: Sendable {
        public var name: String
        public var kernels: Int
        public var gemms: Int
        public var arenaBytes: Int
        /// Bytes of parameters, results and arena together (a result in place counted once, with its
        /// parameter).
        public var peakBytes: Int
        /// `peakBytes` when the caller lets the function release mapped parameters between reads
        /// (`gr_release_param`): the released ones count only while mapped.
        public var peakBytesReleased: Int
        /// Floating-point operations of one call (GEMMs as 2·m·n·k, elementwise ops one each).
        public var flops: Int
        /// The schedule in readable form (`granule stats --schedule`).
        public var schedule: String
    }
}

/// Turns a verified module into LLVM IR text for the C runtime's ABI
/// (`Runtime/include/granule_runtime.h`): `granule_entries[k](args, arena, rt)` runs function k,
/// `granule_manifest` describes every function's parameters, results and arena size, and the ops
/// that can report run-time errors.
///
/// Per function: `Schedule` (fusion and views) → `MemoryPlan` (arena offsets) → one LLVM
/// function per kernel, run by `gr_parallel_for` over its rows, and GEMMs as `cblas_sgemm` calls
/// with the transposes as flags, split over the pool by rows, columns or batches (OpenBLAS runs
/// single-threaded inside). Bias epilogues are the GEMM's beta = 1 over a broadcast bias; other
/// epilogues live in the fused row kernels that read the GEMM output, not inside the GEMM.
public struct ProgramEmitter {
    /// With `profile`, every kernel launch and GEMM is preceded by `gr_profile_step(rt, i)` and
    /// the manifest lists the steps' descriptions (`MODEL bench --profile` prints the time per step).
    public var profile: Bool

    public init(profile: Bool = false) { self.profile = profile }

    /// `generation`: the manifest's optional `generation` object (ModelSpec.generationConfig).
    public func emit(_ module: Module, generation: JSON? = nil) throws(Diagnostic) -> CompiledProgram {
        let text = ModuleText()
        text.declare("declare void @gr_parallel_for(ptr, ptr, i64, ptr)")
        text.declare("declare void @gr_raise(ptr, i32, i32, i64, i64)")
        text.declare("declare i32 @gr_failed(ptr)")
        if profile { text.declare("declare void @gr_profile_step(ptr, i32)") }
        var opDescriptions: [String] = []
        var profileSteps: [String] = []
        var manifestFunctions: [JSON] = []
        var summaries: [CompiledProgram.FunctionSummary] = []
        for (index, function) in module.functions.enumerated() {
            var emitter = FunctionEmitter(function: function, index: index, module: text, firstOpId: opDescriptions.count)
            emitter.firstProfileStep = profile ? profileSteps.count : nil
            try emitter.emit()
            opDescriptions += emitter.opDescriptions
            if profile {
                // One entry per step: buffer placements and releases are schedule lines, not steps.
                let steps = emitter.summary.schedule.split(separator: "\n").filter { !$0.hasPrefix("buffer ") && !$0.hasPrefix("release ") }
                profileSteps += steps.map { "\(function.name): \($0)" }
            }
            manifestFunctions.append(emitter.manifestEntry)
            summaries.append(emitter.summary)
        }
        let manifest = JSON.object([
            ("version", .number("1")),
            ("functions", .array(manifestFunctions)),
            ("ops", .array(opDescriptions.map { .string($0) })),
            ("step_function", .string(module.functions.first { $0.name.hasSuffix("_grad") }?.name ?? module.functions.first?.name ?? "")),
        ] + (generation.map { [("generation", $0)] } ?? []) + (profile ? [("profile", .array(profileSteps.map { .string($0) }))] : [])).text
        text.addGlobal("@granule_manifest = constant [\(manifest.utf8.count + 1) x i8] c\"\(llvmStringLiteral(manifest))\\00\", align 1")
        let entries = module.functions.indices.map { "ptr @granule_entry_\($0)" }.joined(separator: ", ")
        text.addGlobal("@granule_entries = constant [\(module.functions.count) x ptr] [\(entries)], align 8")
        return CompiledProgram(llvmText: text.text, manifest: manifest, functions: summaries)
    }
}

/// Escapes bytes for an LLVM `c"..."` string.
func llvmStringLiteral(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
            out.append(Character(Unicode.Scalar(byte)))
        } else {
            out += "\\" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
        }
    }
    return out
}

/// Emits one IR function: its kernels and its entry.
struct FunctionEmitter {
    let function: Function
    let index: Int
    let module: ModuleText
    let firstOpId: Int
    /// The profile index of this function's first step, when profiling (ProgramEmitter.profile).
    var firstProfileStep: Int?
    let schedule: Schedule
    let plan: MemoryPlan
    let releases: ParameterReleasePlan
    private(set) var opDescriptions: [String] = []
    private(set) var opIds: [Value: Int] = [:]
    private(set) var manifestEntry: JSON = .null
    private(set) var summary = CompiledProgram.FunctionSummary(
        name: "", kernels: 0, gemms: 0, arenaBytes: 0, peakBytes: 0, peakBytesReleased: 0, flops: 0, schedule: "")

    init(function: Function, index: Int, module: ModuleText, firstOpId: Int) {
        self.function = function
        self.index = index
        self.module = module
        self.firstOpId = firstOpId
        schedule = Schedule(function)
        plan = MemoryPlan(schedule)
        releases = ParameterReleasePlan(function, reads: plan.reads)
        for op in function.operations {
            opIds[op.result] = firstOpId + opDescriptions.count
            let place = op.location.map { "\($0): " } ?? "@\(function.name): "
            opDescriptions.append("\(place)\(op.opcode.name) %\(function.name(of: op.result))")
        }
    }

    var entryName: String { "granule_entry_\(index)" }

    mutating func emit() throws(Diagnostic) {
        let entry = IRText()
        entry.begin()
        // GEMMs are threaded by Granule's pool: OpenBLAS itself runs on the calling thread.
        module.declare("declare void @openblas_set_num_threads(i32)")
        entry.emit("call void @openblas_set_num_threads(i32 1)")
        var pointers: [Value: String] = [:]
        let parameterCount = function.parameters.count
        func pointer(_ value: Value) -> String {
            if let known = pointers[value] { return known }
            if let integer = KernelImmediate.integer(value) { return "inttoptr (i64 \(integer) to ptr)" }
            guard value.id >= 0 else { return "null" }
            let name: String
            switch plan.locations[value] {
            case .parameter(let slot)?:
                let address = entry.value("getelementptr ptr, ptr %args, i64 \(slot)", "a")
                name = entry.value("load ptr, ptr \(address)", "arg")
            case .result(let slot)?:
                let address = entry.value("getelementptr ptr, ptr %args, i64 \(parameterCount + slot)", "a")
                name = entry.value("load ptr, ptr \(address)", "res")
            case .arena(let offset)?:
                name = entry.value("getelementptr inbounds i8, ptr %arena, i64 \(offset)", "buf")
            case nil:
                name = "null"
            }
            pointers[value] = name
            return name
        }
        func resultPointer(_ slot: Int) -> String {
            let address = entry.value("getelementptr ptr, ptr %args, i64 \(parameterCount + slot)", "a")
            return entry.value("load ptr, ptr \(address)", "res")
        }

        var kernels = 0
        var gemms = 0
        var flops = 0
        var scheduleLines: [String] = []
        for (stepIndex, step) in schedule.steps.enumerated() {
            let kernelName = "f\(index)_k\(stepIndex)"
            if let first = firstProfileStep { entry.emit("call void @gr_profile_step(ptr %rt, i32 \(first + stepIndex))") }
            switch step {
            case .elementwise(let root, let leaves):
                var kernel = ElementwiseKernel(schedule: schedule, module: module, name: kernelName, opIds: opIds)
                kernel.inPlaceInputs = plan.inPlaceDonors[root].map { [$0] } ?? []
                let (text, rows) = kernel.emit(root: root, leaves: leaves, source: nil, type: function.type(of: root), output: root)
                let callee = module.addKernel(kernelName, text)
                if let parameter = parameterWrittenInPlace(by: root), kernel.buffers.contains(parameter) {
                    // The caller may bind this result in its parameter's buffer (an AdamW update).
                    // Then a second variant reads the parameter through the output's pointer: with
                    // two pointers to the same memory, LLVM's overlap check fails and the whole
                    // update runs in the scalar loop. The pointers are loaded before the branch.
                    var variant = ElementwiseKernel(schedule: schedule, module: module, name: kernelName + "_in_place", opIds: opIds)
                    variant.inPlaceInputs = kernel.inPlaceInputs.union([parameter])
                    let (variantText, _) = variant.emit(root: root, leaves: leaves, source: nil, type: function.type(of: root), output: root)
                    let variantCallee = module.addKernel(kernelName + "_in_place", variantText)
                    let separateBuffers = kernel.buffers.map(pointer), sharedBuffers = variant.buffers.map(pointer)
                    let same = entry.value("icmp eq ptr \(pointer(root)), \(pointer(parameter))")
                    let (shared, separate, joined) = (entry.label("shared"), entry.label("separate"), entry.label("joined"))
                    entry.emit("br i1 \(same), label %\(shared), label %\(separate)")
                    entry.startBlock(shared)
                    launch(entry, variantCallee, rows: rows, buffers: sharedBuffers, checks: variant.mayRaise)
                    entry.emit("br label %\(joined)")
                    entry.startBlock(separate)
                    launch(entry, callee, rows: rows, buffers: separateBuffers, checks: kernel.mayRaise)
                    entry.emit("br label %\(joined)")
                    entry.startBlock(joined)
                } else {
                    launch(entry, callee, rows: rows, buffers: kernel.buffers.map(pointer), checks: kernel.mayRaise)
                }
                kernels += 1
                flops = saturating(flops, function.type(of: root).elementCount, fusedOpCount(root))
                scheduleLines.append("kernel \(kernelName): elementwise %\(function.name(of: root)) \(function.type(of: root)) fusing \(fusedOpCount(root)) ops, \(rows) rows")
            case .elementwiseNorm(let root, let leaves, let normIndex, let weights):
                let normOp = function.operations[normIndex]
                var kernel = ElementwiseKernel(schedule: schedule, module: module, name: kernelName, opIds: opIds)
                let (text, rows) = kernel.emit(root: root, leaves: leaves, source: nil, type: function.type(of: root), output: root, norm: (normOp, weights))
                let callee = module.addKernel(kernelName, text)
                launch(entry, callee, rows: rows, buffers: kernel.buffers.map(pointer), checks: kernel.mayRaise)
                kernels += 1
                flops = saturating(flops, function.type(of: root).elementCount, fusedOpCount(root) + 8)
                scheduleLines.append("kernel \(kernelName): elementwise %\(function.name(of: root)) \(function.type(of: root)) fusing \(fusedOpCount(root)) ops + \(normOp.opcode.name) %\(function.name(of: normOp.result)), \(rows) rows")
            case .copy(let source, let target):
                var kernel = ElementwiseKernel(schedule: schedule, module: module, name: kernelName, opIds: opIds)
                let (text, rows) = kernel.emit(root: nil, source: source, type: function.type(of: target), output: target)
                let callee = module.addKernel(kernelName, text)
                launch(entry, callee, rows: rows, buffers: kernel.buffers.map(pointer), checks: false)
                kernels += 1
                scheduleLines.append("kernel \(kernelName): copy into %\(function.name(of: target)) \(function.type(of: target))")
            case .copyToResult(let source, let slot):
                let type = function.type(of: function.results[slot].value)
                var kernel = ElementwiseKernel(schedule: schedule, module: module, name: kernelName, opIds: opIds)
                // The result buffer is not a value of the function: a key no leaf can share stands in
                // for it, and its pointer is substituted below.
                let (text, rows) = kernel.emit(root: nil, source: source, type: type, output: Value(-1 - slot))
                let callee = module.addKernel(kernelName, text)
                var buffers = kernel.buffers.map(pointer)
                buffers[0] = resultPointer(slot)
                launch(entry, callee, rows: rows, buffers: buffers, checks: false)
                kernels += 1
                scheduleLines.append("kernel \(kernelName): copy into result '\(function.results[slot].name)'")
            case .gemm(let opIndex, let operands, let output, let accumulate):
                let op = function.operations[opIndex]
                let dims = try TypeRules.matmulDims(function.type(of: op.operands[0]), function.type(of: op.operands[1]), op.attributes)
                try emitMatmul(entry, op, a: pointer(operands[0]), b: pointer(operands[1]), c: pointer(output), accumulate: accumulate, name: kernelName)
                gemms += 1
                let batch = dims.batch.reduce(1, *)
                flops = saturating(flops, 2, batch, dims.m, dims.n, dims.k)
                scheduleLines.append("gemm %\(function.name(of: output)) = \(batch) × [\(dims.m)×\(dims.k)]·[\(dims.k)×\(dims.n)]\(accumulate ? " + bias (epilogue)" : "")")
            case .op(let opIndex, let operands, let leaves):
                let op = function.operations[opIndex]
                var kernel = OpKernel(function: function, op: op, name: kernelName, opId: opIds[op.result] ?? -1, module: module)
                let fused = operands.isEmpty && !op.operands.isEmpty
                if fused { kernel.fusedInput = (schedule, leaves, opIds) }
                kernel.inPlaceDonor = plan.inPlaceDonors[op.result]
                let (text, rows, inputs) = try kernel.emit()
                let callee = module.addKernel(kernelName, text)
                launch(entry, callee, rows: rows, buffers: [pointer(op.result)] + (fused ? inputs : operands).map(pointer), checks: kernel.mayRaise || fused)
                kernels += 1
                flops = saturating(flops, function.type(of: op.operands[0]).elementCount, fused ? fusedOpCount(op.operands[0]) + 1 : 4)
                let fusing = fused ? " fusing \(fusedOpCount(op.operands[0])) ops" : ""
                scheduleLines.append("kernel \(kernelName): \(op.opcode.name) %\(function.name(of: op.result)) \(function.type(of: op.result))\(fusing), \(rows) rows")
            }
            for parameter in releases.after[stepIndex] ?? [] {
                module.declare("declare void @gr_release_param(ptr, i32)")
                entry.emit("call void @gr_release_param(ptr %rt, i32 \(parameter))")
                scheduleLines.append("release %\(function.name(of: function.parameters[parameter].value)) if mapped")
            }
        }
        if firstProfileStep != nil { entry.emit("call void @gr_profile_step(ptr %rt, i32 -1)") }
        entry.emit("ret i32 0")
        entry.startBlock("fail")
        entry.emit("ret i32 1")
        module.addFunction("define i32 @\(entryName)(ptr %args, ptr %arena, ptr %rt) {\n" + entry.body + "\n}\n")

        let function = self.function
        func bytes(_ value: Value) -> Int { function.type(of: value).elementCount * function.type(of: value).dtype.byteSize }
        // A result in place shares its parameter's buffer (as `train` binds it): counted once.
        let separateResults = function.results.indices.filter { !plan.inPlaceResults.contains($0) }
        let externalBytes = function.parameters.reduce(0) { $0 + bytes($1.value) } + separateResults.reduce(0) { $0 + bytes(function.results[$1].value) }
        manifestEntry = manifestJSON()
        for (value, location) in plan.locations.sorted(by: { $0.key < $1.key }) {
            if case .arena(let offset) = location {
                scheduleLines.append("buffer %\(function.name(of: value)) \(function.type(of: value)) at arena+\(offset)")
            }
        }
        for index in plan.inPlaceResults.sorted() {
            let result = function.results[index]
            scheduleLines.append("result \(result.name) may be computed in place over %\(function.name(of: result.writes!))")
        }
        summary = CompiledProgram.FunctionSummary(
            name: function.name, kernels: kernels, gemms: gemms, arenaBytes: plan.arenaBytes,
            peakBytes: plan.arenaBytes + externalBytes,
            peakBytesReleased: plan.arenaBytes + externalBytes - releases.listedBytes + releases.peakListedBytes,
            flops: flops, schedule: scheduleLines.joined(separator: "\n"))
    }

    /// `total + Π factors`, stopping at Int.max: legal shapes (each up to 2^40 elements) can
    /// multiply past 2^63 in a FLOP count, which is a statistic, not a reason to trap.
    private func saturating(_ total: Int, _ factors: Int...) -> Int {
        var product = 1
        for factor in factors {
            let (next, overflow) = product.multipliedReportingOverflow(by: factor)
            if overflow { return Int.max }
            product = next
        }
        let (sum, overflow) = total.addingReportingOverflow(product)
        return overflow ? Int.max : sum
    }

    /// Ops computed by an elementwise kernel: the root and everything inlined into it.
    private func fusedOpCount(_ root: Value) -> Int {
        var count = 1
        var stack = schedule.op(root)?.operands ?? []
        var seen: Set<Value> = []
        while let value = stack.popLast() {
            guard schedule.inlined.contains(value), seen.insert(value).inserted, let op = schedule.op(value) else { continue }
            count += 1
            stack += op.operands
        }
        return count
    }

    /// Calls `gr_parallel_for(rt, kernel, rows, ctx)` with ctx = [rt, buffers...].
    private func launch(_ entry: IRText, _ kernel: String, rows: Int, buffers: [String], checks: Bool) {
        let context = entry.value("alloca [\(buffers.count + 1) x ptr], align 8", "ctx")
        entry.emit("store ptr %rt, ptr \(context)")
        for (slot, buffer) in buffers.enumerated() {
            let address = entry.value("getelementptr ptr, ptr \(context), i64 \(slot + 1)", "a")
            entry.emit("store ptr \(buffer), ptr \(address)")
        }
        entry.emit("call void @gr_parallel_for(ptr %rt, ptr @\(kernel), i64 \(rows), ptr \(context))")
        if checks {
            let failed = entry.value("call i32 @gr_failed(ptr %rt)", "failed")
            let next = entry.label("ok")
            entry.emit("br i1 \(entry.value("icmp ne i32 \(failed), 0")), label %fail, label %\(next)")
            entry.startBlock(next)
        }
    }

    /// GEMMs through `cblas_?gemm`, threaded by the runtime's pool rather than by OpenBLAS (which
    /// runs single-threaded, so that its spinning workers never compete with Granule's): a single
    /// GEMM (or a shared right-hand matrix times every batch's rows, stacked) is split into column
    /// blocks when it is wider than tall (each thread then packs only its part of B), else into row
    /// blocks; batched GEMMs are split by batch. An f32 A·Bᵀ with few rows per call goes to the
    /// runtime's `gr_sgemm_nt` instead (see `usesFewRowKernel`), and an f32 op(A)·B with a small B
    /// and few rows to `gr_sgemm_small` (see `usesSmallKernel`).
    private func emitMatmul(_ entry: IRText, _ op: Operation, a: String, b: String, c: String, accumulate: Bool, name: String) throws(Diagnostic) {
        let aType = function.type(of: op.operands[0])
        let bType = function.type(of: op.operands[1])
        let dims = try TypeRules.matmulDims(aType, bType, op.attributes)
        let transposeA = try op.attributes.bool("transpose_a")
        let transposeB = try op.attributes.bool("transpose_b")
        let isDouble = aType.dtype == .f64
        let (routine, scalar) = isDouble ? ("cblas_dgemm", "double") : ("cblas_sgemm", "float")
        module.declare("declare void @\(routine)(i32, i32, i32, i32, i32, i32, \(scalar), ptr, i32, ptr, i32, \(scalar), ptr, i32)")
        let batch = dims.batch.reduce(1, *)
        let elementSize = aType.dtype.byteSize
        let lda = max(1, transposeA ? dims.m : dims.k)
        let ldb = max(1, transposeB ? dims.k : dims.n)
        let ldc = max(1, dims.n)
        let one = llvmFloat(1, aType.dtype)
        let beta = llvmFloat(accumulate ? 1 : 0, aType.dtype)
        let sharedB = bType.rank == 2
        let stacked = batch == 1 || (sharedB && !transposeA)
        let rowsPerCall = stacked ? batch * dims.m : dims.m
        let fewRows = !isDouble && Self.usesFewRowKernel(rowsPerCall: rowsPerCall, k: dims.k,
                                                         transposeA: transposeA, transposeB: transposeB)
        let smallB = !isDouble && Self.usesSmallKernel(rowsPerCall: rowsPerCall, k: dims.k, n: dims.n, transposeB: transposeB)
        if fewRows {
            module.declare("declare void @gr_sgemm_nt(i64, i64, i64, ptr, i64, ptr, i64, float, ptr, i64)")
        }
        if smallB {
            module.declare("declare void @gr_sgemm_small(i32, i64, i64, i64, ptr, i64, ptr, i64, float, ptr, i64)")
        }

        let kernel = IRText()
        kernel.begin()
        let pointers = (1...3).map { slot -> String in
            let address = kernel.value("getelementptr ptr, ptr %ctx, i64 \(slot)", "a")
            return kernel.value("load ptr, ptr \(address)", "m")
        }
        /// C[rows × columns] (+)= A·op(B) for `rows` and `columns` given as i64 IR values.
        func call(_ rows: String, _ columns: String, _ aPointer: String, _ bPointer: String, _ cPointer: String) {
            if fewRows {
                kernel.emit("call void @gr_sgemm_nt(i64 \(rows), i64 \(columns), i64 \(dims.k), ptr \(aPointer), i64 \(lda), ptr \(bPointer), i64 \(ldb), float \(beta), ptr \(cPointer), i64 \(ldc))")
                return
            }
            if smallB {
                kernel.emit("call void @gr_sgemm_small(i32 \(transposeA ? 1 : 0), i64 \(rows), i64 \(columns), i64 \(dims.k), ptr \(aPointer), i64 \(lda), ptr \(bPointer), i64 \(ldb), float \(beta), ptr \(cPointer), i64 \(ldc))")
                return
            }
            let m = kernel.value("trunc i64 \(rows) to i32")
            let n = kernel.value("trunc i64 \(columns) to i32")
            kernel.emit("call void @\(routine)(i32 101, i32 \(transposeA ? 112 : 111), i32 \(transposeB ? 112 : 111), i32 \(m), i32 \(n), i32 \(dims.k), \(scalar) \(one), ptr \(aPointer), i32 \(lda), ptr \(bPointer), i32 \(ldb), \(scalar) \(beta), ptr \(cPointer), i32 \(ldc))")
        }
        let work: Int
        if stacked && dims.n > batch * dims.m {
            // Columns [begin, end): each thread packs all of A (the smaller operand) and only its
            // part of B, instead of every thread packing all of B.
            work = dims.n
            let columns = kernel.value("sub i64 %end, %begin")
            let bOffset = kernel.value("mul i64 %begin, \((transposeB ? ldb : 1) * elementSize)")
            let cOffset = kernel.value("mul i64 %begin, \(elementSize)")
            let bBlock = kernel.value("getelementptr i8, ptr \(pointers[1]), i64 \(bOffset)", "pb")
            let cBlock = kernel.value("getelementptr i8, ptr \(pointers[2]), i64 \(cOffset)", "pc")
            call(String(batch * dims.m), columns, pointers[0], bBlock, cBlock)
        } else if stacked {
            // Rows [begin, end) of the (stacked) product.
            work = batch * dims.m
            let rows = kernel.value("sub i64 %end, %begin")
            let aOffset = kernel.value("mul i64 %begin, \((transposeA ? 1 : lda) * elementSize)")
            let cOffset = kernel.value("mul i64 %begin, \(ldc * elementSize)")
            call(rows, String(dims.n), kernel.value("getelementptr i8, ptr \(pointers[0]), i64 \(aOffset)", "pa"), pointers[1],
                kernel.value("getelementptr i8, ptr \(pointers[2]), i64 \(cOffset)", "pc"))
        } else {
            // Whole GEMMs for batches [begin, end).
            work = batch
            kernel.loop(from: "%begin", to: "%end", "batch") { index in
                let aOffset = kernel.value("mul i64 \(index), \(dims.m * dims.k * elementSize)")
                let bOffset = sharedB ? "0" : kernel.value("mul i64 \(index), \(dims.k * dims.n * elementSize)")
                let cOffset = kernel.value("mul i64 \(index), \(dims.m * dims.n * elementSize)")
                call(String(dims.m), String(dims.n),
                    kernel.value("getelementptr i8, ptr \(pointers[0]), i64 \(aOffset)", "pa"),
                    kernel.value("getelementptr i8, ptr \(pointers[1]), i64 \(bOffset)", "pb"),
                    kernel.value("getelementptr i8, ptr \(pointers[2]), i64 \(cOffset)", "pc"))
            }
        }
        kernel.emit("ret void")
        let text = "define internal void @\(name)(i64 %begin, i64 %end, ptr %ctx) {\n" + kernel.body + "\n}\n"
        let callee = module.addKernel(name, text)
        if dims.m > 0 && dims.n > 0 { launch(entry, callee, rows: work, buffers: [a, b, c], checks: false) }
    }

    /// Whether a GEMM goes to `gr_sgemm_nt` rather than OpenBLAS: A·Bᵀ (B's rows contiguous in k)
    /// with at most 64 rows per call and k ≤ 1024. Measured on one core here (`bench/gemm_few_rows.py`):
    /// 1.07–1.4× OpenBLAS's GFLOP/s at 32–64 rows, 1.5–2.7× at 4–10 rows, at par at 128 rows and
    /// slower at 224 rows or k = 3072, where packing B pays off.
    static func usesFewRowKernel(rowsPerCall: Int, k: Int, transposeA: Bool, transposeB: Bool) -> Bool {
        transposeB && !transposeA && rowsPerCall <= 64 && k <= 1024
    }

    /// Whether a GEMM goes to `gr_sgemm_small` rather than OpenBLAS: op(A)·B with B row-major and at
    /// most 8192 floats (32 KiB, so it stays in L1 unpacked) and at most 64 rows per call: attention's
    /// per-head products (P·V, Pᵀ·dO, dS·K, dSᵀ·Q) and a generation step's. Measured on one core here
    /// (`bench/gemm_few_rows.py`): 1.2–1.5× OpenBLAS's GFLOP/s at [56×56]·[56×64], 2.1–3.0× at 10
    /// rows or k = 10, 2.7–3.3× for one row; in a BART-base training step at batch 32, attention's
    /// batched GEMMs took 101 ms instead of 111 (there they wait on memory more than on FMAs).
    static func usesSmallKernel(rowsPerCall: Int, k: Int, n: Int, transposeB: Bool) -> Bool {
        !transposeB && rowsPerCall <= 64 && k * n <= 8192
    }

    /// The parameter that `value`, a function result the memory plan allows in place, writes.
    private func parameterWrittenInPlace(by value: Value) -> Value? {
        guard let index = function.results.firstIndex(where: { $0.value == value }), plan.inPlaceResults.contains(index) else { return nil }
        return function.results[index].writes
    }

    private func manifestJSON() -> JSON {
        func describe(_ value: Value) -> [(key: String, value: JSON)] {
            let type = function.type(of: value)
            return [
                ("dtype", .string(type.dtype.rawValue)),
                ("shape", .array(type.shape.map { .number(String($0)) })),
            ]
        }
        let released = Set(releases.after.values.joined())
        let parameters = function.parameters.enumerated().map { index, parameter -> JSON in
            let release: [(key: String, value: JSON)] = released.contains(index) ? [("released", .bool(true))] : []
            return .object([("name", .string(function.name(of: parameter.value)))] + describe(parameter.value)
                + [("role", .string(parameter.role.rawValue))] + release)
        }
        let results = function.results.enumerated().map { index, result -> JSON in
            let writes = result.writes.flatMap { target in function.parameters.firstIndex { $0.value == target } } ?? -1
            let inPlace: [(key: String, value: JSON)] = plan.inPlaceResults.contains(index) ? [("in_place", .bool(true))] : []
            return .object([("name", .string(result.name))] + describe(result.value) + [("writes", .number(String(writes)))] + inPlace)
        }
        return .object([
            ("name", .string(function.name)),
            ("arena_bytes", .number(String(plan.arenaBytes))),
            ("params", .array(parameters)),
            ("results", .array(results)),
        ])
    }
}
