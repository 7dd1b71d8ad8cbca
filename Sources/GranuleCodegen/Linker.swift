import Foundation
import GranuleIR

/// Links a compiled program's object file with the C runtime into a standalone executable:
/// `cc -O2 program.o Runtime/src/*.c Runtime/main/*.c -lopenblas -lz -lm -lpthread` (`main/` holds
/// the command line: `main.c` and the commands it dispatches to, such as `train.c`).
///
/// The runtime is compiled from source each time (about a second) so that the executable needs
/// nothing of Granule at run time; `$CC` picks the compiler.
public struct Linker: Sendable {
    public var runtimeDirectory: String

    public init(runtimeDirectory: String) { self.runtimeDirectory = runtimeDirectory }

    /// Finds `Runtime/` from `$GRANULE_RUNTIME`, then upwards from the executable and from the
    /// working directory.
    public static func locateRuntime(executablePath: String) throws(Diagnostic) -> String {
        if let configured = ProcessInfo.processInfo.environment["GRANULE_RUNTIME"] { return configured }
        var candidates: [URL] = []
        var directory = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
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

    public func link(object: String, output: String) throws(Diagnostic) {
        let fileManager = FileManager.default
        let sources = ((try? fileManager.contentsOfDirectory(atPath: "\(runtimeDirectory)/src")) ?? [])
            .filter { $0.hasSuffix(".c") }.sorted().map { "\(runtimeDirectory)/src/\($0)" }
        guard !sources.isEmpty else { throw Diagnostic(file: runtimeDirectory, "no runtime sources in src/") }
        let commandLine = ((try? fileManager.contentsOfDirectory(atPath: "\(runtimeDirectory)/main")) ?? [])
            .filter { $0.hasSuffix(".c") }.sorted().map { "\(runtimeDirectory)/main/\($0)" }
        guard commandLine.contains("\(runtimeDirectory)/main/main.c") else {
            throw Diagnostic(file: runtimeDirectory, "no main/main.c (the command line of compiled programs)")
        }
        let compiler = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        let temporary = output + ".tmp-link"
        let arguments = [
            "-std=c11", "-O2", "-D_GNU_SOURCE", "-I\(runtimeDirectory)/include", "-I\(runtimeDirectory)/src",
            object,
        ] + sources + commandLine + ["-o", temporary, "-lopenblas", "-lz", "-lm", "-lpthread"]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [compiler] + arguments
        let errors = Pipe()
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw Diagnostic("cannot run the C compiler '\(compiler)': \(error.localizedDescription)")
        }
        let diagnostics = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            try? fileManager.removeItem(atPath: temporary)
            throw Diagnostic("linking \(output) failed:\n\(String(decoding: diagnostics, as: UTF8.self))")
        }
        _ = try? fileManager.removeItem(atPath: output)
        do {
            try fileManager.moveItem(atPath: temporary, toPath: output)
        } catch {
            throw Diagnostic(file: output, "cannot write the executable: \(error.localizedDescription)")
        }
    }
}
