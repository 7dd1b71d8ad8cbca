import GranuleIR
import Testing

@testable import GranuleInterpreter

/// Philox4x32-10 against Random123's known-answer vectors (tests/kat_vectors, the three
/// `philox4x32 10` lines: counter[4] key[2] -> output[4]), and the dropout keep rule.
@Suite struct PhiloxTests {
    @Test(arguments: [
        (SIMD4<UInt32>(0, 0, 0, 0), SIMD2<UInt32>(0, 0), SIMD4<UInt32>(0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8)),
        (SIMD4<UInt32>(repeating: 0xffff_ffff), SIMD2<UInt32>(repeating: 0xffff_ffff), SIMD4<UInt32>(0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd)),
        (SIMD4<UInt32>(0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), SIMD2<UInt32>(0xa409_3822, 0x299f_31d0),
         SIMD4<UInt32>(0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1)),
    ])
    func knownAnswers(counter: SIMD4<UInt32>, key: SIMD2<UInt32>, expected: SIMD4<UInt32>) {
        #expect(philox4x32(counter: counter, key: key) == expected)
    }

    @Test func dropoutKeepFollowsItsDefinition() {
        // index 4·2^32 + 6 → block 2^32 + 1 (both counter halves used), lane 2; offset and seed split into halves too.
        let index = (1 << 34) + 6
        let offset = (5 << 32) + 3
        let seed: Int64 = -2
        let bits = philox4x32(counter: SIMD4(1, 1, 3, 5), key: SIMD2(0xffff_fffe, 0xffff_ffff))[2]
        for rate in [0.0, 0.25, 0.5, 0.75, 0.999] {
            #expect(dropoutKeep(seed: seed, offset: offset, index: index, rate: rate) == (Double(bits >> 8) >= rate * 16_777_216.0))
        }
        #expect(dropoutKeep(seed: seed, offset: offset, index: index, rate: 0))
    }

    @Test func keepThresholdIsExact() {
        // r >> 8 is compared with rate·2^24: a rate of exactly (r >> 8)/2^24 keeps, one ulp more drops.
        let bits = philox4x32(counter: SIMD4(0, 0, 0, 0), key: SIMD2(0, 0))[0] >> 8
        let rate = Double(bits) / 16_777_216.0
        #expect(dropoutKeep(seed: 0, offset: 0, index: 0, rate: rate))
        #expect(!dropoutKeep(seed: 0, offset: 0, index: 0, rate: rate.nextUp))
    }
}
