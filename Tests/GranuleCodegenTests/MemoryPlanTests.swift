@testable import GranuleCodegen
import GranuleIR
import GranulePasses
import Testing

/// The arena plan of a differentiated two-layer classifier: no two buffers alive at one step share
/// a byte unless one is computed in place over the other, the arena is as small as the live peak
/// here, and the cross-entropy gradient takes over its logits' buffer.

private let classifier = """
    func @loss(%x: f32[16,32] input, %labels: i64[16] input, %w0: f32[32,64] frozen, %w1: f32[64,64] trainable,
               %b1.bias: f32[64] trainable, %w2: f32[64,10] trainable) -> (loss: f32[]) {
      %h0 = matmul %x, %w0 : f32[16,64]
      %a0 = gelu %h0 {approx = erf} : f32[16,64]
      %h1 = matmul %a0, %w1 : f32[16,64]
      %hb = add %h1, %b1.bias : f32[16,64]
      %a1 = tanh %hb : f32[16,64]
      %logits = matmul %a1, %w2 : f32[16,10]
      %loss = cross_entropy %logits, %labels {reduction = mean, ignore_index = -100} : f32[]
      return %loss
    }
    """

private func plannedGradient() throws -> (Function, Schedule, MemoryPlan) {
    let parsed = try Parser.parse(classifier, file: "classifier.tir")
    let module = try PassManager([Autodiff(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()]).run(parsed)
    let function = try #require(module.functions.first { $0.name == "loss_grad" })
    let schedule = Schedule(function)
    return (function, schedule, MemoryPlan(schedule))
}

private func byteRange(_ plan: MemoryPlan, _ function: Function, _ value: Value) -> Range<Int>? {
    guard case .arena(let offset)? = plan.locations[value] else { return nil }
    let type = function.type(of: value)
    return offset..<(offset + type.elementCount * type.dtype.byteSize)
}

@Test func buffersAliveAtOneStepNeverShareBytesExceptInPlace() throws {
    let (function, schedule, plan) = try plannedGradient()
    // Lifetimes end at the last read, counted here independently of the plan.
    var lastRead: [Value: Int] = [:]
    for (index, step) in schedule.steps.enumerated() {
        for buffer in MemoryPlan.buffersRead(by: step, schedule) { lastRead[buffer] = index }
    }
    let arena = plan.lifetimes.keys.sorted()
    #expect(arena.count > 5)
    for value in arena {
        let lifetime = try #require(plan.lifetimes[value])
        #expect(lifetime.upperBound == max(lastRead[value] ?? lifetime.lowerBound, lifetime.lowerBound))
        #expect((byteRange(plan, function, value)?.upperBound ?? .max) <= plan.arenaBytes)
    }
    /// A donor and the outputs computed over it, transitively.
    func root(_ value: Value) -> Value { plan.inPlaceDonors[value].map(root) ?? value }
    var clashes: [String] = []
    for (i, a) in arena.enumerated() {
        for b in arena[(i + 1)...] where root(a) != root(b) && plan.lifetimes[a]!.overlaps(plan.lifetimes[b]!) {
            if let ra = byteRange(plan, function, a), let rb = byteRange(plan, function, b), ra.overlaps(rb) {
                clashes.append("%\(function.name(of: a)) \(ra) and %\(function.name(of: b)) \(rb)")
            }
        }
    }
    #expect(clashes.isEmpty, "\(clashes)")
}

@Test func theArenaIsTheLivePeakAndTheLossGradientOverwritesTheLogits() throws {
    let (function, schedule, plan) = try plannedGradient()
    var peak = 0
    for index in schedule.steps.indices {
        let roots = Set(plan.lifetimes.filter { $0.value.contains(index) }.keys.map { value -> Value in
            var value = value
            while let donor = plan.inPlaceDonors[value], plan.lifetimes[donor]?.contains(index) == true { value = donor }
            return value
        })
        peak = max(peak, roots.reduce(0) { $0 + MemoryPlan.aligned(function.type(of: $1).elementCount * function.type(of: $1).dtype.byteSize) })
    }
    #expect(plan.arenaBytes == peak, "arena \(plan.arenaBytes) bytes for a live peak of \(peak)")

    let gradient = try #require(function.operations.first { $0.opcode == .crossEntropyGrad })
    let logits = gradient.operands[0]
    #expect(plan.inPlaceDonors[gradient.result] == logits)
    #expect(plan.locations[gradient.result] == plan.locations[logits])
}

// MARK: results in place

private func plan(_ text: String, passes: [any ModulePass] = [], function name: String) throws -> (Function, MemoryPlan) {
    let module = try PassManager(passes).run(try Parser.parse(text, file: "plan.tir"))
    let function = try #require(module.functions.first { $0.name == name })
    return (function, MemoryPlan(Schedule(function)))
}

@Test func adamWUpdatesAreComputedOverTheParametersTheyWrite() throws {
    let passes: [any ModulePass] = [Autodiff(), AdamW(), Simplify(), CommonSubexpressionElimination(), DeadCodeElimination()]
    let (function, plan) = try plan(classifier, passes: passes, function: "loss_train_step")
    let writing = Set(function.results.indices.filter { function.results[$0].writes != nil })
    // The new parameters, both moments of each and adam.step.
    #expect(writing.count == 3 * 3 + 1)
    #expect(plan.inPlaceResults == writing)
}

@Test func aResultWhoseParameterIsReadLaterIsNotInPlace() throws {
    let text = """
        func @late(%x: f32[4] input, %p: f32[4] state) -> (p: f32[4] writes %p, q: f32[4]) {
          %n = add %p, %x : f32[4]
          %m = mul %n, %n : f32[4]
          %q = mul %m, %p : f32[4]
          return %n, %q
        }

        func @shifted(%x: f32[2,2] input, %p: f32[2,2] state) -> (p: f32[2,2] writes %p) {
          %t = transpose %p {perm = [1, 0]} : f32[2,2]
          %n = add %t, %x : f32[2,2]
          return %n
        }

        func @own(%x: f32[2,2] input, %p: f32[2,2] state) -> (p: f32[2,2] writes %p, s: f32[]) {
          %n = add %p, %x : f32[2,2]
          %s = reduce_sum %n {axes = [0, 1]} : f32[]
          return %n, %s
        }
        """
    // %q reads %p after %n is written: %n in %p's buffer would change what %q reads.
    #expect(try plan(text, function: "late").1.inPlaceResults.isEmpty)
    // Element (i, j) of the update reads element (j, i) of %p, which an earlier element overwrote.
    #expect(try plan(text, function: "shifted").1.inPlaceResults.isEmpty)
    // Reading the result itself later is fine: it lives in %p's buffer from then on.
    #expect(try plan(text, function: "own").1.inPlaceResults == [0])
}

@Test func aScatterAddIsComputedOverItsTarget() throws {
    let text = """
        func @f(%a: f32[10,4] input, %ids: i64[6] input, %u: f32[6,4] input) -> (kept: f32[10,4], out: f32[10,4]) {
          %base = tanh %a : f32[10,4]
          %s = scatter_add %base, %ids, %u : f32[10,4]
          %kept = mul %s, %base : f32[10,4]
          %other = exp %a : f32[10,4]
          %t = scatter_add %other, %ids, %u : f32[10,4]
          %out = mul %t, %t : f32[10,4]
          return %kept, %out
        }
        """
    let (function, plan) = try plan(text, function: "f")
    let scatters = function.operations.filter { $0.opcode == .scatterAdd }
    let (s, base) = (scatters[0].result, scatters[0].operands[0])
    let (t, other) = (scatters[1].result, scatters[1].operands[0])
    // %kept reads %base after the first scatter: that scatter gets a buffer of its own.
    #expect(plan.inPlaceDonors[s] == nil && plan.locations[s] != plan.locations[base])
    // The second scatter is its target's last read: it adds into the target's buffer.
    #expect(plan.inPlaceDonors[t] == other && plan.locations[t] == plan.locations[other])
}
