import GranuleIR

/// `dropout %x, %seed {rate, offset}`: element i (flat, row-major) is kept iff
/// `dropoutKeep(seed, offset, i, rate)` and then scaled by 1/(1 − rate); dropped elements are 0.
///
/// The mask is a pure function of (seed, offset, i), so the backward pass regenerates it instead
/// of storing it. The kernel computes one Philox block per four elements, which is exactly what
/// `dropoutKeep` computes element by element.
extension Interpreter {
    func dropout(_ x: Tensor, seed: Tensor, rate: Double, offset: Int) throws(Diagnostic) -> Tensor {
        guard rate != 0 else { return x }
        let values = try x.floatValues()
        guard let seedValue = try seed.intValues().first else { throw Interpreter.internalError("'dropout' seed is empty") }
        let key = dropoutKey(seed: seedValue)
        let scale = 1.0 / (1.0 - rate)
        var result = [Double](repeating: 0, count: values.count)
        var block: UInt64 = 0
        var start = 0
        while start < values.count {
            let bits = philox4x32(counter: dropoutCounter(block: block, offset: offset), key: key)
            for lane in 0..<Swift.min(4, values.count - start) where dropoutKeeps(bits[lane], rate: rate) {
                result[start + lane] = values[start + lane] * scale
            }
            block += 1
            start += 4
        }
        return Tensor(x.type, floats: result)
    }
}
