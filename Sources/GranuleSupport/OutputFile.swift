#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where an output file may be written. Granule writes every output to a temporary sibling and
/// renames it over the target, so the target must be a regular file or not exist yet: renaming
/// over a directory, a device or a FIFO would replace it (run as root, `-o /dev/null` would put a
/// regular file in place of the device), and over a symbolic link would replace the link rather
/// than the file it names. A link is therefore followed to the file it names, and anything else
/// that is not a regular file is refused before any work is done.
public enum OutputFile {
    public struct Refusal: Error, Sendable {
        public var message: String
    }

    /// The path to write for `path`: itself, or the file a symbolic link (chain) names.
    public static func resolve(_ path: String) throws(Refusal) -> String {
        var current = path
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0 else {
                if errno == ENOENT { return current }
                throw Refusal(message: "cannot inspect \(current): \(String(cString: strerror(errno)))")
            }
            // Messages follow the caller's "<path>: error: "; a followed link names its target.
            let subject = current == path ? "" : "the link names \(current), which "
            switch info.st_mode & S_IFMT {
            case S_IFREG: return current
            case S_IFDIR: throw Refusal(message: "\(subject)is a directory; give a file name")
            case S_IFLNK: current = try linkTarget(current)
            default:
                throw Refusal(message: "\(subject)is not a regular file (outputs are written to a temporary file and renamed into place)")
            }
        }
        throw Refusal(message: "too many levels of symbolic links")
    }

    /// The path a symbolic link names, relative targets taken from the link's directory.
    private static func linkTarget(_ link: String) throws(Refusal) -> String {
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = readlink(link, &buffer, buffer.count - 1)
        guard count >= 0 else { throw Refusal(message: "cannot read the link \(link): \(String(cString: strerror(errno)))") }
        let target = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if target.hasPrefix("/") { return target }
        guard let slash = link.lastIndex(of: "/") else { return target }
        return String(link[...slash]) + target
    }
}
