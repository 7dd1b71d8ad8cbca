import ArgumentParser
import Foundation
import GranuleIR

struct VizCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "viz",
        abstract: "Draw the dataflow graph of an IR file as Graphviz DOT, or as SVG when the output ends in .svg.",
        discussion: "Trainable, frozen, state and input parameters are drawn distinctly. SVG needs Graphviz's `dot`.")

    @Argument(help: "The .tir file.") var file: String

    @Option(name: .shortAndLong, help: "Output file (.dot or .svg).")
    var output: String

    func validate() throws {
        // Anything but SVG is written as DOT text: an image name would get a file no viewer opens.
        let suffix = URL(fileURLWithPath: output).pathExtension.lowercased()
        guard !["png", "jpg", "jpeg", "gif", "pdf", "ps", "eps", "bmp", "webp", "tif", "tiff"].contains(suffix) else {
            throw ValidationError("-o \(output): viz writes DOT (.dot, .gv) or SVG (.svg); for .\(suffix) run dot -T\(suffix) on the DOT file")
        }
    }

    func run() throws {
        try runReportingErrors {
            let module = try loadModule(path: file)
            let dot = Graphviz.dot(module)
            if output.hasSuffix(".svg") {
                let resolved = try resolveOutput(output)
                try createParentDirectory(of: resolved)
                try renderSVG(dot, to: resolved)
            } else {
                try writeAtomically(dot, to: output)
            }
        }
    }

    /// Pipes the DOT text through `dot -Tsvg` into a temporary file, then renames it into place.
    private func renderSVG(_ dot: String, to output: String) throws {
        guard let dotPath = ["/usr/bin/dot", "/usr/local/bin/dot"].first(where: FileManager.default.isExecutableFile) else {
            throw CommandFailure("\(output): error: rendering SVG needs Graphviz's `dot` (apt-get install graphviz); write a .dot file instead")
        }
        let temporary = output + ".tmp"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: dotPath)
        process.arguments = ["-Tsvg", "-o", temporary]
        let pipe = Pipe()
        process.standardInput = pipe
        do {
            try process.run()
            pipe.fileHandleForWriting.write(Data(dot.utf8))
            try pipe.fileHandleForWriting.close()
            process.waitUntilExit()
        } catch {
            throw CommandFailure("\(output): error: cannot run dot: \(error.localizedDescription)")
        }
        guard process.terminationStatus == 0 else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw CommandFailure("\(output): error: dot failed with status \(process.terminationStatus)")
        }
        guard rename(temporary, output) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw CommandFailure("\(output): error: cannot write: \(reason)")
        }
    }
}
