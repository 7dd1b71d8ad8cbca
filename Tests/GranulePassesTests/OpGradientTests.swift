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

@Test("every differentiable op has gradient checks at two or more shapes")
func everyOpIsCovered() {
    var cases: [Opcode: Int] = [:]
    for testCase in allGradientCases {
        for opcode in Opcode.allCases where testCase.body.contains(" = \(opcode.name) ") { cases[opcode, default: 0] += 1 }
    }
    let notDifferentiable: Set<Opcode> = [.compare, .iota, .constant, .maxPool2dGrad, .crossEntropyGrad]
    let missing = Opcode.allCases.filter { !notDifferentiable.contains($0) && cases[$0, default: 0] < 2 }
    #expect(missing.isEmpty, "ops with fewer than two gradient checks: \(missing.map(\.name).sorted())")
}
