/// A position in an IR text file, 1-based, for diagnostics that point at the offending op.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// An error about IR, located when the IR came from text:
/// `file:line:col: error: message`.
public struct Diagnostic: Error, Sendable, CustomStringConvertible, Equatable {
    public var location: SourceLocation?
    /// The file a located-by-field error is about (specs, configs, checkpoints): `file: error: message`.
    public var file: String?
    public var message: String

    public init(_ message: String, at location: SourceLocation? = nil) {
        self.message = message
        self.location = location
    }

    public init(file: String, _ message: String) {
        self.message = message
        self.file = file
    }

    public var description: String {
        if let location { return "\(location): error: \(message)" }
        if let file { return "\(file): error: \(message)" }
        return "error: \(message)"
    }
}
