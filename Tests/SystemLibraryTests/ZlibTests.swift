import CZlib
import Testing

/// zlib through the CZlib module map.
@Suite struct ZlibTests {
    static func crc(_ text: String, seed: UInt = 0) -> UInt {
        let bytes = Array(text.utf8)
        return UInt(crc32(uLong(seed), bytes, uInt(bytes.count)))
    }

    @Test func crc32OfHello() {
        #expect(Self.crc("hello") == 0x3610_A686)
    }

    @Test func crc32IsIncremental() {
        #expect(Self.crc("lo", seed: Self.crc("hel")) == 0x3610_A686)
        #expect(Self.crc("") == 0)
    }

    @Test func compressRoundTrips() throws {
        let input = Array(String(repeating: "granule ", count: 100).utf8)
        var compressedSize = compressBound(uLong(input.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedSize))
        #expect(compress(&compressed, &compressedSize, input, uLong(input.count)) == Z_OK)
        #expect(Int(compressedSize) < input.count / 4)

        var outputSize = uLong(input.count)
        var output = [UInt8](repeating: 0, count: input.count)
        #expect(uncompress(&output, &outputSize, compressed, compressedSize) == Z_OK)
        #expect(output == input)
    }
}
