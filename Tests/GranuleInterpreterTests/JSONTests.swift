import GranuleSupport
import Testing

@testable import GranuleInterpreter

/// The strict JSON reader/writer behind safetensors headers.
@Suite struct JSONTests {
    func parse(_ text: String) throws -> JSON { try JSON.parse(ArraySlice(Array(text.utf8))) }

    @Test func keepsMemberOrderAndDuplicates() throws {
        let value = try parse(#" { "b" : 1 , "a" : [true, false, null], "b": "x" } "#)
        guard case .object(let members) = value else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.key) == ["b", "a", "b"])
        #expect(members[1].value == .array([.bool(true), .bool(false), .null]))
    }

    @Test func decodesEscapes() throws {
        #expect(try parse(#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#) == .string("a\"b\\c/d\n\té😀"))
        #expect(throws: JSON.ParseError.self) { try parse(#""\ud83d""#) }
        #expect(throws: JSON.ParseError.self) { try parse(#""\x""#) }
    }

    @Test func numbersFollowTheGrammar() throws {
        #expect(try parse("-0") == .number("-0"))
        #expect(try parse("12.5e-3").integerValue == nil)
        #expect(try parse("300").integerValue == 300)
        #expect(try parse("3e2").integerValue == 300)
        #expect(try parse("99999999999999999999").integerValue == nil)
        for bad in ["01", "1.", ".5", "-", "1e", "+1", "NaN"] {
            #expect(throws: JSON.ParseError.self, "\(bad)") { try parse(bad) }
        }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSON.ParseError.self) { try JSON.parse(ArraySlice([0x22, 0xFF, 0x22])) }
    }

    @Test func writesEscapedCompactText() {
        let value = JSON.object([("k\"\n\u{1}", .array([.number("1"), .string("é")]))])
        #expect(value.text == #"{"k\"\n\u0001":[1,"é"]}"#)
    }
}
