import Foundation
import GranuleIR

/// Starts the C compiler and other tools, found on PATH through `/usr/bin/env`.
enum ToolProcess {
    /// Starts `arguments` with standard output and error sent to `output` and `errors` (a `Pipe`
    /// or `FileHandle`; nil keeps ours). A tool that cannot be started is a diagnostic naming it.
    static func start(_ arguments: [String], output: Any? = nil, errors: Any? = nil) throws(Diagnostic) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let output { process.standardOutput = output }
        if let errors { process.standardError = errors }
        do {
            try process.run()
        } catch {
            throw Diagnostic("cannot run '\(arguments.first ?? "")': \(error.localizedDescription)")
        }
        return process
    }
}
