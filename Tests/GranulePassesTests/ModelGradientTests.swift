import Foundation
import GranuleCheck
import GranuleIR
import GranuleInterpreter
import GranulePasses
import Testing

/// The package root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func loadExample(_ relativePath: String) throws -> Module {
    let path = packageRoot.appendingPathComponent(relativePath).path
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let module = try Parser.parse(text, file: relativePath)
    try Verifier.verify(module)
    return module
}

@Test("two-layer post-LN transformer with gated adapters passes the finite-difference check")
func transformerBlockGradients() throws {
    let module = try loadExample("examples/ir/transformer-adapter.tir")
    let function = try #require(module.function(named: "loss"))
    let inputs = RandomInputs.make(for: function, seed: 7, scale: 0.5)
    let report = try GradientCheck().run(function, inputs: inputs)
    let trainable = function.parameters(withRole: .trainable).map { function.name(of: $0.value) }
    #expect(report.entries.map(\.parameter) == trainable)
    for entry in report.entries {
        #expect(entry.relativeError <= 1e-6, "grad.\(entry.parameter): relative error \(entry.relativeError)")
        #expect(entry.gradientNorm > 0, "grad.\(entry.parameter) is zero")
    }
}

@Test("the optimized gradient program computes the same values as the unoptimized one")
func cleanupPassesPreserveValues() throws {
    let module = try loadExample("examples/ir/transformer-adapter.tir")
    let differentiated = try PassManager([Autodiff()]).run(module)
    let optimized = try PassManager([Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()]).run(differentiated)
    let before = try #require(differentiated.function(named: "loss_grad"))
    let after = try #require(optimized.function(named: "loss_grad"))
    #expect(after.operations.count < before.operations.count)
    let inputs = RandomInputs.make(for: before, seed: 3, scale: 0.5)
    let expected = try Interpreter().run(before, inputs: inputs)
    let actual = try Interpreter().run(after, inputs: inputs)
    #expect(expected.map(\.name) == actual.map(\.name))
    for (lhs, rhs) in zip(expected, actual) {
        #expect(lhs.tensor == rhs.tensor, "\(lhs.name) changed under simplify,cse,dce")
    }
}

@Test("autodiff gives gradients for exactly the trainable parameters, plus requested inputs")
func gradientResults() throws {
    let text = """
        func @f(%x: f32[2,3] input, %w: f32[3,3] frozen, %v: f32[3,3] trainable, %u: f32[3] trainable) -> (loss: f32[], y: f32[2,3]) {
          %h = matmul %x, %w : f32[2,3]
          %y = matmul %h, %v : f32[2,3]
          %s = reduce_sum %y {axes = [0, 1]} : f32[]
          return %s, %y
        }
        """
    let module = try Parser.parse(text)
    let plain = try Autodiff().run(on: module)
    let gradient = try #require(plain.function(named: "f_grad"))
    #expect(gradient.results.map(\.name) == ["loss", "grad.v", "grad.u", "y"])
    let withInput = try Autodiff(extraGradientInputs: ["x"]).run(on: module)
    #expect(withInput.function(named: "f_grad")?.results.map(\.name) == ["loss", "grad.x", "grad.v", "grad.u", "y"])
    // %u does not reach the loss: its gradient is a zero constant.
    let outputs = try Interpreter().run(gradient, inputs: RandomInputs.make(for: gradient, seed: 1))
    #expect(outputs[2].tensor.floats.allSatisfy { $0 == 0 })
}

@Test("autodiff rejects a frozen or unknown --wrt parameter by name")
func autodiffWithRespectToErrors() throws {
    let module = try Parser.parse("""
        func @f(%x: i64[2] input, %v: f32[2] trainable) -> (loss: f32[]) {
          %s = reduce_sum %v {axes = [0]} : f32[]
          return %s
        }
        """)
    #expect(throws: Diagnostic.self) { try Autodiff(extraGradientInputs: ["x"]).run(on: module) }
    #expect(throws: Diagnostic.self) { try Autodiff(extraGradientInputs: ["nope"]).run(on: module) }
}
