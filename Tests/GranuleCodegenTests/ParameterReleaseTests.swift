@testable import GranuleCodegen
import GranuleIR
import GranulePasses
import Testing

/// Where compiled functions release large parameters (ParameterReleasePlan), checked against each
/// step's reads as `MemoryPlan.buffersRead` reports them (views and fused leaves included; the
/// arena plan relies on the same list): after a read exactly when the next read is more than `gap`
/// steps away or there is none, never for small or written parameters.

/// Eight 128×128 layers: 64 KiB weights (the smallest that are listed), a 512-byte bias.
private let deepNetwork: String = {
    let layers = 8
    var text = "func @loss(%x: f32[4,128] input, %w0: f32[128,128] trainable"
    for layer in 1..<layers { text += ", %w\(layer): f32[128,128] frozen" }
    text += ", %b: f32[128] frozen) -> (loss: f32[]) {\n  %a0 = tanh %x : f32[4,128]\n"
    for layer in 0..<layers {
        text += "  %m\(layer) = matmul %a\(layer), %w\(layer) : f32[4,128]\n"
        text += "  %a\(layer + 1) = tanh %m\(layer) : f32[4,128]\n"
    }
    text += "  %bb = broadcast_to %b : f32[4,128]\n  %y = add %a\(layers), %bb : f32[4,128]\n"
    text += "  %loss = reduce_mean %y {axes = [0, 1]} : f32[]\n  return %loss\n}\n"
    return text
}()

private func functions(_ passes: [any ModulePass]) throws -> [Function] {
    try PassManager(passes).run(try Parser.parse(deepNetwork, file: "deep.tir")).functions
}

@Test(arguments: ["loss", "loss_grad", "loss_train_step"])
func releasesFollowTheReadsOfEachLargeParameter(_ name: String) throws {
    let module = try functions([Autodiff(), AdamW(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()])
    let function = try #require(module.first { $0.name == name })
    let schedule = Schedule(function)
    let releases = ParameterReleasePlan(function, reads: schedule.steps.map { MemoryPlan.buffersRead(by: $0, schedule) })
    let written = Set(function.results.compactMap(\.writes))
    var releasedSomething = false
    for (index, parameter) in function.parameters.enumerated() {
        let reads = schedule.steps.indices.filter { MemoryPlan.buffersRead(by: schedule.steps[$0], schedule).contains(parameter.value) }
        let releasedAfter = releases.after.filter { $0.value.contains(index) }.map(\.key).sorted()
        let type = function.type(of: parameter.value)
        if written.contains(parameter.value) || type.elementCount * type.dtype.byteSize < ParameterReleasePlan.minimumBytes {
            #expect(releasedAfter.isEmpty, "%\(function.name(of: parameter.value)) is released after \(releasedAfter)")
            continue
        }
        let expected = reads.indices.filter { $0 + 1 == reads.count || reads[$0 + 1] - reads[$0] > ParameterReleasePlan.gap }.map { reads[$0] }
        #expect(releasedAfter == expected, "%\(function.name(of: parameter.value)): reads \(reads)")
        releasedSomething = releasedSomething || !releasedAfter.isEmpty
    }
    #expect(releasedSomething)
}

@Test func frozenWeightsOfEarlyLayersAreReleasedBetweenTheirForwardAndBackwardReads() throws {
    let module = try functions([Autodiff(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()])
    let function = try #require(module.first { $0.name == "loss_grad" })
    let schedule = Schedule(function)
    let releases = ParameterReleasePlan(function, reads: schedule.steps.map { MemoryPlan.buffersRead(by: $0, schedule) })
    func count(_ name: String) -> Int {
        let index = function.parameters.firstIndex { function.name(of: $0.value) == name }!
        return releases.after.values.filter { $0.contains(index) }.count
    }
    #expect(count("w1") == 2)  // forward and backward reads, far apart
    #expect(count("w7") == 1)  // the last layer's two reads are neighbours
    #expect(count("w0") == 1)  // trainable but unwritten here; its gradient needs no read of it
    #expect(count("b") == 0)
}
