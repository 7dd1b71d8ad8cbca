import GranuleIR
import GranuleSupport

/// Reading and writing `.safetensors` files, the checkpoint format of the Hugging Face ecosystem:
///
///     [8 bytes: N, little-endian u64][N bytes: JSON header][data buffer]
///
/// The header maps each tensor name to `{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin,
/// end]}` (offsets relative to the start of the data buffer) plus an optional `"__metadata__"`
/// object of strings. Elements are little-endian and row-major.
///
/// The reader trusts nothing: files come from outside, so every field is checked with
/// overflow-safe arithmetic and every problem is a `Diagnostic` that starts with the file path and
/// names the tensor and field. The format requires the tensors to cover the data buffer exactly
/// (no overlaps, no holes), which is checked too.
public enum Safetensors {
    /// Element types of the format that this reader understands. F16 and BF16 are read-only and
    /// widen to f32 (checkpoints are often stored in half precision).
    enum FileDType: String, CaseIterable {
        case F32, F64, I32, I64, BOOL, F16, BF16

        var byteSize: Int {
            switch self {
            case .F64, .I64: 8
            case .F32, .I32: 4
            case .F16, .BF16: 2
            case .BOOL: 1
            }
        }

        var dtype: DType {
            switch self {
            case .F32, .F16, .BF16: .f32
            case .F64: .f64
            case .I32: .i32
            case .I64: .i64
            case .BOOL: .i1
            }
        }

        init(_ dtype: DType) {
            switch dtype {
            case .f32: self = .F32
            case .f64: self = .F64
            case .i32: self = .I32
            case .i64: self = .I64
            case .i1: self = .BOOL
            }
        }
    }

    // MARK: reading

    /// The tensors of the file at `path`, in the order of their data offsets.
    public static func read(path: String) throws(Diagnostic) -> [(name: String, tensor: Tensor)] {
        try decode(try FileIO.readFile(path: path), path: path)
    }

    /// The tensors and the `__metadata__` strings of the file at `path`.
    public static func readWithMetadata(path: String) throws(Diagnostic) -> (
        tensors: [(name: String, tensor: Tensor)], metadata: [String: String]
    ) {
        try decodeWithMetadata(try FileIO.readFile(path: path), path: path)
    }

