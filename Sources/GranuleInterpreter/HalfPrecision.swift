/// Widening of the 16-bit float formats that safetensors checkpoints commonly use (F16, BF16) to
/// `Float`. Done with bit manipulation so it behaves the same on every platform (Swift's `Float16`
/// is unavailable on some), and both conversions are exact: every half value is a `Float`.
enum HalfPrecision {
    /// IEEE 754 binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
    static func float(fromF16 bits: UInt16) -> Float {
        let sign: Float = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x03FF)
        switch exponent {
        case 0:
            // Zero or subnormal: mantissa · 2^-24, exact in Float.
            return sign * Float(mantissa) * 0x1p-24
        case 0x1F:
            return mantissa == 0 ? sign * .infinity : .nan
        default:
            let signBit = UInt32(bits & 0x8000) << 16
            return Float(bitPattern: signBit | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
        }
    }

    /// bfloat16: the upper half of a binary32.
    static func float(fromBF16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}
