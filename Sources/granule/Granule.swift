import ArgumentParser

@main
struct Granule: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "granule",
        abstract: "An ahead-of-time compiler for parameter-efficient tuning of encoder-decoder transformers.",
        subcommands: [
            ParamsCommand.self, LowerCommand.self, InitCommand.self, CompileCommand.self, StatsCommand.self, OptCommand.self, VerifyCommand.self, RunCommand.self,
            GradcheckCommand.self, VizCommand.self,
        ])
}
