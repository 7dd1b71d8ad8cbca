import ArgumentParser
import Foundation
import GranuleIR
import GranulePasses

struct OptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "opt",
        abstract: "Print an IR file in canonical form, optionally after running passes.",
        discussion: "Passes: \(PassRegistry.names.joined(separator: ", ")). Each pass's output is verified.")

    @Argument(help: "The .tir file.") var file: String

    @Option(help: "Comma-separated pass pipeline, e.g. autodiff,simplify,cse,dce.")
    var passes: String?

    @Option(help: "Write one file per pipeline stage into this directory (00-input.tir, 01-autodiff.tir, ...).")
    var dumpDir: String?

    @Option(name: .shortAndLong, help: "Write the result to this file instead of standard output.")
    var output: String?

    @Option(name: .customLong("wrt"), help: "autodiff: also differentiate with respect to these input parameters (comma-separated names).")
    var withRespectTo: String?

    @Flag(help: "Print constants in full instead of eliding those with more than 16 elements.")
    var fullConstants = false

    func run() throws {
        try runReportingErrors {
            var module = try loadModule(path: file)
            let options = fullConstants ? PrintOptions.full : PrintOptions()
            let names = passes.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
            let configuration = PassConfiguration(
                extraGradientInputs: withRespectTo.map { $0.split(separator: ",").map(String.init) } ?? [])
            let pipeline = try names.map { name throws -> any ModulePass in
                guard let pass = PassRegistry.make(name, configuration: configuration) else {
                    throw CommandFailure("error: unknown pass '\(name)' (known: \(PassRegistry.names.joined(separator: ", ")))")
                }
                return pass
            }
            if let dumpDir { try writeAtomically(Printer.print(module, options: options), to: "\(dumpDir)/00-input.tir") }
            for (index, pass) in pipeline.enumerated() {
                do throws(Diagnostic) {
                    module = try pass.run(on: module)
                    try Verifier.verify(module)
                } catch {
                    throw CommandFailure("\(file): error: pass '\(pass.name)' failed: \(error.message)")
                }
                if let dumpDir {
                    let stage = String(format: "%02d-%@.tir", index + 1, pass.name)
                    try writeAtomically(Printer.print(module, options: options), to: "\(dumpDir)/\(stage)")
                }
            }
            let text = Printer.print(module, options: options)
            if let output {
                try writeAtomically(text, to: output)
            } else {
                print(text, terminator: "")
            }
        }
    }
}
