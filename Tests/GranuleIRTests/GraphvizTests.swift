import Foundation
import GranuleIR
import Testing

@Suite struct GraphvizTests {
    static let source = """
        func @step(%x: f32[2] input, %w: f32[2] trainable, %e: f32[2] frozen, %m: f32[2] state) -> (loss: f32[], new_m: f32[2] writes %m) {
          %half = constant splat<0.5> : f32[]
          %d = sub %x, %w : f32[2]
          %s = mul %d, %e : f32[2]
          %m1 = mul %s, %half : f32[2]
          %loss = reduce_sum %m1 {axes = [0]} : f32[]
          return %loss, %m1
        }
        """

    static func dot() throws -> String { Graphviz.dot(try Parser.parse(source, file: "step.tir")) }

    @Test func isOneDigraphWithAClusterPerFunctionAndALegend() throws {
        let dot = try Self.dot()
        #expect(dot.hasPrefix("digraph granule {\n"))
        #expect(dot.hasSuffix("}\n"))
        #expect(dot.contains("subgraph cluster_f0 {"))
        #expect(dot.contains("label=\"@step\";"))
        #expect(dot.contains("subgraph cluster_legend {"))
        #expect(dot.components(separatedBy: "{").count == dot.components(separatedBy: "}").count)
    }

    @Test func parametersAreStyledByRole() throws {
        let dot = try Self.dot()
        // Values are numbered in definition order: %x, %w, %e, %m, %half, %d, %s, %m1, %loss.
        #expect(dot.contains(##"f0_v0 [label="%x\nf32[2]\ninput", shape=ellipse, style=filled, fillcolor="#add8f0"];"##))
        #expect(dot.contains(##"f0_v1 [label="%w\nf32[2]\ntrainable", shape=cylinder, style=filled, fillcolor="#8fd18f"];"##))
        #expect(dot.contains(##"f0_v2 [label="%e\nf32[2]\nfrozen", shape=cylinder, style=filled, fillcolor="#c8c8c8"];"##))
        #expect(dot.contains(##"f0_v3 [label="%m\nf32[2]\nstate", shape=cylinder, style=filled, fillcolor="#f5a142"];"##))
    }

    @Test func opsAreBoxesWithNameAndTypeAndConstantsAreSmall() throws {
        let dot = try Self.dot()
        #expect(dot.contains(#"f0_v5 [label="sub\nf32[2]", tooltip="%d = sub %x, %w : f32[2]", shape=box"#))
        #expect(dot.contains(#"f0_v8 [label="reduce_sum\nf32[]", tooltip="%loss = reduce_sum %m1 {axes = [0]} : f32[]""#))
        let constant = try #require(dot.split(separator: "\n").first { $0.contains("f0_v4 [") })
        #expect(constant.contains(#"label="splat<0.5>\nf32[]""#))
        #expect(constant.contains("fontsize=7"))
    }

    @Test func edgesRunFromOperandsToOps() throws {
        let dot = try Self.dot()
        // sub is not commutative: its operands are numbered.
        #expect(dot.contains("f0_v0 -> f0_v5 [headlabel=\"0\"];"))
        #expect(dot.contains("f0_v1 -> f0_v5 [headlabel=\"1\"];"))
        // mul is: no numbers.
        #expect(dot.contains("f0_v5 -> f0_v6;"))
        #expect(dot.contains("f0_v7 -> f0_v8;"))
    }

    @Test func resultsAreOutputNodesAndWritesAreDashed() throws {
        let dot = try Self.dot()
        #expect(dot.contains(#"f0_r0 [label="loss", shape=invhouse"#))
        #expect(dot.contains("f0_v8 -> f0_r0;"))
        #expect(dot.contains(#"f0_r1 [label="new_m""#))
        #expect(dot.contains("f0_v7 -> f0_r1;"))
        let writes = try #require(dot.split(separator: "\n").first { $0.contains("f0_r1 -> f0_v3") })
        #expect(writes.contains("style=dashed"))
        #expect(!dot.contains("f0_r0 -> f0_v"))
    }

    @Test func functionsGetSeparateClusters() throws {
        let module = try Parser.parse(Corpus.samples.first { $0.name == "sample-state.tir" }!.text)
        let dot = Graphviz.dot(module)
        #expect(dot.contains("subgraph cluster_f0 {"))
        #expect(dot.contains("subgraph cluster_f1 {"))
        #expect(dot.contains("label=\"@constants\";"))
        // Large constants are elided in labels.
        #expect(dot.contains(#"label="dense<elided 20 values>\nf32[20]""#))
    }

    @Test func labelsAreEscaped() {
        var function = Function(name: #"we"ird\name"#)
        let x = function.addParameter(named: #"x"y"#, type: TensorType(.f32, [2]), role: .input)
        function.results = [FunctionResult(name: "a\"b\\c\nd", value: x)]
        let dot = Graphviz.dot(Module(functions: [function]))
        #expect(dot.contains(#"label="@we\"ird\\name";"#))
        #expect(dot.contains(#"f0_v0 [label="%x\"y\nf32[2]\ninput""#))
        #expect(dot.contains(#"f0_r0 [label="a\"b\\c\nd""#))
        // No raw line break or unescaped quote can end a statement early: every line is whole.
        for line in dot.split(separator: "\n") {
            let unescapedQuotes = line.replacingOccurrences(of: #"\\"#, with: "").replacingOccurrences(of: #"\""#, with: "")
                .filter { $0 == "\"" }.count
            #expect(unescapedQuotes % 2 == 0, "\(line)")
        }
    }

    @Test func emptyModuleStillHasTheLegend() {
        let dot = Graphviz.dot(Module())
        #expect(dot.contains("legend_trainable"))
        #expect(!dot.contains("cluster_f0"))
    }

    /// Graphviz itself accepts the output (skipped when `dot` is not installed).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dot")))
    func graphvizAcceptsTheOutput() throws {
        let modules = try Corpus.samples.map { try Parser.parse($0.text, file: $0.name) }
        let escaped = Module(functions: [Function(name: "odd\"name")])
        for module in modules + [escaped] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/dot")
            process.arguments = ["-Tsvg"]
            let input = Pipe()
            let errors = Pipe()
            process.standardInput = input
            process.standardOutput = FileHandle.nullDevice
            process.standardError = errors
            try process.run()
            input.fileHandleForWriting.write(Data(Graphviz.dot(module).utf8))
            try input.fileHandleForWriting.close()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(message)")
            #expect(message.isEmpty, "\(message)")
        }
    }
}
