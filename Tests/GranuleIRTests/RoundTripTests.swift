import GranuleIR
import Testing

/// Printing is canonical: for every corpus module that parses and verifies, parse → print →
/// parse → print gives the same text, with default options and with `PrintOptions.full`.
@Suite struct RoundTripTests {
    @Test(arguments: Corpus.all().map(\.name))
    func printedTextRoundTrips(name: String) throws {
        let entry = try #require(Corpus.all().first { $0.name == name })
        guard let module = try? Parser.parse(entry.text, file: entry.name), (try? Verifier.verify(module)) != nil else {
            return  // Error tests (IR/tests/verifier, ...) are covered by FileCheck.
        }

        let full = Printer.print(module, options: .full)
        let fullAgain = Printer.print(try Parser.parse(full, file: name), options: .full)
        #expect(fullAgain == full)

        let printed = Printer.print(module)
        if printed.contains("dense<elided") {
            // Elided constants cannot round-trip; the parser says so.
            #expect(throws: Diagnostic.self) { try Parser.parse(printed, file: name) }
        } else {
            #expect(Printer.print(try Parser.parse(printed, file: name)) == printed)
        }
    }

    @Test func corpusCoversEveryOpcode() throws {
        var used: Set<Opcode> = []
        for entry in Corpus.samples {
            let module = try Parser.parse(entry.text, file: entry.name)
            try Verifier.verify(module)
            for function in module.functions { for op in function.operations { used.insert(op.opcode) } }
        }
        let missing = Opcode.allCases.filter { !used.contains($0) }.map(\.name)
        #expect(missing.isEmpty, "samples do not use \(missing)")
    }

    @Test func largeConstantsAreElidedByDefaultOnly() throws {
        let entry = try #require(Corpus.samples.first { $0.name == "sample-state.tir" })
        let module = try Parser.parse(entry.text, file: entry.name)
        #expect(Printer.print(module).contains("%big = constant dense<elided 20 values> : f32[20]"))
        #expect(Printer.print(module, options: .full).contains("19.5]> : f32[20]"))
        #expect(Printer.print(module, options: .full).contains("dense<[inf, -inf, nan, -0.0]>"))
    }

    @Test func elidedConstantGivesAClearError() {
        let text = """
            func @f() -> (c: f32[20]) {
              %c = constant dense<elided 20 values> : f32[20]
              return %c
            }
            """
        let expected = "elided.tir:2:23: error: this constant's data was elided when it was printed; print the module with --full-constants to round-trip it"
        #expect(throws: Diagnostic.self) { try Parser.parse(text, file: "elided.tir") }
        do {
            _ = try Parser.parse(text, file: "elided.tir")
        } catch {
            #expect(error.description == expected)
        }
    }
}
