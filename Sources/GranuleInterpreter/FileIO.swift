#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import GranuleIR
import GranuleSupport

/// Whole-file reads and atomic whole-file writes with POSIX calls, so that failures report the
/// system's reason (`No such file or directory`) and a crash or full disk never leaves a
/// half-written checkpoint where a good one was.
enum FileIO {
    private static func reason() -> String { String(cString: strerror(errno)) }

    /// The bytes of the file at `path`.
    static func readFile(path: String) throws(Diagnostic) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Diagnostic(file: path, "cannot open: \(reason())") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var info = stat()
        if fstat(fd, &info) == 0, info.st_size > 0 { bytes.reserveCapacity(Int(info.st_size)) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Diagnostic(file: path, "cannot read: \(reason())")
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Writes `bytes` to `path + ".tmp-<pid>"`, flushes it to disk and renames it over `path`:
    /// readers see either the old file or the complete new one. On failure the temporary file is
    /// removed and `path` is untouched.
    static func writeFileAtomically(_ bytes: [UInt8], to output: String) throws(Diagnostic) {
        let path: String
        do {
            path = try OutputFile.resolve(output)
        } catch {
            throw Diagnostic(file: output, error.message)
        }
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Diagnostic(file: path, "cannot create \(temporary): \(reason())") }
        var failure: String?
        var written = 0
        while failure == nil, written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                buffer.baseAddress.map { write(fd, $0 + written, buffer.count - written) } ?? -1
            }
            if count < 0 {
                if errno != EINTR { failure = "cannot write \(temporary): \(reason())" }
            } else {
                written += count
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = "cannot flush \(temporary): \(reason())" }
        if close(fd) != 0, failure == nil { failure = "cannot close \(temporary): \(reason())" }
        if failure == nil, rename(temporary, path) != 0 { failure = "cannot rename \(temporary) to \(path): \(reason())" }
        if let failure {
            unlink(temporary)
            throw Diagnostic(file: path, "\(failure)")
        }
        syncDirectory(of: path)
    }

    /// Best effort: makes the rename itself durable by flushing the containing directory.
    private static func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) }.map { $0.isEmpty ? "/" : $0 } ?? "."
        let fd = open(directory, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }
}