    /// The tensors of a file's bytes, in the order of their data offsets; `path` names the file in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws(Diagnostic) -> [(name: String, tensor: Tensor)] {
        try decodeWithMetadata(bytes, path: path).tensors
    }

    /// One header entry, checked against the header but not yet against its neighbours.
    private struct Entry {
        var name: String
        var fileDType: FileDType
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    /// The tensors and the `__metadata__` strings of a file's bytes.
    public static func decodeWithMetadata(_ bytes: [UInt8], path: String) throws(Diagnostic) -> (
        tensors: [(name: String, tensor: Tensor)], metadata: [String: String]
    ) {
        func failure(_ message: String) -> Diagnostic { Diagnostic(file: path, "\(message)") }

        guard bytes.count >= 8 else {
            throw failure("file is \(bytes.count) bytes long, too short for the 8-byte header length")
        }
        var headerLength: UInt64 = 0
        for index in (0..<8).reversed() { headerLength = headerLength << 8 | UInt64(bytes[index]) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw failure("header length \(headerLength) is larger than the file (\(bytes.count) bytes)")
        }
        let bufferStart = 8 + Int(headerLength)
        let bufferSize = bytes.count - bufferStart

        let header: JSON
        do {
            header = try JSON.parse(bytes[8..<bufferStart])
        } catch {
            throw failure("invalid JSON header at byte \(8 + error.offset): \(error.message)")
        }
        guard case .object(let members) = header else {
            throw failure("header must be a JSON object, got \(header.kindName)")
        }

        var seen: Set<String> = []
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        for (name, value) in members {
            guard seen.insert(name).inserted else {
                throw failure("tensor name '\(name)' appears more than once in the header")
            }
            if name == "__metadata__" {
                metadata = try decodeMetadata(value, failure)
            } else {
                entries.append(try decodeEntry(name, value, bufferSize: bufferSize, failure))
            }
        }

        // The tensors must tile the data buffer exactly, in offset order.
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        var previous: String?
        for entry in entries {
            if entry.begin < cursor, let previous {
                throw failure("tensor '\(entry.name)': data_offsets [\(entry.begin), \(entry.end)] overlap those of tensor '\(previous)', which end at \(cursor)")
            }
            if entry.begin > cursor {
                throw failure("bytes [\(cursor), \(entry.begin)) of the data buffer belong to no tensor (a hole before tensor '\(entry.name)')")
            }
            cursor = entry.end
            previous = entry.name
        }
        if cursor != bufferSize {
            throw failure("bytes [\(cursor), \(bufferSize)) at the end of the data buffer belong to no tensor")
        }

        var tensors: [(name: String, tensor: Tensor)] = []
        tensors.reserveCapacity(entries.count)
        for entry in entries {
            let data = bytes[(bufferStart + entry.begin)..<(bufferStart + entry.end)]
            tensors.append((entry.name, try decodeData(entry, data, failure)))
        }
        return (tensors, metadata)
    }

    private static func decodeMetadata(_ value: JSON, _ failure: (String) -> Diagnostic) throws(Diagnostic) -> [String: String] {
        guard case .object(let members) = value else {
            throw failure("'__metadata__' must be an object of strings, got \(value.kindName)")
        }
        var metadata: [String: String] = [:]
        for (key, value) in members {
            guard case .string(let string) = value else {
                throw failure("'__metadata__' entry '\(key)' must be a string, got \(value.kindName)")
            }
            guard metadata.updateValue(string, forKey: key) == nil else {
                throw failure("'__metadata__' entry '\(key)' appears more than once")
            }
        }
        return metadata
    }

    private static func decodeEntry(
        _ name: String, _ value: JSON, bufferSize: Int, _ failure: (String) -> Diagnostic
    ) throws(Diagnostic) -> Entry {
        guard case .object(let fields) = value else {
            throw failure("tensor '\(name)' must be an object with dtype, shape and data_offsets, got \(value.kindName)")
        }
        func field(_ key: String) throws(Diagnostic) -> JSON {
            let matches = fields.filter { $0.key == key }
            guard matches.count <= 1 else { throw failure("tensor '\(name)': field '\(key)' appears more than once") }
            guard let match = matches.first else { throw failure("tensor '\(name)': missing field '\(key)'") }
            return match.value
        }

        guard case .string(let dtypeName) = try field("dtype") else {
            throw failure("tensor '\(name)': field 'dtype' must be a string")
        }
        guard let fileDType = FileDType(rawValue: dtypeName) else {
            let known = FileDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw failure("tensor '\(name)': unsupported dtype '\(dtypeName)' (supported: \(known))")
        }

        guard case .array(let dims) = try field("shape") else {
            throw failure("tensor '\(name)': field 'shape' must be an array of integers")
        }
        var shape: [Int] = []
        for dim in dims {
            guard let size = dim.integerValue else {
                throw failure("tensor '\(name)': field 'shape' must be an array of integers, found \(dim.kindName) \(dim.text)")
            }
            guard size >= 0 else { throw failure("tensor '\(name)': shape has a negative dimension \(size)") }
            shape.append(size)
        }
        guard let count = TensorType(fileDType.dtype, shape).checkedElementCount else {
            throw failure("tensor '\(name)': shape \(shape) has more than 2^40 elements")
        }
        let (byteSize, overflow) = count.multipliedReportingOverflow(by: fileDType.byteSize)
        guard !overflow else { throw failure("tensor '\(name)': shape \(shape) is too large") }

        guard case .array(let offsets) = try field("data_offsets"), offsets.count == 2,
            let begin = offsets[0].integerValue, let end = offsets[1].integerValue
        else {
            throw failure("tensor '\(name)': field 'data_offsets' must be an array of two integers [begin, end]")
        }
        guard 0 <= begin, begin <= end else {
            throw failure("tensor '\(name)': data_offsets [\(begin), \(end)] must satisfy 0 <= begin <= end")
        }
        guard end <= bufferSize else {
            throw failure("tensor '\(name)': data_offsets [\(begin), \(end)] run past the end of the data buffer (\(bufferSize) bytes)")
        }
        guard end - begin == byteSize else {
            throw failure("tensor '\(name)': data_offsets [\(begin), \(end)] hold \(end - begin) bytes but \(dtypeName) \(shape) needs \(byteSize)")
        }
        return Entry(name: name, fileDType: fileDType, shape: shape, begin: begin, end: end)
    }

    /// Converts little-endian element bytes; `data` has exactly the entry's byte size.
    private static func decodeData(_ entry: Entry, _ data: ArraySlice<UInt8>, _ failure: (String) -> Diagnostic) throws(Diagnostic) -> Tensor {
        let type = TensorType(entry.fileDType.dtype, entry.shape)
        let count = data.count / entry.fileDType.byteSize
        let base = data.startIndex
        func word(_ index: Int, _ size: Int) -> UInt64 {
            var value: UInt64 = 0
            let start = base + index * size
            for offset in (0..<size).reversed() { value = value << 8 | UInt64(data[start + offset]) }
            return value
        }
        switch entry.fileDType {
        case .F32:
            return Tensor(type, floats: (0..<count).map { Double(Float(bitPattern: UInt32(truncatingIfNeeded: word($0, 4)))) })
        case .F64:
            return Tensor(type, floats: (0..<count).map { Double(bitPattern: word($0, 8)) })
        case .F16:
            return Tensor(type, floats: (0..<count).map { Double(HalfPrecision.float(fromF16: UInt16(truncatingIfNeeded: word($0, 2)))) })
        case .BF16:
            return Tensor(type, floats: (0..<count).map { Double(HalfPrecision.float(fromBF16: UInt16(truncatingIfNeeded: word($0, 2)))) })
        case .I32:
            return Tensor(type, ints: (0..<count).map { Int64(Int32(truncatingIfNeeded: word($0, 4))) })
        case .I64:
            return Tensor(type, ints: (0..<count).map { Int64(bitPattern: word($0, 8)) })
        case .BOOL:
            var values: [Int64] = []
            values.reserveCapacity(count)
            for (index, byte) in data.enumerated() {
                guard byte <= 1 else { throw failure("tensor '\(entry.name)': BOOL element \(index) is \(byte), not 0 or 1") }
                values.append(Int64(byte))
            }
            return Tensor(type, ints: values)
        }
    }

    // MARK: writing

    /// The bytes of a safetensors file holding `tensors` in the given order (header entries and
    /// data alike), with the header padded with spaces so the data buffer starts 8-byte aligned.
    /// f32 tensors are stored as `Float`s (rounding values that a `.float64` run left unrounded).
    public static func encode(
        _ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:]
    ) throws(Diagnostic) -> [UInt8] {
        var members: [(key: String, value: JSON)] = []
        if !metadata.isEmpty {
            members.append(("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, JSON.string($0.value)) })))
        }
        var names: Set<String> = []
        var offset = 0
        for (name, tensor) in tensors {
            guard name != "__metadata__" else { throw Diagnostic("'__metadata__' cannot be a tensor name") }
            guard names.insert(name).inserted else { throw Diagnostic("tensor name '\(name)' is given more than once") }
            if let problem = tensor.inconsistency { throw Diagnostic("tensor '\(name)' \(problem)") }
            let fileDType = FileDType(tensor.type.dtype)
            let size = tensor.elementCount * fileDType.byteSize
            members.append((name, .object([
                ("dtype", .string(fileDType.rawValue)),
                ("shape", .array(tensor.type.shape.map { .number(String($0)) })),
                ("data_offsets", .array([.number(String(offset)), .number(String(offset + size))])),
            ])))
            offset += size
        }
        var header = Array(JSON.object(members).text.utf8)
        while (8 + header.count) % 8 != 0 { header.append(UInt8(ascii: " ")) }

        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + header.count + offset)
        appendLittleEndian(UInt64(header.count), size: 8, to: &bytes)
        bytes += header
        for (_, tensor) in tensors {
            switch (tensor.type.dtype, tensor.storage) {
            case (.f32, .float(let values)):
                for value in values { appendLittleEndian(UInt64(Float(value).bitPattern), size: 4, to: &bytes) }
            case (.f64, .float(let values)):
                for value in values { appendLittleEndian(value.bitPattern, size: 8, to: &bytes) }
            case (.i32, .int(let values)):
                for value in values { appendLittleEndian(UInt64(UInt32(truncatingIfNeeded: value)), size: 4, to: &bytes) }
            case (.i64, .int(let values)):
                for value in values { appendLittleEndian(UInt64(bitPattern: value), size: 8, to: &bytes) }
            case (.i1, .int(let values)):
                for value in values { bytes.append(value == 0 ? 0 : 1) }
            default:
                // Unreachable: `inconsistency` checked that the storage kind matches the dtype.
                throw Diagnostic("tensor storage does not match its type \(tensor.type)")
            }
        }
        return bytes
    }

    /// Writes `tensors` to `path` atomically: a crash or an error leaves either the previous file
    /// or the complete new one, never a partial file.
    public static func write(
        _ tensors: [(name: String, tensor: Tensor)], to path: String, metadata: [String: String] = [:]
    ) throws(Diagnostic) {
        let bytes: [UInt8]
        do {
            bytes = try encode(tensors, metadata: metadata)
        } catch {
            throw Diagnostic(file: path, "\(error.message)")
        }
        try FileIO.writeFileAtomically(bytes, to: path)
    }

    private static func appendLittleEndian(_ value: UInt64, size: Int, to bytes: inout [UInt8]) {
        for index in 0..<size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
    }
}
