/// Philox4x32-10, the counter-based generator of Salmon et al. ("Parallel random numbers: as easy
/// as 1, 2, 3", SC'11) with the Random123 constants.
///
/// Counter-based means the output is a pure function of (counter, key): dropout masks can be
/// recomputed anywhere (forward pass, backward pass, the compiled C runtime) from a seed and an
/// element index, with no generator state to carry around.
///
/// One round maps (c0, c1, c2, c3) with key (k0, k1) to
/// `(hi(M1·c2) ^ c1 ^ k0, lo(M1·c2), hi(M0·c0) ^ c3 ^ k1, lo(M0·c0))`, where M0 = 0xD2511F53,
/// M1 = 0xCD9E8D57 and hi/lo are the halves of the 64-bit product; between rounds the key is bumped
/// by (0x9E3779B9, 0xBB67AE85) with wrapping addition. Ten rounds.
public func philox4x32(counter: SIMD4<UInt32>, key: SIMD2<UInt32>) -> SIMD4<UInt32> {
    let m0: UInt64 = 0xD251_1F53
    let m1: UInt64 = 0xCD9E_8D57
    var c = counter
    var k = key
    for round in 0..<10 {
        if round > 0 {
            k.x = k.x &+ 0x9E37_79B9
            k.y = k.y &+ 0xBB67_AE85
        }
        let p0 = m0 &* UInt64(c.x)
        let p1 = m1 &* UInt64(c.z)
        c = SIMD4(
            UInt32(truncatingIfNeeded: p1 >> 32) ^ c.y ^ k.x,
            UInt32(truncatingIfNeeded: p1),
            UInt32(truncatingIfNeeded: p0 >> 32) ^ c.w ^ k.y,
            UInt32(truncatingIfNeeded: p0))
    }
    return c
}

/// Whether `dropout` keeps the element at flat row-major `index` of a tensor. This is the
/// contract that the compiled C runtime reimplements bit for bit:
///
///     block = index / 4, lane = index % 4          (index and offset as unsigned 64-bit)
///     counter = (lo32(block), hi32(block), lo32(offset), hi32(offset))
///     key = (lo32(s), hi32(s))  where s = (uint64_t)seed
///     r = philox4x32_10(counter, key)[lane]
///     keep iff (double)(r >> 8) >= rate * 16777216.0
///
/// `r >> 8` is a uniform 24-bit integer, so an element is kept with probability 1 − rate (rounded
/// to a multiple of 2^-24). Distinct `offset`s give independent masks for the dropout ops of one
/// program that share a seed.
public func dropoutKeep(seed: Int64, offset: Int, index: Int, rate: Double) -> Bool {
    let position = UInt64(truncatingIfNeeded: index)
    let block = position / 4
    let lane = Int(position % 4)
    let bits = philox4x32(counter: dropoutCounter(block: block, offset: offset), key: dropoutKey(seed: seed))
    return dropoutKeeps(bits[lane], rate: rate)
}

/// The Philox counter of the four elements `4·block ..< 4·block + 4` (see `dropoutKeep`).
func dropoutCounter(block: UInt64, offset: Int) -> SIMD4<UInt32> {
    let offsetBits = UInt64(truncatingIfNeeded: offset)
    return SIMD4(
        UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32),
        UInt32(truncatingIfNeeded: offsetBits), UInt32(truncatingIfNeeded: offsetBits >> 32))
}

/// The Philox key of a dropout seed (see `dropoutKeep`).
func dropoutKey(seed: Int64) -> SIMD2<UInt32> {
    let bits = UInt64(bitPattern: seed)
    return SIMD2(UInt32(truncatingIfNeeded: bits), UInt32(truncatingIfNeeded: bits >> 32))
}

/// The keep decision for one 32-bit Philox output (see `dropoutKeep`).
@inline(__always)
func dropoutKeeps(_ bits: UInt32, rate: Double) -> Bool {
    Double(bits >> 8) >= rate * 16_777_216.0
}
