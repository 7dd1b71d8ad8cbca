import Foundation
import GranuleCheck
import GranuleCodegen
import GranuleIR
import GranuleInterpreter
import GranulePasses
import GranuleSupport
import Testing

/// A native executable built from `module` with `granule compile`'s pipeline (object + C runtime).
struct CompiledExecutable {
    let directory: URL
    let path: String

    init(_ module: Module, name: String, profile: Bool = false, generation: JSON? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("granule-aot-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let program = try ProgramEmitter(profile: profile).emit(module, generation: generation)
        path = directory.appendingPathComponent(name).path
        try ExecutableBuilder(toolchain: LLVMToolchain(), linker: Linker(runtimeDirectory: packageRoot.appendingPathComponent("Runtime").path))
            .build(llvmText: program.llvmText, output: path)
    }

    func file(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Runs the executable; returns its exit status and standard error.
    func invoke(_ arguments: [String]) throws -> (status: Int32, errors: String) {
        let result = try execute(arguments)
        return (result.status, result.errors)
    }

    /// Runs the executable; returns its exit status, standard output and standard error.
    func execute(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ["GRANULE_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"]
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("granule-stdout-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: output.path, contents: nil) else { throw Diagnostic("cannot create \(output.path)") }
        defer { try? FileManager.default.removeItem(at: output) }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = try FileHandle(forWritingTo: output)
        try process.run()
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOf: output, encoding: .utf8), String(decoding: data, as: UTF8.self))
    }

    /// `MODEL run --function NAME --inputs ... --out ...` and the results it wrote.
    func run(_ function: String, inputs: [String]) throws -> [(name: String, tensor: Tensor)] {
        let output = file("\(function).out.safetensors")
        let (status, errors) = try invoke(["run", "--function", function] + inputs.flatMap { ["--inputs", $0] } + ["--out", output])
        guard status == 0 else { throw Diagnostic("\(function): exit \(status): \(errors)") }
        return try Safetensors.read(path: output)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

/// Every op of the corpus (and its gradient function) in one executable: each function run by
/// the binary on random inputs matches the interpreter.
@Test("an AOT executable matches the interpreter on every op and its gradient")
func opCorpusThroughExecutable() throws {
    var module = Module()
    for (index, testCase) in allGradientCases.enumerated() {
        let parsed = try Parser.parse(testCase.source, file: testCase.name)
        let differentiated = try PassManager([Autodiff(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()]).run(parsed)
        for var function in differentiated.functions {
            function.name = "case\(index)_\(function.name)"
            module.functions.append(function)
        }
    }
    let executable = try CompiledExecutable(module, name: "ops")
    defer { executable.remove() }
    for function in module.functions {
        let inputs = RandomInputs.make(for: function, seed: 21)
        let inputFile = executable.file("\(function.name).in.safetensors")
        try Safetensors.write(function.parameters.map { (function.name(of: $0.value), inputs[function.name(of: $0.value)]!) }, to: inputFile)
        let compiled = try executable.run(function.name, inputs: [inputFile])
        expectClose(compiled, try Interpreter().run(function, inputs: inputs), "AOT \(function.name)")
    }
}

/// Every Hugging Face golden's `@loss_grad` in one executable, run on the golden weights and
/// batch (given as two files, as `step` reads them) — and bad input to the same executable.
@Test("an AOT executable matches the Hugging Face goldens and rejects bad input")
func goldensThroughExecutable() throws {
    var module = Module()
    var goldens: [(name: String, golden: Golden)] = []
    for name in goldenNames() {
        let golden = try Golden(name)
        var function = try #require(golden.module.function(named: "loss_grad"))
        function.name = name.replacingOccurrences(of: "-", with: "_")
        module.functions.append(function)
        goldens.append((function.name, golden))
    }
    let executable = try CompiledExecutable(module, name: "goldens")
    defer { executable.remove() }
    for (name, golden) in goldens {
        let function = module.function(named: name)!
        let weights = executable.file("\(name).weights.safetensors")
        let batch = executable.file("\(name).batch.safetensors")
        let parameterNames = function.parameters.map { function.name(of: $0.value) }
        try Safetensors.write(parameterNames.filter { function.parameter(for: function.value(named: $0)!)!.role != .input }.map { ($0, golden.inputs[$0]!) }, to: weights)
        try Safetensors.write(parameterNames.filter { function.parameter(for: function.value(named: $0)!)!.role == .input }.map { ($0, golden.inputs[$0]!) }, to: batch)
        golden.check(try executable.run(name, inputs: [weights, batch]), context: "\(name) (AOT)")
    }

    // Bad input: a missing file, a wrongly shaped tensor, token ids outside the vocabulary.
    let (name, golden) = goldens[0]
    let weights = executable.file("\(name).weights.safetensors")
    let batch = executable.file("\(name).batch.safetensors")
    let output = executable.file("bad.out.safetensors")
    let missing = try executable.invoke(["run", "--function", name, "--inputs", executable.file("absent.safetensors"), "--inputs", batch, "--out", output])
    #expect(missing.status == 1 && missing.errors.contains("absent.safetensors"), "missing weights: \(missing)")

    var badBatch = golden.inputs
    let ids = try #require(badBatch["input_ids"])
    badBatch["input_ids"] = Tensor(TensorType(.i64, [ids.type.shape[0], ids.type.shape[1] - 1]), ints: Array(ids.ints.dropLast(ids.type.shape[0])))
    let misshapen = executable.file("misshapen.safetensors")
    try Safetensors.write(["input_ids", "attention_mask", "vis_feats", "vis_boxes", "labels"].compactMap { key in badBatch[key].map { (key, $0) } }, to: misshapen)
    let shape = try executable.invoke(["run", "--function", name, "--inputs", weights, "--inputs", misshapen, "--out", output])
    #expect(shape.status == 1 && shape.errors.contains("input_ids"), "wrong shape: \(shape)")

    var outside = golden.inputs
    var tokens = ids.ints
    tokens[0] = 100_000
    outside["input_ids"] = Tensor(ids.type, ints: tokens)
    let outOfRange = executable.file("out-of-range.safetensors")
    try Safetensors.write(["input_ids", "attention_mask", "vis_feats", "vis_boxes", "labels"].compactMap { key in outside[key].map { (key, $0) } }, to: outOfRange)
    let range = try executable.invoke(["run", "--function", name, "--inputs", weights, "--inputs", outOfRange, "--out", output])
    #expect(range.status == 1 && range.errors.contains("100000") && range.errors.contains("gather"), "token out of range: \(range)")
    #expect(!FileManager.default.fileExists(atPath: output), "a failed run must not write its output")
}
