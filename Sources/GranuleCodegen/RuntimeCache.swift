import Foundation
import GranuleIR

/// The C runtime's object files, compiled once per content and reused by every later link.
///
/// A compiled program links `Runtime/src/*.c` and `Runtime/main/*.c`. Compiling them takes about
/// four seconds on two cores, more than half of a BART-base compile, and their result depends only
/// on their text, the headers, the compiler and the flags. So the objects are kept in
/// `<cache>/runtime-<key>/`, where the key hashes all of that; a change to any runtime file or to
/// `$CC` makes a new key. The cache directory is `$GRANULE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/granule`, else `~/.cache/granule`.
///
/// Concurrent compiles are safe: each builds into its own temporary directory and renames it into
/// place; the loser of a race uses the winner's objects. When the cache cannot be written, the
/// objects are built into a temporary directory for this link only. Stale temporaries (older than
/// an hour) are removed.
///
/// Deliberately not a general build system: no dependency scanning beyond "every file in these
/// directories", and no eviction of old keys (each is about 1 MB).
public struct RuntimeCache: Sendable {
    public var runtimeDirectory: String
    public var compiler: String
    /// Where the objects are kept; nil: compile into the caller's scratch directory every time.
    public var cacheDirectory: String?

    static let flags = ["-std=c11", "-O2", "-D_GNU_SOURCE"]

    public init(runtimeDirectory: String, compiler: String, cacheDirectory: String? = RuntimeCache.defaultCacheDirectory()) {
        self.runtimeDirectory = runtimeDirectory
        self.compiler = compiler
        self.cacheDirectory = cacheDirectory
    }

    /// The runtime's object files, compiling them first when this content has none cached.
    /// `scratch` is a directory the caller owns, used when the cache cannot be written.
    public func objects(scratch: String) throws(Diagnostic) -> [String] {
        let sources = try sourceFiles()
        let key = try cacheKey(sources: sources)
        let fileManager = FileManager.default
        if let cache = cacheDirectory {
            let final = "\(cache)/runtime-\(key)"
            if let cached = RuntimeCache.completeObjects(in: final, sources: sources) { return cached }
            if (try? fileManager.createDirectory(atPath: cache, withIntermediateDirectories: true)) != nil {
                removeStaleTemporaries(in: cache)
                let temporary = "\(final).tmp-\(getpid())-\(UUID().uuidString.prefix(8))"
                if (try? fileManager.createDirectory(atPath: temporary, withIntermediateDirectories: false)) != nil {
                    do {
                        try compile(sources, into: temporary)
                    } catch {
                        try? fileManager.removeItem(atPath: temporary)
                        throw error
                    }
                    if rename(temporary, final) != 0 { try? fileManager.removeItem(atPath: temporary) }
                    if let cached = RuntimeCache.completeObjects(in: final, sources: sources) { return cached }
                }
            }
        }
        let local = "\(scratch)/runtime-objects"
        try? fileManager.createDirectory(atPath: local, withIntermediateDirectories: true)
        try compile(sources, into: local)
        return sources.map { RuntimeCache.objectPath(for: $0, in: local) }
    }

    /// `src/*.c` then `main/*.c`; main/main.c must exist (it is the compiled program's `main`).
    func sourceFiles() throws(Diagnostic) -> [String] {
        let sources = RuntimeCache.files(in: "\(runtimeDirectory)/src", suffixes: [".c"])
        guard !sources.isEmpty else { throw Diagnostic(file: runtimeDirectory, "no runtime sources in src/") }
        let commandLine = RuntimeCache.files(in: "\(runtimeDirectory)/main", suffixes: [".c"])
        guard commandLine.contains("\(runtimeDirectory)/main/main.c") else {
            throw Diagnostic(file: runtimeDirectory, "no main/main.c (the command line of compiled programs)")
        }
        return sources + commandLine
    }

