import CLLVM
import Foundation
import Glibc
import GranuleIR

/// The LLVM side of code generation, through LLVM 19's C API: parse the textual IR that the
/// emitters produce, optimise it with the new pass manager for a target CPU, and either write a
/// PIC object file (AOT) or hand it to ORC's LLJIT.
///
/// Kernels are produced as LLVM IR text rather than builder calls: the text is what `--emit-llvm`
/// shows users, and it keeps each emitter readable. Everything after the text goes through the
/// C API.
public struct LLVMToolchain: Sendable {
    /// The CPU to optimise for (`znver4`, `x86-64-v3`, ...); nil means the host.
    public var targetCPU: String?
    public var optimizationLevel = 3

    public init(targetCPU: String? = nil) { self.targetCPU = targetCPU }

    /// Registers the native target once per process (Swift runs a static's initialiser once,
    /// thread-safely; LLVM's registration is not meant to race).
    private static let targetsInitialized: Bool = {
        LLVMInitializeNativeTarget()
        LLVMInitializeNativeAsmPrinter()
        LLVMInitializeNativeAsmParser()
        return true
    }()

    static func initializeTargets() { _ = targetsInitialized }

    /// Parses and verifies `text` into a new module owned by `context`.
    static func parse(_ text: String, context: LLVMContextRef) throws(Diagnostic) -> LLVMModuleRef {
        let buffer = text.withCString { pointer in
            LLVMCreateMemoryBufferWithMemoryRangeCopy(pointer, strlen(pointer), "granule")
        }
        var module: LLVMModuleRef?
        var message: UnsafeMutablePointer<CChar>?
        if LLVMParseIRInContext(context, buffer, &module, &message) != 0 {
            let detail = message.map { String(cString: $0) } ?? "unknown error"
            LLVMDisposeMessage(message)
            throw Diagnostic("internal: generated LLVM IR does not parse: \(detail)")
        }
        guard let module else { throw Diagnostic("internal: LLVM returned no module") }
        var verifyMessage: UnsafeMutablePointer<CChar>?
        if LLVMVerifyModule(module, LLVMReturnStatusAction, &verifyMessage) != 0 {
            let detail = verifyMessage.map { String(cString: $0) } ?? ""
            LLVMDisposeMessage(verifyMessage)
            LLVMDisposeModule(module)
            throw Diagnostic("internal: generated LLVM IR does not verify: \(detail)")
        }
        LLVMDisposeMessage(verifyMessage)
        return module
    }

    /// A target machine for the host triple and the chosen CPU, PIC (Debian links PIE).
    func makeTargetMachine() throws(Diagnostic) -> LLVMTargetMachineRef {
        LLVMToolchain.initializeTargets()
        let triple = LLVMGetDefaultTargetTriple()
        defer { LLVMDisposeMessage(triple) }
        var target: LLVMTargetRef?
        var message: UnsafeMutablePointer<CChar>?
        if LLVMGetTargetFromTriple(triple, &target, &message) != 0 {
            let detail = message.map { String(cString: $0) } ?? ""
            LLVMDisposeMessage(message)
            throw Diagnostic("cannot target \(String(cString: triple!)): \(detail)")
        }
        let hostCPU = LLVMGetHostCPUName()
        let hostFeatures = LLVMGetHostCPUFeatures()
        defer {
            LLVMDisposeMessage(hostCPU)
            LLVMDisposeMessage(hostFeatures)
        }
        let cpu = targetCPU ?? String(cString: hostCPU!)
        let features = targetCPU == nil ? String(cString: hostFeatures!) : ""
        if let targetCPU, let known = LLVMToolchain.knownCPUs(triple: String(cString: triple!)), !known.contains(targetCPU) {
            // LLVM would only warn, then abort in code generation ("64-bit code requested on a
            // subtarget that doesn't support it").
            throw Diagnostic("--target-cpu '\(targetCPU)' is not a CPU LLVM knows for \(String(cString: triple!)) "
                + "(the list: \(LLVMToolchain.llc) -mcpu=help; the default is this machine's, \(String(cString: hostCPU!)))")
        }
        guard let machine = LLVMCreateTargetMachine(
            target, triple, cpu, features, LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelDefault)
        else { throw Diagnostic("cannot create a target machine for CPU '\(cpu)'") }
        return machine
    }

    /// LLVM 19's `llc`, whose `-mcpu=help` lists the CPUs of a target (the C API has no such list).
    static let llc = "/usr/lib/llvm-19/bin/llc"

    /// The CPU names LLVM accepts for `triple`, or nil when `llc` cannot tell (not installed).
    static func knownCPUs(triple: String) -> Set<String>? {
        guard FileManager.default.isExecutableFile(atPath: llc) else { return nil }
        let errors = Pipe()
        guard let process = try? ToolProcess.start([llc, "-mtriple=\(triple)", "-mcpu=help"], output: FileHandle.nullDevice, errors: errors)
        else { return nil }
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // "Available CPUs for this target:", then "  name - Select the name processor.", then features.
        guard let start = text.range(of: "Available CPUs for this target:") else { return nil }
        var names: Set<String> = []
        for line in text[start.upperBound...].split(separator: "\n") {
            if line.hasPrefix("Available features") { break }
            if let name = line.split(separator: " ").first, line.contains(" - ") { names.insert(String(name)) }
        }
        return names.isEmpty ? nil : names
    }

