import Foundation
import GranuleCheck
import GranuleCodegen
import GranuleIR
import GranuleInterpreter
import GranuleJIT
import GranulePasses
import Testing

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Every `.tir` file of the corpus that verifies, with its functions' autodiff added.
func corpus() -> [String] {
    var files: [String] = []
    for directory in ["IR/tests", "examples/ir"] {
        let root = packageRoot.appendingPathComponent(directory)
        guard let walker = FileManager.default.enumerator(atPath: root.path) else { continue }
        for case let path as String in walker where path.hasSuffix(".tir") {
            files.append("\(directory)/\(path)")
        }
    }
    return files.sorted()
}

/// Compares compiled results with the interpreter's: max |Δ| ≤ 1e-4·max(|reference|, 1), and
/// integer results exactly.
func expectClose(_ compiled: [(name: String, tensor: Tensor)], _ reference: [(name: String, tensor: Tensor)], _ context: String) {
    #expect(compiled.map(\.name) == reference.map(\.name), "\(context): result names")
    for (actual, expected) in zip(compiled, reference) {
        #expect(actual.tensor.type == expected.tensor.type, "\(context): \(actual.name) type")
        switch (actual.tensor.storage, expected.tensor.storage) {
        case (.float(let a), .float(let b)):
            let scale = max(1, b.map { Swift.abs($0) }.filter(\.isFinite).max() ?? 1)
            var worst = 0.0
            for (x, y) in zip(a, b) {
                if x.isNaN && y.isNaN { continue }
                if x == y { continue }
                worst = max(worst, Swift.abs(x - y))
            }
            #expect(worst <= 1e-4 * scale, "\(context): \(actual.name) max error \(worst) at scale \(scale)")
        case (.int(let a), .int(let b)):
            #expect(a == b, "\(context): \(actual.name) differs")
        default:
            Issue.record("\(context): \(actual.name) storage kinds differ")
        }
    }
}

@Test("the IR corpus and the goldens are found")
func corporaArePresent() {
    #expect(corpus().count >= 20, "IR corpus: \(corpus().count) files")
    #expect(goldenNames().count == 21, "goldens: \(goldenNames().count)")
}

@Test("compiled kernels (JIT) match the interpreter on the IR corpus", arguments: corpus())
func corpusMatchesInterpreter(_ path: String) throws {
    let text = try String(contentsOf: packageRoot.appendingPathComponent(path), encoding: .utf8)
    guard let parsed = try? Parser.parse(text, file: path), (try? Verifier.verify(parsed)) != nil, !parsed.functions.isEmpty else { return }
    let module = try PassManager([Autodiff(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()]).run(parsed)
    let jit = try JITProgram(module: module, threads: 2)
    // Functions over tensors too large to allocate (statistics tests of legal 2^40-element shapes) are
    // compiled but not run.
    for function in module.functions
    where (function.parameters.map(\.value) + function.operations.map(\.result)).allSatisfy({ function.type(of: $0).elementCount <= 1 << 24 }) {
        let inputs = RandomInputs.make(for: function, seed: 3, scale: 0.5)
        let reference: [(name: String, tensor: Tensor)]
        do {
            reference = try Interpreter().run(function, inputs: inputs)
        } catch {
            // Programs that fail at run time on random inputs must fail compiled too.
            #expect(throws: Diagnostic.self) { _ = try jit.run(function.name, inputs: inputs) }
            continue
        }
        expectClose(try jit.run(function.name, inputs: inputs), reference, "\(path) @\(function.name)")
    }
}

extension GradientCase: CustomTestStringConvertible {
    public var testDescription: String { name }
}

/// Every op (and its gradient ops, through autodiff) compiled and run by the JIT, against the
/// interpreter.
@Test("compiled kernels (JIT) match the interpreter on every op and its gradient", arguments: allGradientCases)
func opCorpusMatchesInterpreter(_ testCase: GradientCase) throws {
    let parsed = try Parser.parse(testCase.source, file: testCase.name)
    let module = try PassManager([Autodiff(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()]).run(parsed)
    let jit = try JITProgram(module: module, threads: 2)
    for function in module.functions {
        let inputs = RandomInputs.make(for: function, seed: 9)
        expectClose(try jit.run(function.name, inputs: inputs), try Interpreter().run(function, inputs: inputs), "\(testCase.name) @\(function.name)")
    }
}

/// The Hugging Face goldens (made by tools/reference) through compiled code: the frontend's
/// `@loss_grad` compiled and run by the JIT gives the golden logits, loss and gradients with the
/// frontend's tolerances, and agrees with the interpreter.
@Test("compiled models (JIT) match the Hugging Face goldens", arguments: goldenNames())
func goldensThroughJIT(_ name: String) throws {
    let golden = try Golden(name)
    let jit = try JITProgram(module: golden.module, threads: 2)
    let compiled = try jit.run("loss_grad", inputs: golden.inputs)
    golden.check(compiled, context: "\(name) (JIT)")
}
