import ArgumentParser
import GranuleFrontend
import GranuleIR
import GranulePasses

struct LowerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lower",
        abstract: "Lower a model spec to IR: @loss(batch inputs, weights) -> (loss, logits), verified.",
        discussion: "With --passes autodiff,... the module also holds @loss_grad with gradients of exactly the trainable parameters.")

    @Argument(help: "The model spec (.json).") var spec: String

    @Option(name: .shortAndLong, help: "Write the IR here instead of standard output.")
    var output: String?

    @Option(help: "Comma-separated passes to run after lowering, e.g. autodiff,simplify,cse,dce.")
    var passes: String?

    @Option(help: "Override the spec's dropout probability (0 lowers no dropout).")
    var dropout: Double?

    @Flag(help: "Print constants in full.")
    var fullConstants = false

    func validate() throws {
        // As the spec's own field: a probability in [0, 1) (NaN would silently lower no dropout).
        if let dropout, !(dropout >= 0 && dropout < 1) { throw ValidationError("--dropout must be in [0, 1), got \(dropout)") }
    }

    func run() throws {
        try runReportingErrors {
            let model = try ModelSpec.load(path: spec)
            let lowered = try lowering(spec) { () throws(Diagnostic) in try Lowering.lower(model, dropout: dropout).module }
            let module = try PassManager(try namedPasses(passes?.split(separator: ",").map(String.init) ?? [])).run(lowered)
            let text = Printer.print(module, options: fullConstants ? .full : PrintOptions())
            if let output {
                try writeAtomically(text, to: output)
            } else {
                print(text, terminator: "")
            }
        }
    }
}
