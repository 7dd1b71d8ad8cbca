import Foundation
import GranuleCodegen
import GranuleIR
import Testing

/// `RuntimeCache`: the C runtime's objects are compiled once per content and reused; a changed file
/// gets new objects; an unwritable cache and a broken source behave.
@Suite struct RuntimeCacheTests {
    /// A private copy of Runtime/ (what the cache reads: src, main, include) and a cache directory.
    struct Sandbox {
        let root: URL
        var runtime: String { root.appendingPathComponent("Runtime").path }
        var cache: String { root.appendingPathComponent("cache").path }
        var scratch: String { root.appendingPathComponent("scratch").path }

        init(_ name: String) throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("granule-runtime-cache-\(name)-\(UUID().uuidString)")
            let runtime = root.appendingPathComponent("Runtime")
            try FileManager.default.createDirectory(at: runtime, withIntermediateDirectories: true)
            for folder in ["src", "main", "include"] {
                try FileManager.default.copyItem(
                    at: packageRoot.appendingPathComponent("Runtime").appendingPathComponent(folder),
                    to: runtime.appendingPathComponent(folder))
            }
        }

        func objects(cache: String?) throws -> [String] {
            try RuntimeCache(runtimeDirectory: runtime, compiler: "cc", cacheDirectory: cache).objects(scratch: scratch)
        }

        func append(_ text: String, to file: String) throws {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(runtime)/\(file)"))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(text.utf8))
            try handle.close()
        }

        func entries(of directory: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        }

        func remove() { try? FileManager.default.removeItem(at: root) }
    }

    static func modified(_ path: String) throws -> Date? {
        try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date
    }

    @Test("the objects are compiled once per content, and again after a header changes")
    func cachedByContent() throws {
        let sandbox = try Sandbox("content")
        defer { sandbox.remove() }
        let sources = sandbox.entries(of: "\(sandbox.runtime)/src").filter { $0.hasSuffix(".c") }.count
            + sandbox.entries(of: "\(sandbox.runtime)/main").filter { $0.hasSuffix(".c") }.count
        let first = try sandbox.objects(cache: sandbox.cache)
        #expect(first.count == sources)
        #expect(first.allSatisfy { $0.hasPrefix(sandbox.cache + "/runtime-") && FileManager.default.fileExists(atPath: $0) })
        let stamp = try Self.modified(first[0])

        let second = try sandbox.objects(cache: sandbox.cache)
        #expect(second == first)
        #expect(try Self.modified(second[0]) == stamp, "a cached object was compiled again")

        try sandbox.append("\n/* a change the objects must follow */\n", to: "src/internal.h")
        let third = try sandbox.objects(cache: sandbox.cache)
        #expect(third.count == sources)
        #expect(Set(third).isDisjoint(with: Set(first)))
        #expect(sandbox.entries(of: sandbox.cache).filter { $0.hasPrefix("runtime-") }.count == 2, "\(sandbox.entries(of: sandbox.cache))")
    }

    @Test("a cache that cannot be written falls back to the caller's scratch directory")
    func unwritableCache() throws {
        let sandbox = try Sandbox("unwritable")
        defer { sandbox.remove() }
        let blocker = sandbox.root.appendingPathComponent("not-a-directory").path
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
        let objects = try sandbox.objects(cache: blocker + "/cache")
        #expect(!objects.isEmpty)
        #expect(objects.allSatisfy { $0.hasPrefix(sandbox.scratch + "/") && FileManager.default.fileExists(atPath: $0) })
    }

    @Test("a source that does not compile is an error naming it, and leaves nothing in the cache")
    func brokenSource() throws {
        let sandbox = try Sandbox("broken")
        defer { sandbox.remove() }
        try sandbox.append("\nthis is not C;\n", to: "main/params.c")
        #expect {
            _ = try sandbox.objects(cache: sandbox.cache)
        } throws: { error in
            let message = (error as? Diagnostic)?.description ?? "\(error)"
            return message.contains("compiling the C runtime failed") && message.contains("main/params.c")
        }
        #expect(sandbox.entries(of: sandbox.cache).isEmpty, "\(sandbox.entries(of: sandbox.cache))")
    }
}