    /// Runs `default<O3>` (or the chosen level) over the module.
    func optimize(_ module: LLVMModuleRef, machine: LLVMTargetMachineRef) throws(Diagnostic) {
        let triple = LLVMGetTargetMachineTriple(machine)
        LLVMSetTarget(module, triple)
        LLVMDisposeMessage(triple)
        let layout = LLVMCreateTargetDataLayout(machine)
        LLVMSetModuleDataLayout(module, layout)
        LLVMDisposeTargetData(layout)
        let options = LLVMCreatePassBuilderOptions()
        defer { LLVMDisposePassBuilderOptions(options) }
        LLVMPassBuilderOptionsSetLoopVectorization(options, 1)
        LLVMPassBuilderOptionsSetSLPVectorization(options, 1)
        if let error = LLVMRunPasses(module, "default<O\(optimizationLevel)>", machine, options) {
            throw Diagnostic("LLVM optimisation failed: \(LLVMToolchain.consume(error))")
        }
    }

    /// Parses and optimises `text`, then hands the module and its target machine to `body`.
    private func withOptimizedModule<T>(_ text: String, _ body: (LLVMModuleRef, LLVMTargetMachineRef) throws(Diagnostic) -> T) throws(Diagnostic) -> T {
        let context = LLVMContextCreate()
        defer { LLVMContextDispose(context) }
        let module = try LLVMToolchain.parse(text, context: context!)
        defer { LLVMDisposeModule(module) }
        let machine = try makeTargetMachine()
        defer { LLVMDisposeTargetMachine(machine) }
        try optimize(module, machine: machine)
        return try body(module, machine)
    }

    /// Compiles `text` into `parts` object files (`<pathPrefix>.<i>.o`) on as many threads, each
    /// holding a share of the kernels and entry functions (`ModulePartition`); returns their paths.
    public func emitObjects(_ text: String, pathPrefix: String, parts: Int) throws(Diagnostic) -> [String] {
        let count = max(1, parts)
        let paths = (0..<count).map { "\(pathPrefix).\($0).o" }
        LLVMToolchain.initializeTargets()
        let failures = FailureSlots(count: count)
        let toolchain = self
        // Threads of our own with 64 MiB stacks, so that LLVM's recursion on the large entry
        // functions never depends on the stack size of whatever pool thread calls this.
        let finished = DispatchSemaphore(value: 0)
        for index in 0..<count {
            let thread = Thread {
                defer { finished.signal() }
                do throws(Diagnostic) {
                    try toolchain.compilePart(text, part: ModulePartition(index: index, count: count), to: paths[index])
                } catch {
                    failures.record(error, at: index)
                }
            }
            thread.stackSize = LLVMToolchain.compileThreadStackBytes
            thread.start()
        }
        for _ in 0..<count { finished.wait() }
        if let failure = failures.first {
            for path in paths { try? FileManager.default.removeItem(atPath: path) }
            throw failure
        }
        return paths
    }

    static let compileThreadStackBytes = 64 << 20

    /// Parses `text` into a context of its own, keeps `part`'s share, optimises and writes it.
    func compilePart(_ text: String, part: ModulePartition, to path: String) throws(Diagnostic) {
        let context = LLVMContextCreate()
        defer { LLVMContextDispose(context) }
        let module = try LLVMToolchain.parse(text, context: context!)
        defer { LLVMDisposeModule(module) }
        part.apply(to: module)
        let machine = try makeTargetMachine()
        defer { LLVMDisposeTargetMachine(machine) }
        try optimize(module, machine: machine)
        try LLVMToolchain.write(module, machine: machine, to: path)
    }

    static func write(_ module: LLVMModuleRef, machine: LLVMTargetMachineRef, to path: String) throws(Diagnostic) {
        var message: UnsafeMutablePointer<CChar>?
        let failed = path.withCString { cPath in
            LLVMTargetMachineEmitToFile(machine, module, cPath, LLVMObjectFile, &message)
        }
        if failed != 0 {
            let detail = message.map { String(cString: $0) } ?? ""
            LLVMDisposeMessage(message)
            throw Diagnostic(file: path, "cannot write the object file: \(detail)")
        }
    }

    /// The optimised IR as text (for `--emit-llvm` and for reading what the vectoriser did).
    public func optimizedText(_ text: String) throws(Diagnostic) -> String {
        try withOptimizedModule(text) { module, _ in
            let printed = LLVMPrintModuleToString(module)
            defer { LLVMDisposeMessage(printed) }
            return String(cString: printed!)
        }
    }

    static func consume(_ error: LLVMErrorRef) -> String {
        let message = LLVMGetErrorMessage(error)
        defer { LLVMDisposeErrorMessage(message) }
        return String(cString: message!)
    }
}

/// The errors of `emitObjects`' threads, one slot per part.
private final class FailureSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Diagnostic?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func record(_ error: Diagnostic, at index: Int) {
        lock.lock()
        slots[index] = error
        lock.unlock()
    }

    /// The lowest part's error, so that the reported error does not depend on thread timing.
    var first: Diagnostic? {
        lock.lock()
        defer { lock.unlock() }
        return slots.compactMap { $0 }.first
    }
}
