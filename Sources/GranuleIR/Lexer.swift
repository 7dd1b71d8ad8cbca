/// Splits IR text into tokens with their line:column. `//` starts a comment to the end of the line.
struct Lexer {
    enum Kind: Equatable {
        case valueName(String)      // %name
        case functionName(String)   // @name
        case identifier(String)     // func, f32, add, true, ...
        case integer(String)
        case float(String)
        case punctuation(String)    // ( ) { } [ ] < > , : = ->
        case end
    }

    struct Token {
        var kind: Kind
        var location: SourceLocation
    }

    private let bytes: [UInt8]
    private let file: String
    private var index = 0
    private var line = 1
    private var column = 1

    init(text: String, file: String) {
        self.bytes = Array(text.utf8)
        self.file = file
    }

    static func isNameByte(_ byte: UInt8) -> Bool {
        isLetter(byte) || isDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
    }

    static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    mutating func tokenize() throws(Diagnostic) -> [Token] {
        var tokens: [Token] = []
        while true {
            let token = try next()
            tokens.append(token)
            if token.kind == .end { return tokens }
        }
    }

    private var here: SourceLocation { SourceLocation(file: file, line: line, column: column) }

    private func peek(_ offset: Int = 0) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    private mutating func advance() {
        if bytes[index] == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else if bytes[index] & 0xC0 != 0x80 {
            column += 1  // count characters, not UTF-8 continuation bytes
        }
        index += 1
    }

    private mutating func skipTrivia() {
        while let byte = peek() {
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                advance()
            } else if byte == UInt8(ascii: "/"), peek(1) == UInt8(ascii: "/") {
                while let next = peek(), next != UInt8(ascii: "\n") { advance() }
            } else {
                return
            }
        }
    }

    private mutating func readName() -> String {
        let start = index
        while let byte = peek(), Lexer.isNameByte(byte) { advance() }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private mutating func next() throws(Diagnostic) -> Token {
        skipTrivia()
        let location = here
        guard let byte = peek() else { return Token(kind: .end, location: location) }
        switch byte {
        case UInt8(ascii: "%"), UInt8(ascii: "@"):
            advance()
            let name = readName()
            guard !name.isEmpty else {
                throw Diagnostic("expected a name after '\(Character(Unicode.Scalar(byte)))'", at: location)
            }
            return Token(kind: byte == UInt8(ascii: "%") ? .valueName(name) : .functionName(name), location: location)
        case UInt8(ascii: "-") where peek(1) == UInt8(ascii: ">"):
            advance()
            advance()
            return Token(kind: .punctuation("->"), location: location)
        case UInt8(ascii: "-") where peek(1).map(Lexer.isDigit) ?? false, _ where Lexer.isDigit(byte):
            return Token(kind: readNumber(), location: location)
        case UInt8(ascii: "-") where peek(1) == UInt8(ascii: "i"):
            advance()
            let name = readName()
            guard name == "inf" else { throw Diagnostic("expected a number after '-'", at: location) }
            return Token(kind: .float("-inf"), location: location)
        case _ where Lexer.isLetter(byte) || byte == UInt8(ascii: "_"):
            return Token(kind: .identifier(readName()), location: location)
        case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["),
            UInt8(ascii: "]"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: ","), UInt8(ascii: ":"),
            UInt8(ascii: "="):
            advance()
            return Token(kind: .punctuation(String(Character(Unicode.Scalar(byte)))), location: location)
        default:
            let shown = byte < 0x80 && byte >= 0x20 ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
            throw Diagnostic("unexpected character \(shown)", at: location)
        }
    }

    private mutating func readNumber() -> Kind {
        let start = index
        var isFloat = false
        if peek() == UInt8(ascii: "-") { advance() }
        while let byte = peek(), Lexer.isDigit(byte) { advance() }
        if peek() == UInt8(ascii: "."), peek(1).map(Lexer.isDigit) ?? false {
            isFloat = true
            advance()
            while let byte = peek(), Lexer.isDigit(byte) { advance() }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            let signed = peek(1) == UInt8(ascii: "-") || peek(1) == UInt8(ascii: "+")
            if peek(signed ? 2 : 1).map(Lexer.isDigit) ?? false {
                isFloat = true
                advance()
                if signed { advance() }
                while let byte = peek(), Lexer.isDigit(byte) { advance() }
            }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        return isFloat ? .float(text) : .integer(text)
    }
}
