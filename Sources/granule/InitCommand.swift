import ArgumentParser
import GranuleFrontend
import GranuleIR
import GranuleInterpreter

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a full checkpoint for a model spec: random weights, or a pretrained backbone plus freshly initialised PET modules.",
        discussion: "Names are Hugging Face names for the backbone and Granule's PET names (see the README). The file is written atomically.")

    @Argument(help: "The model spec (.json).") var spec: String

    @Option(help: "Seed of the random initialisation.") var seed: UInt64 = 42

    @Option(help: "Keep the backbone from this .safetensors checkpoint (Hugging Face names); initialise only what is new.")
    var from: String?

    @Option(name: .shortAndLong, help: "The checkpoint to write (.safetensors).") var output: String

    func run() throws {
        try runReportingErrors {
            let model = try ModelSpec.load(path: spec)
            let parameters = try lowering(spec) { () throws(Diagnostic) in try Lowering.parameters(model) }
            let base = try from.map { path throws(Diagnostic) in try Safetensors.read(path: path) }
            let (tensors, report) = try Initialization.weights(for: parameters, seed: seed, base: base, basePath: from ?? "")
            try createParentDirectory(of: output)
            try Safetensors.write(tensors, to: output, metadata: ["format": "pt", "granule_spec": spec])
            if from != nil {
                print("\(output): \(report.loaded) tensors from \(from!), \(report.initialized) initialised")
                for line in report.resized { print("  resized \(line)") }
                if !report.unused.isEmpty { print("  ignored \(report.unused.count) unused tensors: \(report.unused.prefix(5).joined(separator: ", "))\(report.unused.count > 5 ? ", ..." : "")") }
            } else {
                print("\(output): \(tensors.count) tensors initialised with seed \(seed)")
            }
        }
    }
}
