import ArgumentParser
import Foundation
import GranuleIR
import GranuleInterpreter
import GranuleCheck
import GranuleSupport

/// Reads, parses and verifies an IR file, turning every failure into a located diagnostic.
func loadModule(path: String) throws -> Module {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CommandFailure("\(path): error: cannot read the file")
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw CommandFailure("\(path): error: the file is not UTF-8 text")
    }
    do throws(Diagnostic) {
        let module = try Parser.parse(text, file: path)
        try Verifier.verify(module)
        return module
    } catch {
        throw CommandFailure(error.description)
    }
}

/// Picks the function a command works on: the named one, or the only one.
func selectFunction(_ module: Module, named name: String?, path: String) throws -> Function {
    if let name {
        guard let function = module.function(named: name) else {
            let known = module.functions.map { "@" + $0.name }.joined(separator: ", ")
            throw CommandFailure("\(path): error: no function @\(name) (the module has \(known))")
        }
        return function
    }
    guard module.functions.count == 1, let only = module.functions.first else {
        let known = module.functions.map { "@" + $0.name }.joined(separator: ", ")
        throw CommandFailure("\(path): error: the module has \(module.functions.count) functions (\(known)); choose one with --function")
    }
    return only
}

/// The file to write for the output `path` (a symbolic link is followed); a directory, device or
/// other non-regular file is refused (see `OutputFile`).
func resolveOutput(_ path: String) throws -> String {
    do {
        return try OutputFile.resolve(path)
    } catch {
        throw CommandFailure("\(path): error: \(error.message)")
    }
}

/// Runs a lowering of the spec at `specPath`; an error without a location of its own (the graph
/// builder's checks, e.g. a tensor over 2^40 elements from an absurd batch size) is reported
/// against the spec file rather than as a bare "building 'cast': ...".
func lowering<T>(_ specPath: String, _ body: () throws(Diagnostic) -> T) throws -> T {
    do throws(Diagnostic) {
        return try body()
    } catch {
        guard error.location == nil else { throw error }
        throw CommandFailure("\(specPath): error: lowering the model: \(error.message)")
    }
}

/// Creates the directory `path` goes in, and the missing ones above it: every command that
/// writes a file does, as `mkdir -p` would. Errors name the directory that could not be made and
/// why (strerror: Foundation's message for these is "The operation could not be completed").
func createParentDirectory(of path: String) throws {
    var missing: [String] = []
    var directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
    var info = stat()
    while stat(directory, &info) != 0 {
        guard errno == ENOENT, directory != "/" else {
            throw CommandFailure("\(path): error: cannot create the directory \(directory): \(String(cString: strerror(errno)))")
        }
        missing.append(directory)
        directory = URL(fileURLWithPath: directory).deletingLastPathComponent().path
    }
    if (info.st_mode & S_IFMT) != S_IFDIR { throw CommandFailure("\(path): error: \(directory) is not a directory") }
    for directory in missing.reversed() where mkdir(directory, 0o777) != 0 && errno != EEXIST {
        throw CommandFailure("\(path): error: cannot create the directory \(directory): \(String(cString: strerror(errno)))")
    }
}

/// Writes a file atomically: a temporary sibling, then rename, so no half-written output remains.
func writeAtomically(_ text: String, to path: String) throws {
    let resolved = try resolveOutput(path)
    try createParentDirectory(of: resolved)
    do {
        try Data(text.utf8).write(to: URL(fileURLWithPath: resolved), options: .atomic)
    } catch {
        throw CommandFailure("\(path): error: cannot write: \(error.localizedDescription)")
    }
}

/// A failure already formatted for the user; the command exits with status 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command body, printing located errors on standard error and exiting with status 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as CommandFailure {
        printError(failure.description)
        throw ExitCode.failure
    } catch let diagnostic as Diagnostic {
        printError(diagnostic.description)
        throw ExitCode.failure
    }
}

/// Parameter values for a function: tensors from a .safetensors file, the rest (with a seed)
/// deterministic random values.
func inputValues(for function: Function, file: String?, randomSeed: UInt64?, scale: Double) throws -> [String: Tensor] {
    var values: [String: Tensor] = [:]
    if let file {
        let parameterNames = Set(function.parameters.map { function.name(of: $0.value) })
        var unused: [String] = []
        for (name, tensor) in try Safetensors.read(path: file) {
            values[name] = tensor
            if !parameterNames.contains(name) { unused.append(name) }
        }
        // Not an error (one file often holds the tensors of several functions), but a misspelt
        // name would otherwise go unnoticed, its parameter filled with random values.
        if !unused.isEmpty {
            let shown = unused.prefix(5).map { "'\($0)'" }.joined(separator: ", ") + (unused.count > 5 ? ", ..." : "")
            let what = unused.count == 1 ? "1 tensor is not a parameter" : "\(unused.count) tensors are not parameters"
            FileHandle.standardError.write(Data("\(file): warning: \(what) of @\(function.name), ignored: \(shown)\n".utf8))
        }
    }
    if let randomSeed {
        for parameter in function.parameters where values[function.name(of: parameter.value)] == nil {
            let type = function.type(of: parameter.value)
            if type.elementCount > Interpreter.maxElements {
                throw CommandFailure("error: %\(function.name(of: parameter.value)) is \(type): too large to fill with random values on this machine")
            }
        }
        values.merge(RandomInputs.make(for: function, seed: randomSeed, scale: scale, skipping: Set(values.keys))) { given, _ in given }
    }
    return values
}
