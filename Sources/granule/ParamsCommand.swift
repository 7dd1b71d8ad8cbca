import ArgumentParser
import GranuleFrontend
import GranuleIR

struct ParamsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "params",
        abstract: "Print trainable and total parameters of a model spec by group, as the paper's Params (%) counts them.")

    @Argument(help: "The model spec (.json).") var spec: String

    func run() throws {
        try runReportingErrors {
            let model = try ModelSpec.load(path: spec)
            let parameters = try lowering(spec) { () throws(Diagnostic) in try Lowering.parameters(model) }
            print("\(spec): \(model.backbone.family.rawValue) with \(model.pet.name)")
            print(ParameterCount(parameters).report())
        }
    }
}
