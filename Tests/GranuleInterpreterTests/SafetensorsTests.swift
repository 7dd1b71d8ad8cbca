import Foundation
import GranuleIR
import GranuleSupport
import Testing

@testable import GranuleInterpreter

/// Safetensors round trips, half-precision reads, every corruption the reader must reject, and
/// atomic writes.
@Suite struct SafetensorsTests {
    let path = "model.safetensors"

    /// A file made of `header` (JSON text, used verbatim) and `data`.
    func file(_ header: String, _ data: [UInt8] = []) -> [UInt8] {
        let json = Array(header.utf8)
        var bytes = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(json.count) >> (8 * $0)) }
        bytes += json
        bytes += data
        return bytes
    }

    /// A header entry.
    func entry(_ name: String, _ dtype: String, _ shape: String, _ begin: Int, _ end: Int) -> String {
        "\"\(name)\": {\"dtype\": \"\(dtype)\", \"shape\": \(shape), \"data_offsets\": [\(begin), \(end)]}"
    }

    /// The error message of decoding `bytes`, which must start with the path.
    func decodeError(_ bytes: [UInt8], sourceLocation: Testing.SourceLocation = #_sourceLocation) -> String {
        let error = diagnostic({ _ = try Safetensors.decode(bytes, path: path) }, sourceLocation: sourceLocation)
        #expect(error?.file == path, sourceLocation: sourceLocation)
        return error.map { "\($0.file ?? ""): \($0.message)" } ?? ""
    }

    let sample: [(name: String, tensor: Tensor)] = [
        ("w", f32([2, 3], [1.5, -2, 0, .infinity, -0.0, 3.25])),
        ("b", f64([3], [0.1, -1e300, .leastNonzeroMagnitude])),
        ("ids", i32([2, 2], [1, -2, 2_147_483_647, -2_147_483_648])),
        ("steps", i64([], [Int64.min])),
        ("mask", i1([4], [1, 0, 0, 1])),
        ("empty", f32([0, 3], [])),
        ("naïve \"quoted\"\n", i64([1], [7])),
    ]

    @Test func roundTripsEveryDtypeInTheGivenOrder() throws {
        let bytes = try Safetensors.encode(sample, metadata: ["format": "pt", "note": "héllo"])
        let decoded = try Safetensors.decodeWithMetadata(bytes, path: path)
        #expect(decoded.tensors.map(\.name) == sample.map(\.name))
        for (got, want) in zip(decoded.tensors, sample) {
            #expect(got.tensor == want.tensor, "\(want.name)")
        }
        #expect(decoded.metadata == ["format": "pt", "note": "héllo"])
        // The data buffer starts 8-byte aligned, the header padded with spaces.
        let headerLength = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        #expect((8 + headerLength) % 8 == 0)
        #expect(bytes[8 + headerLength - 1] == UInt8(ascii: " ") || bytes[8 + headerLength - 1] == UInt8(ascii: "}"))
    }

    @Test func nanSurvivesARoundTrip() throws {
        let decoded = try Safetensors.decode(Safetensors.encode([("x", f32([1], [.nan]))]), path: path)
        #expect(decoded[0].tensor.floats[0].isNaN)
    }

    @Test func f32ValuesAreStoredAsFloats() throws {
        let decoded = try Safetensors.decode(Safetensors.encode([("x", f32([1], [0.1]))]), path: path)
        #expect(decoded[0].tensor.floats == [single(0.1)])
    }

    @Test func readsTensorsInOffsetOrder() throws {
        let header = "{" + entry("second", "I32", "[1]", 4, 8) + ", " + entry("first", "I32", "[1]", 0, 4) + "}"
        let decoded = try Safetensors.decode(file(header, [1, 0, 0, 0, 2, 0, 0, 0]), path: path)
        #expect(decoded.map(\.name) == ["first", "second"])
        #expect(decoded[1].tensor.storage == .int([2]))
    }

    @Test func readsHalfPrecisionAsF32() throws {
        let header = "{" + entry("h", "F16", "[5]", 0, 10) + ", " + entry("bf", "BF16", "[2,2]", 10, 18) + "}"
        let half: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x7C00, 0x3555]
        let brain: [UInt16] = [0x3F80, 0x4049, 0xFF80, 0x7FC0]
        let data = (half + brain).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let decoded = try Safetensors.decode(file(header, data), path: path)
        #expect(decoded[0].tensor.type == TensorType(.f32, [5]))
        expectClose(decoded[0].tensor.floats, [1, -2, 0x1p-24, .infinity, 0.333251953125])
        #expect(decoded[1].tensor.type == TensorType(.f32, [2, 2]))
        expectClose(decoded[1].tensor.floats, [1, 3.140625, -.infinity, .nan])
    }

    @Test func rejectsBadFraming() {
        #expect(decodeError([1, 2, 3]).contains("too short"))
        var huge = file("{}")
        huge[0] = 0xFF
        #expect(decodeError(huge).contains("header length 255 is larger than the file"))
        var enormous = file("{}")
        enormous.replaceSubrange(0..<8, with: [UInt8](repeating: 0xFF, count: 8))
        #expect(decodeError(enormous).contains("header length 18446744073709551615 is larger than the file"))
    }

    @Test func rejectsInvalidJSON() {
        #expect(decodeError(file("{\"a\": ")).contains("invalid JSON header"))
        #expect(decodeError(file("{\"a\": 1} x")).contains("unexpected text after the JSON value"))
        #expect(decodeError(file("[]")).contains("header must be a JSON object, got an array"))
        #expect(decodeError(file(String(repeating: "[", count: 10_000))).contains("nesting deeper"))
        #expect(decodeError(file("{\"a\": \"\u{1}\"}")).contains("control character"))
    }

    @Test func rejectsMissingOrIllTypedFields() {
        #expect(decodeError(file("{\"w\": 5}")) == "\(path): tensor 'w' must be an object with dtype, shape and data_offsets, got a number")
        #expect(decodeError(file("{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}")) == "\(path): tensor 'w': missing field 'dtype'")
        #expect(decodeError(file("{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}")) == "\(path): tensor 'w': missing field 'shape'")
        #expect(decodeError(file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", [0, 0, 0, 0])) == "\(path): tensor 'w': missing field 'data_offsets'")
        #expect(decodeError(file("{\"w\": {\"dtype\": 1, \"shape\": [1], \"data_offsets\": [0, 4]}}")).contains("tensor 'w': field 'dtype' must be a string"))
        #expect(decodeError(file("{\"w\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}")).contains("tensor 'w': field 'shape' must be an array"))
        #expect(decodeError(file("{" + entry("w", "F32", "[1.5]", 0, 4) + "}")).contains("tensor 'w': field 'shape' must be an array of integers, found a number 1.5"))
        #expect(decodeError(file("{" + entry("w", "F32", "[\"2\"]", 0, 8) + "}")).contains("found a string"))
        #expect(decodeError(file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}")).contains("tensor 'w': field 'data_offsets' must be an array of two integers"))
        #expect(decodeError(file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4.5]}}")).contains("field 'data_offsets' must be"))
        #expect(decodeError(file("{\"w\": {\"dtype\": \"F32\", \"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}")).contains("field 'dtype' appears more than once"))
        #expect(decodeError(file("{\"__metadata__\": {\"a\": 1}}")).contains("'__metadata__' entry 'a' must be a string, got a number"))
        #expect(decodeError(file("{\"__metadata__\": []}")).contains("'__metadata__' must be an object of strings"))
    }

    @Test func acceptsIntegralFloatsInShapes() throws {
        let decoded = try Safetensors.decode(file("{" + entry("w", "I32", "[1.0, 2e0]", 0, 8) + "}", [UInt8](repeating: 0, count: 8)), path: path)
        #expect(decoded[0].tensor.type == TensorType(.i32, [1, 2]))
    }

    @Test func rejectsUnknownDtypesAndBadShapes() {
        #expect(decodeError(file("{" + entry("w", "Q4", "[1]", 0, 1) + "}", [0])).contains("tensor 'w': unsupported dtype 'Q4' (supported: F32, F64, I32, I64, BOOL, F16, BF16)"))
        #expect(decodeError(file("{" + entry("w", "F32", "[2, -1]", 0, 0) + "}")).contains("tensor 'w': shape has a negative dimension -1"))
        #expect(decodeError(file("{" + entry("w", "F32", "[1099511627776, 2]", 0, 0) + "}")).contains("tensor 'w': shape [1099511627776, 2] has more than 2^40 elements"))
        #expect(decodeError(file("{" + entry("w", "F32", "[9223372036854775807, 9223372036854775807]", 0, 0) + "}")).contains("more than 2^40"))
    }

    @Test func rejectsSizeAndOffsetProblems() {
        #expect(decodeError(file("{" + entry("w", "F32", "[2]", 0, 4) + "}", [0, 0, 0, 0])) == "\(path): tensor 'w': data_offsets [0, 4] hold 4 bytes but F32 [2] needs 8")
        #expect(decodeError(file("{" + entry("w", "F32", "[2]", 0, 8) + "}", [0, 0, 0, 0])) == "\(path): tensor 'w': data_offsets [0, 8] run past the end of the data buffer (4 bytes)")
        #expect(decodeError(file("{" + entry("w", "F32", "[1]", 8, 4) + "}", [0, 0, 0, 0])).contains("tensor 'w': data_offsets [8, 4] must satisfy 0 <= begin <= end"))
        #expect(decodeError(file("{" + entry("w", "F32", "[1]", -4, 0) + "}")).contains("must satisfy 0 <= begin <= end"))
        #expect(decodeError(file("{" + entry("w", "F32", "[1]", 9_223_372_036_854_775_800, 9_223_372_036_854_775_804) + "}")).contains("run past the end"))
    }

    @Test func rejectsOverlapsHolesAndTrailingBytes() {
        let eight = [UInt8](repeating: 0, count: 8)
        let overlap = "{" + entry("a", "F32", "[2]", 0, 8) + ", " + entry("b", "F32", "[1]", 4, 8) + "}"
        #expect(decodeError(file(overlap, eight)) == "\(path): tensor 'b': data_offsets [4, 8] overlap those of tensor 'a', which end at 8")
        let hole = "{" + entry("a", "F32", "[1]", 0, 4) + ", " + entry("b", "I16", "[0]", 0, 0) + "}"
        #expect(decodeError(file(hole, eight)).contains("unsupported dtype 'I16'"))
        let gap = "{" + entry("a", "F32", "[1]", 0, 4) + ", " + entry("b", "BOOL", "[2]", 6, 8) + "}"
        #expect(decodeError(file(gap, eight)) == "\(path): bytes [4, 6) of the data buffer belong to no tensor (a hole before tensor 'b')")
        let leadingHole = "{" + entry("a", "F32", "[1]", 4, 8) + "}"
        #expect(decodeError(file(leadingHole, eight)).contains("bytes [0, 4) of the data buffer belong to no tensor"))
        let trailing = "{" + entry("a", "F32", "[1]", 0, 4) + "}"
        #expect(decodeError(file(trailing, eight)) == "\(path): bytes [4, 8) at the end of the data buffer belong to no tensor")
    }

    @Test func rejectsDuplicateNamesAndBadBooleans() {
        let duplicate = "{" + entry("a", "F32", "[1]", 0, 4) + ", " + entry("a", "F32", "[1]", 4, 8) + "}"
        #expect(decodeError(file(duplicate, [UInt8](repeating: 0, count: 8))) == "\(path): tensor name 'a' appears more than once in the header")
        let bools = "{" + entry("m", "BOOL", "[3]", 0, 3) + "}"
        #expect(decodeError(file(bools, [1, 0, 2])) == "\(path): tensor 'm': BOOL element 2 is 2, not 0 or 1")
    }

    @Test func corruptedFilesAreErrorsNeverCrashes() throws {
        let good = try Safetensors.encode(Array(sample.prefix(5)), metadata: ["k": "v"])
        for length in 0..<good.count {
            #expect(throws: Diagnostic.self) { try Safetensors.decode(Array(good[..<length]), path: path) }
        }
        for index in good.indices {
            for value: UInt8 in [0x00, 0x01, 0x22, 0x2C, 0x2D, 0x30, 0x39, 0x5B, 0x5D, 0x7B, 0x7D, 0xFF] {
                var bytes = good
                bytes[index] = value
                _ = try? Safetensors.decode(bytes, path: path)
            }
        }
    }

    @Test func emptyFileOfTensorsIsValid() throws {
        #expect(try Safetensors.decode(file("{}"), path: path).isEmpty)
        #expect(try Safetensors.decode(Safetensors.encode([]), path: path).isEmpty)
    }

    @Test func encodeRejectsBadTensorsAndNames() {
        let duplicate = diagnostic { _ = try Safetensors.encode([("a", .scalar(1)), ("a", .scalar(2))]) }
        #expect(duplicate?.message == "tensor name 'a' is given more than once")
        let reserved = diagnostic { _ = try Safetensors.encode([("__metadata__", .scalar(1))]) }
        #expect(reserved?.message.contains("'__metadata__'") == true)
        var broken = f32([2], [1, 2])
        broken.storage = .float([1])
        let inconsistent = diagnostic { _ = try Safetensors.encode([("w", broken)]) }
        #expect(inconsistent?.message == "tensor 'w' has 1 elements but f32[2] has 2")
    }

    /// A fresh empty directory for file tests.
    func temporaryDirectory() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("granule-safetensors-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func writeIsAtomicAndLeavesNoTemporaryFile() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let target = directory + "/model.safetensors"
        try Safetensors.write(sample, to: target, metadata: ["step": "1"])
        let (tensors, metadata) = try Safetensors.readWithMetadata(path: target)
        #expect(tensors.map(\.name) == sample.map(\.name))
        #expect(metadata == ["step": "1"])
        // Overwriting replaces the file whole.
        try Safetensors.write([("only", .scalar(3))], to: target)
        #expect(try Safetensors.read(path: target).map(\.name) == ["only"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["model.safetensors"])
    }

    @Test func failedWritesLeaveTheOldFileAndNoTemporary() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let target = directory + "/model.safetensors"
        try Safetensors.write([("w", .scalar(1))], to: target)
        let broken = diagnostic { try Safetensors.write([("w", .scalar(2)), ("w", .scalar(3))], to: target) }
        #expect(broken?.file == target)
        #expect(try Safetensors.read(path: target)[0].tensor == .scalar(1))
        // A directory that does not exist: the error names the path and nothing is created.
        let missing = directory + "/no/such/dir/model.safetensors"
        let error = diagnostic { try Safetensors.write([("w", .scalar(1))], to: missing) }
        #expect(error?.file == missing)
        #expect(error?.message.contains("No such file or directory") == true)
        // A directory is refused before anything is written (renaming over it would replace it).
        let occupied = directory + "/occupied"
        try FileManager.default.createDirectory(atPath: occupied + "/child", withIntermediateDirectories: true)
        let directoryError = diagnostic { try Safetensors.write([("w", .scalar(1))], to: occupied) }
        #expect(directoryError?.file == occupied && directoryError?.message == "is a directory; give a file name")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["model.safetensors", "occupied"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: occupied) == ["child"])
        // So is a FIFO (or a device): a rename would put a regular file in its place.
        let fifo = directory + "/fifo"
        #expect(mkfifo(fifo, 0o644) == 0)
        let fifoError = diagnostic { try Safetensors.write([("w", .scalar(1))], to: fifo) }
        #expect(fifoError?.message.hasPrefix("is not a regular file") == true)
    }

    @Test func writingThroughASymbolicLinkReplacesTheFileItNames() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/real", withIntermediateDirectories: true)
        try Safetensors.write([("w", .scalar(1))], to: directory + "/real/model.safetensors")
        try FileManager.default.createSymbolicLink(atPath: directory + "/link.safetensors", withDestinationPath: "real/model.safetensors")
        try Safetensors.write([("w", .scalar(2))], to: directory + "/link.safetensors")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: directory + "/link.safetensors") == "real/model.safetensors")
        #expect(try Safetensors.read(path: directory + "/real/model.safetensors")[0].tensor == .scalar(2))
        // A link to a directory is refused, naming where it points.
        try FileManager.default.createSymbolicLink(atPath: directory + "/to-dir", withDestinationPath: directory + "/real")
        let error = diagnostic { try Safetensors.write([("w", .scalar(3))], to: directory + "/to-dir") }
        #expect(error?.message == "the link names \(directory)/real, which is a directory; give a file name")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/real") == ["model.safetensors"])
    }

    @Test func readingAMissingFileNamesIt() {
        let error = diagnostic { _ = try Safetensors.read(path: "/nonexistent/granule.safetensors") }
        #expect(error?.description.hasPrefix("/nonexistent/granule.safetensors: error: cannot open") == true)
    }
}
