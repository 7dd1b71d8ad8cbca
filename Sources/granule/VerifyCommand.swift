import ArgumentParser
import Foundation
import GranuleIR

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check that an IR file parses and verifies; print the first error with its line:column.")

    @Argument(help: "The .tir file.") var file: String

    func run() throws {
        try runReportingErrors {
            let module = try loadModule(path: file)
            print("\(file): ok (\(module.functions.count) function\(module.functions.count == 1 ? "" : "s"))")
        }
    }
}

/// Prints a diagnostic on standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
