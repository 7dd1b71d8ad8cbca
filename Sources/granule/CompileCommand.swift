import ArgumentParser
import Foundation
import GranuleCodegen
import GranuleFrontend
import GranuleIR
import GranulePasses
import GranuleSupport

/// Reads a model spec (lowered, differentiated and optimised) or an IR file (as written, after
/// `--passes`) into the module that code generation compiles.
func loadProgramModule(_ path: String, passes: String?) throws -> Module {
    try loadProgram(path, passes: passes).module
}

/// The passes of a pipeline by name, or an error naming an unknown one.
func namedPasses(_ names: [String]) throws -> [any ModulePass] {
    try names.map { name throws -> any ModulePass in
        guard let pass = PassRegistry.make(name) else {
            throw CommandFailure("error: unknown pass '\(name)' (known: \(PassRegistry.names.joined(separator: ", ")))")
        }
        return pass
    }
}

/// The module of `loadProgramModule` and, for a model spec, its manifest `generation` object.
func loadProgram(_ path: String, passes: String?) throws -> (module: Module, generation: JSON?) {
    var module: Module
    let pipeline: [String]
    var generation: JSON?
    if path.hasSuffix(".json") {
        let spec = try ModelSpec.load(path: path)
        generation = spec.generationConfig
        module = try lowering(path) { () throws(Diagnostic) in try Lowering.lower(spec).module }
        pipeline = (passes ?? PassRegistry.modelPipeline).split(separator: ",").map(String.init)
    } else {
        module = try loadModule(path: path)
        pipeline = (passes ?? "").split(separator: ",").map(String.init)
    }
    module = try PassManager(try namedPasses(pipeline)).run(module)
    return (module, generation)
}

struct CompileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile",
        abstract: "Compile a model spec (or an IR file) into a standalone native executable.",
        discussion: """
            A spec is lowered to @loss, @encode and @decode_step and differentiated (@loss_grad); \
            the executable runs them: `MODEL step --weights W --batch B --out G`, `MODEL run ...`, `MODEL info`. \
            Weights are loaded at run time, never embedded.
            """)

    @Argument(help: "A model spec (.json) or an IR file (.tir).") var input: String

    @Option(name: .shortAndLong, help: "The executable to write.") var output: String

    @Option(help: "Passes before code generation (specs default to \(PassRegistry.modelPipeline)).") var passes: String?

    @Option(help: "The CPU to optimise for (default: this machine's).") var targetCPU: String?

    @Option(help: "Threads for LLVM's optimisation and code generation, each compiling a share of the kernels (default: the CPUs online, at most 8).")
    var jobs: Int?

    @Flag(help: "Also write the generated LLVM IR next to the executable (OUTPUT.ll) and the schedule (OUTPUT.schedule).")
    var emitLLVM = false

    @Flag(help: "Time every kernel and GEMM (`MODEL bench --profile` prints them); off by default, it costs a clock read per step.")
    var profile = false

    func validate() throws {
        if let jobs, jobs < 1 || jobs > 256 { throw ValidationError("--jobs must be in [1, 256], got \(jobs)") }
    }

    func run() throws {
        try runReportingErrors {
            let started = Date()
            let resolved = try resolveOutput(output)  // refuse a directory or device before compiling
            let (module, generation) = try loadProgram(input, passes: passes)
            try createParentDirectory(of: output)  // the object parts are written there too
            try createParentDirectory(of: resolved)  // and the linker's files next to a link's target
            let program = try ProgramEmitter(profile: profile).emit(module, generation: generation)
            let runtime = try Linker.locateRuntime(executablePath: CommandLine.arguments[0])
            let builder = ExecutableBuilder(
                toolchain: LLVMToolchain(targetCPU: targetCPU), linker: Linker(runtimeDirectory: runtime), jobs: jobs ?? ExecutableBuilder.onePerCPU)
            let cleanup = TemporaryFileCleanup(outputs: [output, resolved])
            defer { cleanup.stop() }
            try builder.build(llvmText: program.llvmText, output: output)
            if emitLLVM {
                try writeAtomically(program.llvmText, to: output + ".ll")
                try writeAtomically(program.functions.map { "@\($0.name):\n\($0.schedule)\n" }.joined(separator: "\n"), to: output + ".schedule")
            }
            let seconds = Date().timeIntervalSince(started)
            let kernels = program.functions.reduce(0) { $0 + $1.kernels }
            print("\(output): \(module.functions.count) functions, \(kernels) kernels, compiled in \(String(format: "%.1f", seconds)) s")
        }
    }
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Print each compiled function's kernel count, GEMMs, FLOPs, arena and peak bytes.")

    @Argument(help: "A model spec (.json) or an IR file (.tir).") var input: String

    @Option(help: "Passes before code generation (specs default to \(PassRegistry.modelPipeline)).") var passes: String?

    @Flag(help: "Also print the schedule: each kernel with the ops it fuses, and the arena offset of every buffer.")
    var schedule = false

    func run() throws {
        try runReportingErrors {
            let program = try ProgramEmitter().emit(try loadProgramModule(input, passes: passes))
            for function in program.functions {
                let gflop = String(format: "%.3f", Double(function.flops) / 1e9)
                // Compiled programs release large mapped weights between reads unless --resident-weights.
                // `generate` keeps @decode_step's weights (it runs once per token) and those @encode
                // shares with it, so there the estimate holds for `run` and `bench` only.
                let callers = ["decode_step": "; generate keeps them resident", "encode": "; generate keeps those @decode_step shares"]
                let caller = callers[function.name] ?? ""
                let released = function.peakBytesReleased < function.peakBytes
                    ? " (\(function.peakBytesReleased) with mapped weights released between reads\(caller))" : ""
                print("@\(function.name): \(function.kernels) kernels, \(function.gemms) GEMMs, \(gflop) GFLOP, arena \(function.arenaBytes) bytes, peak \(function.peakBytes) bytes\(released)")
                if schedule { print(function.schedule.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")) }
            }
        }
    }
}
