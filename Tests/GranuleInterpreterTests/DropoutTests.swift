import GranuleIR
import Testing

@testable import GranuleInterpreter

/// dropout: the mask statistics, determinism, and agreement with `dropoutKeep`.
@Suite struct DropoutTests {
    func dropout(count: Int, rate: Double, offset: Int, seed: Int64, values: [Double]? = nil) throws -> [Double] {
        let ir = """
        func @f(%x: f32[\(count)] input, %seed: i64[] input) -> (y: f32[\(count)]) {
          %y = dropout %x, %seed {rate = \(rate), offset = \(offset)} : f32[\(count)]
          return %y
        }
        """
        let x = f32([count], values ?? Array(repeating: 1, count: count))
        return try runOne(ir, ["x": x, "seed": i64([], [seed])]).floats
    }

    @Test func keepFractionMatchesTheRate() throws {
        let count = 100_000
        for rate in [0.1, 0.5] {
            let y = try dropout(count: count, rate: rate, offset: 0, seed: 1234)
            let kept = y.filter { $0 != 0 }
            let fraction = Double(kept.count) / Double(count)
            #expect(Swift.abs(fraction - (1 - rate)) < 0.01, "rate \(rate): kept \(fraction)")
            #expect(kept.allSatisfy { $0 == single(1 / (1 - rate)) })
        }
    }

    @Test func sameSeedAndOffsetGiveTheSameMaskOthersDiffer() throws {
        let a = try dropout(count: 1000, rate: 0.5, offset: 3, seed: 42)
        let b = try dropout(count: 1000, rate: 0.5, offset: 3, seed: 42)
        let otherOffset = try dropout(count: 1000, rate: 0.5, offset: 4, seed: 42)
        let otherSeed = try dropout(count: 1000, rate: 0.5, offset: 3, seed: -42)
        #expect(a == b)
        #expect(a != otherOffset)
        #expect(a != otherSeed)
        // Independent masks agree on about half the positions.
        let agreement = zip(a, otherOffset).filter { ($0 == 0) == ($1 == 0) }.count
        #expect((400...600).contains(agreement))
    }

    @Test func maskIsDropoutKeepElementByElement() throws {
        let count = 37  // not a multiple of 4: the last Philox block is partial
        let values = (0..<count).map { Double($0) + 0.5 }
        let y = try dropout(count: count, rate: 0.3, offset: 9, seed: 77, values: values)
        for i in 0..<count {
            let expected = dropoutKeep(seed: 77, offset: 9, index: i, rate: 0.3) ? single(values[i] * (1 / (1 - 0.3))) : 0
            #expect(y[i] == expected, "element \(i)")
        }
    }

    @Test func rateZeroIsTheIdentity() throws {
        let values = [1.5, -2, 0, 7]
        #expect(try dropout(count: 4, rate: 0, offset: 0, seed: 1, values: values) == values)
    }
}
