import ArgumentParser
import Foundation
import GranuleCheck
import GranuleIR
import GranuleInterpreter
import GranuleJIT

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a function of an IR file with the reference interpreter.",
        discussion: """
            Inputs come from a .safetensors file whose tensor names are the parameter names (without '%'). \
            Parameters missing from it are an error unless --random-inputs SEED fills them deterministically. \
            Results are written under their result names.
            """)

    @Argument(help: "The .tir file.") var file: String

    @Option(help: "The function to run (required when the module has several).")
    var function: String?

    @Option(help: "A .safetensors file with the parameters' values.")
    var inputs: String?

    @Option(help: "Fill parameters not given by --inputs with deterministic random values from this seed.")
    var randomInputs: UInt64?

    @Option(help: "Standard deviation of random float values.")
    var scale: Double = 1

    func validate() throws {
        guard scale.isFinite, scale >= 0 else { throw ValidationError("--scale must be a finite number ≥ 0, got \(scale)") }
        if float64 && backend != "interpreter" { throw ValidationError("--float64 needs --backend interpreter (compiled kernels run f32 as f32)") }
        if let output, let saveInputs, URL(fileURLWithPath: output).standardized == URL(fileURLWithPath: saveInputs).standardized {
            throw ValidationError("-o and --save-inputs name the same file, \(output): one would overwrite the other")
        }
    }

    @Option(name: .shortAndLong, help: "Write the results to this .safetensors file.")
    var output: String?

    @Option(help: "Write the inputs actually used (given and random) to this .safetensors file.")
    var saveInputs: String?

    @Flag(help: "Evaluate f32 ops in float64 (no rounding), as gradient checks do (interpreter only).")
    var float64 = false

    @Option(help: "interpreter (the reference semantics) or llvm (compiled kernels, run in-process by the JIT).")
    var backend: String = "interpreter"

    func run() throws {
        try runReportingErrors {
            // Where the results go is settled before the work, not after it.
            for path in [output, saveInputs].compactMap({ $0 }) { try createParentDirectory(of: try resolveOutput(path)) }
            let module = try loadModule(path: file)
            let function = try selectFunction(module, named: self.function, path: file)
            let values = try inputValues(for: function, file: inputs, randomSeed: randomInputs, scale: scale)
            if let saveInputs {
                let ordered = function.parameters.compactMap { parameter -> (name: String, tensor: Tensor)? in
                    let name = function.name(of: parameter.value)
                    return values[name].map { (name, $0) }
                }
                try Safetensors.write(ordered, to: saveInputs)
            }
            let results: [(name: String, tensor: Tensor)]
            switch backend {
            case "interpreter":
                results = try Interpreter(precision: float64 ? .float64 : .float32).run(function, inputs: values)
            case "llvm":
                results = try JITProgram(module: Module(functions: [function])).run(function.name, inputs: values)
            default:
                throw CommandFailure("error: unknown backend '\(backend)' (expected interpreter or llvm)")
            }
            for (name, tensor) in results { print(summary(name, tensor)) }
            if let output { try Safetensors.write(results, to: output) }
        }
    }
}

/// One line per tensor: name, type, and its value (scalars) or a few statistics.
func summary(_ name: String, _ tensor: Tensor) -> String {
    let head = "\(name): \(tensor.type)"
    switch tensor.storage {
    case .float(let values):
        if values.count == 1 { return "\(head) = \(formatNumber(values[0]))" }
        guard !values.isEmpty else { return head }
        let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let shown = values.prefix(4).map(formatNumber).joined(separator: ", ")
        return "\(head) norm \(formatNumber(norm)) [\(shown)\(values.count > 4 ? ", ..." : "")]"
    case .int(let values):
        if values.count == 1 { return "\(head) = \(values[0])" }
        let shown = values.prefix(8).map(String.init).joined(separator: ", ")
        return "\(head) [\(shown)\(values.count > 8 ? ", ..." : "")]"
    }
}

func formatNumber(_ value: Double) -> String { String(format: "%.9g", value) }
