import GranuleCheck
import GranuleIR
import GranuleInterpreter
import Testing

extension GradientCase: CustomTestStringConvertible {
    public var testDescription: String { name }
}

@Test("numerical gradient check", arguments: allGradientCases)
func gradientMatchesFiniteDifferences(_ testCase: GradientCase) throws {
    let module = try Parser.parse(testCase.source, file: testCase.name)
    try Verifier.verify(module)
    let function = module.functions[0]
    for seed in [UInt64(1), 2] {
        let inputs = RandomInputs.make(for: function, seed: seed)
        let report = try GradientCheck().run(function, inputs: inputs)
        #expect(!report.entries.isEmpty)
        for entry in report.entries {
            #expect(entry.relativeError <= 1e-6, "\(testCase.name) seed \(seed): grad.\(entry.parameter) relative error \(entry.relativeError)")
            #expect(entry.gradientNorm > 0, "\(testCase.name): grad.\(entry.parameter) is zero, so the check proves nothing")
        }
    }
}

@Test("every differentiable op has a gradient check")
func everyOpIsCovered() {
    let covered = Set(allGradientCases.flatMap { testCase in
        Opcode.allCases.filter { testCase.body.contains(" = \($0.name) ") }
    })
    let notDifferentiable: Set<Opcode> = [.compare, .iota, .constant, .maxPool2dGrad, .crossEntropyGrad]
    let missing = Set(Opcode.allCases).subtracting(covered).subtracting(notDifferentiable)
    #expect(missing.isEmpty, "ops without a gradient check: \(missing.map(\.name).sorted())")
}