    /// FNV-1a (64 bit) over the compiler's identity, the flags, and every source and header, name
    /// and content. Not cryptographic: it only has to tell versions of our own files apart.
    func cacheKey(sources: [String]) throws(Diagnostic) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: some Sequence<UInt8>) {
            for byte in bytes {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
            hash ^= 0xff
            hash = hash &* 0x0000_0100_0000_01b3
        }
        mix(Array(try RuntimeCache.run([compiler, "--version"]).utf8))
        mix(Array((RuntimeCache.flags + includeFlags).joined(separator: " ").utf8))
        let headers = ["src", "main", "include"].flatMap { RuntimeCache.files(in: "\(runtimeDirectory)/\($0)", suffixes: [".h"]) }
        for file in sources + headers {
            guard let contents = FileManager.default.contents(atPath: file) else { throw Diagnostic(file: file, "cannot read the runtime source") }
            mix(Array(String(file.dropFirst(runtimeDirectory.count)).utf8))
            mix(contents)
        }
        return String(hash, radix: 16)
    }

    var includeFlags: [String] { ["-I\(runtimeDirectory)/include", "-I\(runtimeDirectory)/src"] }

    /// Compiles every source concurrently (one compiler process each) into `directory`.
    func compile(_ sources: [String], into directory: String) throws(Diagnostic) {
        var running: [(source: String, process: Process, errors: Pipe)] = []
        for source in sources {
            let errors = Pipe()
            let arguments = [compiler] + RuntimeCache.flags + includeFlags + ["-c", source, "-o", RuntimeCache.objectPath(for: source, in: directory)]
            do {
                running.append((source, try ToolProcess.start(arguments, errors: errors), errors))
            } catch {
                for started in running { started.process.waitUntilExit() }  // no compiler left writing into `directory`
                throw error
            }
        }
        var failures: [String] = []
        for (source, process, errors) in running {
            let diagnostics = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            if process.terminationStatus != 0 {
                failures.append("\(source):\n\(String(decoding: diagnostics, as: UTF8.self))")
            }
        }
        if !failures.isEmpty { throw Diagnostic("compiling the C runtime failed:\n" + failures.joined(separator: "\n")) }
    }

    /// `src/program.c` → `src_program.o`, so that equal names in src/ and main/ cannot collide.
    static func objectPath(for source: String, in directory: String) -> String {
        let url = URL(fileURLWithPath: source)
        let folder = url.deletingLastPathComponent().lastPathComponent
        return "\(directory)/\(folder)_\(url.deletingPathExtension().lastPathComponent).o"
    }

    /// The objects in `directory` when there is one for every source, else nil.
    static func completeObjects(in directory: String, sources: [String]) -> [String]? {
        let objects = sources.map { objectPath(for: $0, in: directory) }
        return objects.allSatisfy { FileManager.default.fileExists(atPath: $0) } ? objects : nil
    }

    public static func defaultCacheDirectory() -> String? {
        let environment = ProcessInfo.processInfo.environment
        if let configured = environment["GRANULE_CACHE_DIR"], !configured.isEmpty { return configured }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return "\(xdg)/granule" }
        if let home = environment["HOME"], !home.isEmpty { return "\(home)/.cache/granule" }
        return nil
    }

    /// Temporaries of compiles that died (older than an hour; a live one takes seconds).
    func removeStaleTemporaries(in cache: String) {
        let fileManager = FileManager.default
        guard let names = try? fileManager.contentsOfDirectory(atPath: cache) else { return }
        for name in names where name.hasPrefix("runtime-") && name.contains(".tmp-") {
            let path = "\(cache)/\(name)"
            if let modified = (try? fileManager.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
               Date().timeIntervalSince(modified) > 3600 {
                try? fileManager.removeItem(atPath: path)
            }
        }
    }

    static func files(in directory: String, suffixes: [String]) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { name in suffixes.contains { name.hasSuffix($0) } }.sorted().map { "\(directory)/\($0)" }
    }

    /// Runs a tool and returns its standard output; a failure to start or a non-zero exit throws.
    static func run(_ arguments: [String]) throws(Diagnostic) -> String {
        let output = Pipe()
        let process = try ToolProcess.start(arguments, output: output, errors: FileHandle.nullDevice)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw Diagnostic("'\(arguments.joined(separator: " "))' failed (exit \(process.terminationStatus))") }
        return String(decoding: data, as: UTF8.self)
    }
}
