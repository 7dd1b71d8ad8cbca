import Foundation

/// T5's relative-position buckets (spec 4.2): exact for small distances, log-spaced up to
/// `maxDistance`. Computed in Float like Hugging Face's float32 tensors, so that boundary cases
/// land in the same bucket.
enum RelativePosition {
    static func bucket(_ relative: Int, bidirectional: Bool, buckets: Int, maxDistance: Int) -> Int {
        var numBuckets = buckets
        var result = 0
        var distance = relative
        if bidirectional {
            numBuckets /= 2
            if relative > 0 { result += numBuckets }
            distance = Swift.abs(relative)
        } else {
            distance = -Swift.min(relative, 0)
        }
        let maxExact = numBuckets / 2
        if distance < maxExact { return result + distance }
        let logRatio = Float(Foundation.log(Double(Float(distance) / Float(maxExact))))
        let scaled = logRatio / Float(Foundation.log(Double(maxDistance) / Double(maxExact))) * Float(numBuckets - maxExact)
        let large = Swift.min(maxExact + Int(scaled), numBuckets - 1)
        return result + large
    }

    /// Buckets [queries, keys] of `key − query` for every pair.
    static func buckets(queries: Int, keys: Int, bidirectional: Bool, buckets: Int, maxDistance: Int) -> [Int64] {
        var result: [Int64] = []
        result.reserveCapacity(queries * keys)
        for query in 0..<queries {
            for key in 0..<keys {
                result.append(Int64(bucket(key - query, bidirectional: bidirectional, buckets: buckets, maxDistance: maxDistance)))
            }
        }
        return result
    }
}
