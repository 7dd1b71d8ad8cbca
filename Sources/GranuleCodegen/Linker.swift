import Foundation
import GranuleIR
import GranuleSupport

/// Links a compiled program's object files with the C runtime into a standalone executable:
/// `cc program.o... runtime objects -lopenblas -lz -lm -lpthread`. The runtime objects come from
/// `RuntimeCache` (`Runtime/src/*.c` and `Runtime/main/*.c`, the command line of compiled programs,
/// compiled once per content), so the executable needs nothing of Granule at run time; `$CC`
/// picks the compiler.
public struct Linker: Sendable {
    public var runtimeDirectory: String

    public init(runtimeDirectory: String) { self.runtimeDirectory = runtimeDirectory }

    /// Finds `Runtime/` from `$GRANULE_RUNTIME`, then upwards from the executable and from the
    /// working directory. The executable is the one running (/proc/self/exe) when `executablePath`
    /// is a bare name, as argv[0] is for a `granule` found through PATH.
    public static func locateRuntime(executablePath: String) throws(Diagnostic) -> String {
        if let configured = ProcessInfo.processInfo.environment["GRANULE_RUNTIME"] { return configured }
        var candidates: [URL] = []
        let running = executablePath.contains("/") ? executablePath : "/proc/self/exe"
        var directory = URL(fileURLWithPath: running).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(directory)
            directory = directory.deletingLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        for candidate in candidates {
            let runtime = candidate.appendingPathComponent("Runtime")
            if FileManager.default.fileExists(atPath: runtime.appendingPathComponent("include/granule_runtime.h").path) {
                return runtime.path
            }
        }
        throw Diagnostic("cannot find Granule's C runtime (Runtime/include/granule_runtime.h); set GRANULE_RUNTIME to its directory")
    }

    public func link(objects: [String], output requested: String) throws(Diagnostic) {
        let fileManager = FileManager.default
        let output: String
        do {
            output = try OutputFile.resolve(requested)
        } catch {
            throw Diagnostic(file: requested, error.message)
        }
        let compiler = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        let scratch = output + ".tmp-runtime"
        defer { try? fileManager.removeItem(atPath: scratch) }
        let runtimeObjects = try RuntimeCache(runtimeDirectory: runtimeDirectory, compiler: compiler).objects(scratch: scratch)
        let temporary = output + ".tmp-link"
        let arguments = objects + runtimeObjects + ["-o", temporary, "-lopenblas", "-lz", "-lm", "-lpthread"]
        let errors = Pipe()
        let process = try ToolProcess.start([compiler] + arguments, errors: errors)
        let diagnostics = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            try? fileManager.removeItem(atPath: temporary)
            throw Diagnostic("linking \(output) failed:\n\(String(decoding: diagnostics, as: UTF8.self))")
        }
        // rename(2) replaces a regular file atomically; `OutputFile` refused anything else.
        guard rename(temporary, output) == 0 else {
            let reason = String(cString: strerror(errno))
            try? fileManager.removeItem(atPath: temporary)
            throw Diagnostic(file: output, "cannot write the executable: \(reason)")
        }
    }
}
