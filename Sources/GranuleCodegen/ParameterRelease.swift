import GranuleIR

/// Where a compiled function lets the runtime drop the pages of a large parameter between reads.
///
/// A frozen weight mapped from a safetensors file is read once by the forward pass and again, in
/// reverse layer order, by the backward pass. Between the two reads the pages stay mapped into the
/// process, so at the start of the backward pass every layer's weights are resident next to the
/// saved activations: for BART-base at batch 4 the weights are most of a training step's peak RSS.
/// After a read whose next read is more than `gap` steps later, and after the last read, the
/// function calls `gr_release_param(rt, parameter)`. The runtime drops the pages only of a parameter
/// the caller bound to a mapped file and asked to release (`gr_binding_release_between_uses`); the
/// next read maps them again from the page cache (2–23 ms for BART-base's 532 MiB here, by whether
/// the cache holds them in large folios or 4 KiB pages), so the weights' share of the peak shrinks
/// to the layers in use.
///
/// Not decided here: whether a parameter is mapped from a file, which only the caller knows. Not
/// listed: parameters smaller than `minimumBytes` (a call would free next to nothing) and
/// parameters a result writes (the optimizer's own buffers, never mapped).
struct ParameterReleasePlan {
    /// Parameter indices to release after each step (by step index).
    private(set) var after: [Int: [Int]] = [:]
    /// Bytes of the parameters the plan releases.
    private(set) var listedBytes = 0
    /// The most bytes of those parameters mapped at once when every release happens: each is
    /// mapped from a read that follows its previous release (or the call's start) until its next
    /// release (for `granule stats`' peak estimate).
    private(set) var peakListedBytes = 0

    static let minimumBytes = 64 * 1024
    /// Reads at most this many steps apart keep the pages (within one layer's forward or backward).
    static let gap = 16

    init(_ function: Function, reads: [[Value]]) {
        let written = Set(function.results.compactMap(\.writes))
        var readSteps: [Value: [Int]] = [:]
        for (step, buffers) in reads.enumerated() {
            for buffer in buffers { readSteps[buffer, default: []].append(step) }
        }
        var mappedChange = [Int](repeating: 0, count: reads.count + 1)  // bytes mapped from a step on (+) or after it (-)
        for (index, parameter) in function.parameters.enumerated() {
            let type = function.type(of: parameter.value)
            let bytes = type.elementCount * type.dtype.byteSize
            guard !written.contains(parameter.value), bytes >= ParameterReleasePlan.minimumBytes,
                  let steps = readSteps[parameter.value] else { continue }
            listedBytes += bytes
            var mappedSince: Int?
            for (k, step) in steps.enumerated() {
                if mappedSince == nil { mappedSince = step }
                guard k + 1 == steps.count || steps[k + 1] - step > ParameterReleasePlan.gap else { continue }
                after[step, default: []].append(index)
                mappedChange[mappedSince!] += bytes
                mappedChange[step + 1] -= bytes
                mappedSince = nil
            }
        }
        var mapped = 0
        for change in mappedChange {
            mapped += change
            peakListedBytes = max(peakListedBytes, mapped)
        }
    }
}
