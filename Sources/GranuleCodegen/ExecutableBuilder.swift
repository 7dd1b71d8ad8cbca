import Foundation
import GranuleIR

/// The back half of `granule compile`: a program's LLVM IR text → object files, compiled on
/// `jobs` threads (`LLVMToolchain.emitObjects`) → one executable linked with the C runtime
/// (`Linker`). The objects are temporaries next to the output and are removed either way.
public struct ExecutableBuilder: Sendable {
    public var toolchain: LLVMToolchain
    public var linker: Linker
    /// Parts the module is compiled in, at once. `granule compile` uses one per CPU online, at
    /// most 8: every part parses the whole module text again, work that more parts only repeat. The
    /// library default is one: in our test process, where other tests drive LLVM's C API directly
    /// at the same time, several compile threads made one of those tests crash inside LLVM with a
    /// garbage target machine (not seen in `granule compile`, which does nothing else meanwhile).
    public var jobs: Int

    public static var onePerCPU: Int { min(8, max(1, ProcessInfo.processInfo.activeProcessorCount)) }

    public init(toolchain: LLVMToolchain, linker: Linker, jobs: Int = 1) {
        self.toolchain = toolchain
        self.linker = linker
        self.jobs = max(1, jobs)
    }

    public func build(llvmText: String, output: String) throws(Diagnostic) {
        let objects = try toolchain.emitObjects(llvmText, pathPrefix: output + ".tmp-part", parts: jobs)
        defer { for object in objects { try? FileManager.default.removeItem(atPath: object) } }
        try linker.link(objects: objects, output: output)
    }
}
