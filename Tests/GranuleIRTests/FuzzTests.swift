import GranuleIR
import Testing

/// Feeds deterministic mutations of the corpus to the parser and verifier. Every variant must end
/// in success or a located diagnostic (`file:line:col: error: ...`), quickly and without crashing;
/// variants that are valid must also print canonically.
@Suite struct FuzzTests {
    static let variantCount = 12_000
    /// The most one variant may take to parse, verify and print (debug build).
    static let budgetPerVariant = Duration.milliseconds(250)

    /// Checks one variant; a description of what went wrong, or nil.
    static func check(_ text: String, file: String) -> String? {
        let module: Module
        do {
            module = try Parser.parse(text, file: file)
            try Verifier.verify(module)
        } catch {
            let description = error.description
            if error.location == nil {
                return description.hasPrefix("error: ") ? nil : "malformed diagnostic: \(description)"
            }
            return isLocated(description, file: file) ? nil : "malformed diagnostic: \(description)"
        }
        let printed = Printer.print(module, options: .full)
        do {
            let reparsed = try Parser.parse(printed, file: file)
            try Verifier.verify(reparsed)
            let again = Printer.print(reparsed, options: .full)
            return again == printed ? nil : "printing is not canonical:\n\(printed)\nvs\n\(again)"
        } catch {
            return "printed module does not parse back: \(error)\n\(printed)"
        }
    }

    /// Whether `description` reads `<file>:<line>:<column>: error: ...`.
    static func isLocated(_ description: String, file: String) -> Bool {
        guard description.hasPrefix(file + ":") else { return false }
        let rest = description.dropFirst(file.count + 1)
        let parts = rest.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(\.isASCII), parts[0].allSatisfy(\.isNumber),
            !parts[1].isEmpty, parts[1].allSatisfy(\.isASCII), parts[1].allSatisfy(\.isNumber)
        else { return false }
        return parts[2].hasPrefix(" error: ")
    }

    @Test(.timeLimit(.minutes(2)))
    func mutatedCorpusNeverCrashes() {
        let corpus = Corpus.all()
        #expect(!corpus.isEmpty)
        var mutator = Mutator(seed: 0x6772_616E_756C_65)  // "granule"
        let clock = ContinuousClock()
        var failures: [String] = []
        var accepted = 0
        for index in 0..<Self.variantCount {
            let entry = corpus[index % corpus.count]
            let text = mutator.mutate(entry.text)
            let file = "fuzz-\(index).tir"
            var problem: String?
            let elapsed = clock.measure { problem = Self.check(text, file: file) }
            if elapsed > Self.budgetPerVariant {
                problem = (problem.map { $0 + "; " } ?? "") + "took \(elapsed)"
            }
            if problem == nil, (try? Parser.parse(text, file: file)) != nil { accepted += 1 }
            if let problem {
                failures.append("variant \(index) of \(entry.name): \(problem)\n--- input ---\n\(text)\n---")
                if failures.count >= 5 { break }
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n\n"))")
        // The mutations should not all be trivially rejected by the lexer.
        #expect(accepted > 0)
    }

    @Test func mutatorIsDeterministic() {
        var a = Mutator(seed: 42)
        var b = Mutator(seed: 42)
        let text = Corpus.samples[0].text
        for _ in 0..<100 { #expect(a.mutate(text) == b.mutate(text)) }
    }

    @Test func piecesJoinBackToTheText() {
        for entry in Corpus.samples { #expect(Mutator.pieces(entry.text).joined() == entry.text) }
    }

    /// Hand-written edge cases aimed at overflow and odd values: each must give a clean diagnostic.
    /// (The first two crashed the verifier with an arithmetic overflow before the parser bounded
    /// dimensions by 2^40.)
    @Test(arguments: [
        // A huge dimension hidden behind a zero one, then arithmetic on it.
        "func @f(%x: f32[0,9223372036854775807] input) -> (y: f32[0,9223372036854775807]) { %y = pad %x {low = [0, 0], high = [0, 1]} : f32[0,9223372036854775807] return %y }",
        "func @f(%x: f32[0,9223372036854775807] input) -> (y: f32[0,9223372036854775807]) { %y = concat %x, %x {axis = 1} : f32[0,9223372036854775807] return %y }",
        "func @f(%x: f32[0,4611686018427387904,4] input) -> (y: f32[0,4611686018427387904,4]) { %y = reshape %x : f32[0,4611686018427387904,4] return %y }",
        "func @f(%x: f32[2] input) -> (y: f32[2]) { %y = neg %x : f32[2] return %y } func",
        "func @f(%x: f32[2] input) -> (y: f32[2]) { %y = constant splat<99999999999999999999> : f32[2] return %y }",
        "func @f() -> (y: i32[2]) { %y = constant dense<[1e999, -inf]> : i32[2] return %y }",
        "func @f() -> (y: i1[]) { %y = constant splat<-9223372036854775808> : i1[] return %y }",
        "func @f() -> (y: f32[2]) { %y = iota {axis = -1} : f32[2] return %y }",
        "func @f(%x: f32[2,3] input) -> (y: f32[2,3]) { %y = transpose %x {perm = [1, 1]} : f32[2,3] return %y }",
        "func @f(%x: f32[2,3] input) -> (y: f32[2,3]) { %y = slice %x {start = [-9223372036854775808, 0], limit = [9223372036854775807, 3]} : f32[2,3] return %y }",
        "func @f(%x: f32[1,4,4,2] input) -> (y: f32[1,4,4,2]) { %y = max_pool2d %x {window = [-9223372036854775808, 1]} : f32[1,4,4,2] return %y }",
        "func @f(%x: f32[] input) -> (y: f32[]) { %y = layer_norm %x, %x, %x {eps = 1e-5} : f32[] return %y }",
    ])
    func overflowAndEdgeCasesGiveDiagnostics(_ text: String) {
        do {
            try Verifier.verify(try Parser.parse(text, file: "edge.tir"))
            Issue.record("accepted invalid IR")
        } catch {
            #expect(Self.isLocated(error.description, file: "edge.tir"), "\(error)")
        }
    }
}
