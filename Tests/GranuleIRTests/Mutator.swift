import GranuleIR

/// Makes broken variants of IR text for the fuzz test: byte flips, truncations, token deletions,
/// duplications and swaps, number changes (huge, negative, ...) and swapped op names, types,
/// roles and keywords. Works on a rough token split that keeps whitespace, so most variants stay
/// close to valid IR and reach deep into the parser and verifier.
struct Mutator {
    var random: SeededGenerator

    init(seed: UInt64) { random = SeededGenerator(seed: seed) }

    /// One to three stacked mutations of `text`.
    mutating func mutate(_ text: String) -> String {
        var current = text
        for _ in 0..<(1 + random.below(3)) { current = mutateOnce(current) }
        return current
    }

    mutating func mutateOnce(_ text: String) -> String {
        switch random.below(10) {
        case 0: return flipByte(text)
        case 1: return truncate(text)
        case 2, 3: return editTokens(text)
        case 4, 5: return changeNumber(text)
        case 6: return replaceToken(text, matching: Self.isOpName, with: Self.opNames)
        case 7: return replaceType(text)
        default: return replaceToken(text, matching: Self.isWord, with: Self.words)
        }
    }

    // MARK: byte level

    mutating func flipByte(_ text: String) -> String {
        var bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return text }
        let index = random.below(bytes.count)
        if random.chance(50) {
            bytes[index] ^= UInt8(1 << random.below(8))
        } else {
            bytes[index] = random.pick(Array("%@-.,:=<>[](){}0123456789_ \n/eE".utf8) + [0, 0x80, 0xFF])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func truncate(_ text: String) -> String {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return text }
        return String(decoding: bytes[..<random.below(bytes.count)], as: UTF8.self)
    }

    // MARK: token level

    /// Splits text into runs of name characters (with a leading % or @, or a leading - for
    /// numbers), runs of whitespace, and single other characters; joining the pieces gives `text`.
    static func pieces(_ text: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        func isName(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == "." }
        for character in text {
            let continues: Bool
            if let last = current.last {
                if isName(character) {
                    continues = isName(last) || last == "%" || last == "@" || last == "-"
                } else if character.isWhitespace {
                    continues = last.isWhitespace
                } else {
                    continues = false
                }
            } else {
                continues = false
            }
            if !continues, !current.isEmpty {
                pieces.append(current)
                current = ""
            }
            current.append(character)
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    static func isSignificant(_ piece: String) -> Bool { !(piece.first?.isWhitespace ?? true) }

    mutating func editTokens(_ text: String) -> String {
        var pieces = Self.pieces(text)
        let significant = pieces.indices.filter { Self.isSignificant(pieces[$0]) }
        guard significant.count >= 2 else { return text }
        let a = random.pick(significant)
        let b = random.pick(significant)
        switch random.below(3) {
        case 0: pieces.remove(at: a)
        case 1: pieces.insert(pieces[a] + (random.chance(50) ? " " : ""), at: b)
        default: pieces.swapAt(a, b)
        }
        return pieces.joined()
    }

    static let interestingNumbers = [
        "0", "1", "2", "-1", "-7", "3", "16", "1048576", "1099511627776", "1099511627777",
        "99999999999999999999", "-99999999999999999999", "9223372036854775807", "-9223372036854775808",
        "4294967296", "2147483648", "0.5", "-0.0", "1e999", "1e-999", "1.5e3", "00", "007",
    ]

    static func isNumber(_ piece: String) -> Bool {
        guard let first = piece.first else { return false }
        return first.isNumber || (first == "-" && piece.count > 1)
    }

    mutating func changeNumber(_ text: String) -> String {
        var pieces = Self.pieces(text)
        let numbers = pieces.indices.filter { Self.isNumber(pieces[$0]) }
        guard !numbers.isEmpty else { return text }
        let index = random.pick(numbers)
        pieces[index] = random.chance(70) ? random.pick(Self.interestingNumbers) : String(random.below(40) - 8)
        return pieces.joined()
    }

    static let opNames = Opcode.allCases.map(\.name)
    static func isOpName(_ piece: String) -> Bool { Opcode(rawValue: piece) != nil }

    static let words = [
        "func", "return", "writes", "splat", "dense", "elided", "true", "false", "inf", "nan",
        "input", "frozen", "trainable", "state", "axis", "axes", "keepdims", "perm", "start", "limit",
        "low", "high", "window", "rate", "offset", "eps", "reduction", "predicate", "approx",
        "transpose_a", "transpose_b", "exponent", "ignore_index", "mean", "none", "sum", "sample_mean",
        "lt", "eq", "tanh", "erf", "f32", "f64", "i32", "i64", "i1", "x", "%x", "%0", "@f",
    ]
    static func isWord(_ piece: String) -> Bool { piece.first.map { $0.isLetter || $0 == "_" || $0 == "%" } ?? false }

    mutating func replaceToken(_ text: String, matching predicate: (String) -> Bool, with choices: [String]) -> String {
        var pieces = Self.pieces(text)
        let candidates = pieces.indices.filter { predicate(pieces[$0]) }
        guard !candidates.isEmpty else { return text }
        pieces[random.pick(candidates)] = random.pick(choices)
        return pieces.joined()
    }

    static let typeTexts = [
        "f32[]", "f32[2]", "f32[2,3]", "f64[4]", "i32[6]", "i64[]", "i64[3]", "i1[2,3]", "f32[0]",
        "f32[0,9223372036854775807]", "f32[0,1099511627777]", "f32[1,3,3,2]", "f32[1048576,1048576]",
        "f32[3,5]", "f32[5]", "f32[2,3,4]",
    ]

    /// Replaces one `dtype[dims]` type by another, or just its element type.
    mutating func replaceType(_ text: String) -> String {
        var pieces = Self.pieces(text)
        let dtypes = pieces.indices.filter { DType(rawValue: pieces[$0]) != nil && $0 + 1 < pieces.count && pieces[$0 + 1] == "[" }
        guard !dtypes.isEmpty else { return text }
        let start = random.pick(dtypes)
        if random.chance(40) {
            pieces[start] = random.pick(DType.allCases).rawValue
            return pieces.joined()
        }
        guard let close = pieces[start...].firstIndex(of: "]") else { return text }
        pieces.replaceSubrange(start...close, with: [random.pick(Self.typeTexts)])
        return pieces.joined()
    }
}
