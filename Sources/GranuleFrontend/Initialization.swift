import GranuleIR
import GranuleInterpreter
import GranuleSupport

/// Initial weights for a lowered model (`granule init`): every parameter drawn from its
/// initializer with a seeded generator, or — with a base checkpoint — the backbone's tensors
/// kept and only what is new initialised (PET modules, the visual embedding, resized rows).
public enum Initialization {
    public struct Report: Sendable {
        public var loaded = 0
        public var initialized = 0
        public var resized: [String] = []
        /// Base tensors that name nothing in the model (e.g. an untied copy of a tied head).
        public var unused: [String] = []
    }

    public static func weights(
        for parameters: [ModelParameter], seed: UInt64, base: [(name: String, tensor: Tensor)]? = nil, basePath: String = "base"
    ) throws(Diagnostic) -> (tensors: [(name: String, tensor: Tensor)], report: Report) {
        var generator = SeededGenerator(seed: seed)
        var baseByName: [String: Tensor] = [:]
        for (name, tensor) in base ?? [] { baseByName[name] = tensor }
        var used: Set<String> = []
        var report = Report()
        var result: [(name: String, tensor: Tensor)] = []
        for parameter in parameters {
            let type = TensorType(.f32, parameter.shape)
            var fresh = sample(parameter.initializer, count: parameter.elementCount, &generator)
            if base != nil, let (baseName, stored) = lookup(parameter.name, in: baseByName) {
                used.insert(baseName)
                guard stored.type.dtype.isFloat else {
                    throw Diagnostic(file: basePath, "tensor '\(baseName)' is \(stored.type), expected float \(type)")
                }
                // A NaN or infinity would make every output of the initialised model NaN.
                if let bad = stored.floats.firstIndex(where: { !$0.isFinite }) {
                    throw Diagnostic(file: basePath, "tensor '\(baseName)' holds \(stored.floats[bad].isNaN ? "NaN" : "an infinity") at element \(bad)")
                }
                if stored.type.shape == parameter.shape {
                    fresh = stored.floats.map { Double(Float($0)) }
                    report.loaded += 1
                } else if let axis = vocabularyAxis(parameter.name), let resized = keepRows(stored, into: fresh, shape: parameter.shape, axis: axis) {
                    fresh = resized
                    report.resized.append("\(parameter.name) \(stored.type.shape) -> \(parameter.shape)")
                    report.loaded += 1
                } else {
                    throw Diagnostic(file: basePath, "tensor '\(baseName)' has shape \(stored.type.shape) but the spec's model needs \(parameter.shape)")
                }
            } else if base != nil, parameter.origin == .backbone, !parameter.isBuffer {
                throw Diagnostic(file: basePath, "missing backbone tensor '\(parameter.name)' (expected f32\(parameter.shape)); is this checkpoint for the spec's backbone?")
            } else {
                report.initialized += 1
            }
            result.append((parameter.name, Tensor(type, floats: fresh)))
        }
        report.unused = baseByName.keys.filter { !used.contains($0) }.sorted()
        return (result, report)
    }

    /// Hugging Face checkpoints of BART may or may not carry the `model.` prefix, and their
    /// safetensors files may keep only one tied copy of the token embedding (e.g. just
    /// `model.decoder.embed_tokens.weight`, with the other names as metadata aliases).
    private static func lookup(_ name: String, in tensors: [String: Tensor]) -> (String, Tensor)? {
        var names = [name]
        if name == "model.shared.weight" || name == "shared.weight" {
            let prefix = name == "shared.weight" ? "" : "model."
            names += [prefix + "encoder.embed_tokens.weight", prefix + "decoder.embed_tokens.weight"]
        }
        for base in names {
            let candidates = [base, base.hasPrefix("model.") ? String(base.dropFirst("model.".count)) : "model." + base]
            for candidate in candidates { if let tensor = tensors[candidate] { return (candidate, tensor) } }
        }
        return nil
    }

    /// The vocabulary axis of the tensors that `resize_vocab` grows (token embedding and LM head
    /// rows; BART's `final_logits_bias` [1, V]); no other tensor may come from the base shorter.
    private static func vocabularyAxis(_ name: String) -> Int? {
        switch name {
        case "model.shared.weight", "shared.weight", "lm_head.weight": 0
        case "final_logits_bias": 1
        default: nil
        }
    }

    /// A tensor with fewer entries along `axis` than needed (a vocabulary before resizing): copy
    /// what exists, keep fresh values elsewhere.
    private static func keepRows(_ stored: Tensor, into fresh: [Double], shape: [Int], axis: Int) -> [Double]? {
        let old = stored.type.shape
        guard old.count == shape.count, shape.indices.contains(axis) else { return nil }
        let differing = (0..<shape.count).filter { old[$0] != shape[$0] }
        guard differing == [axis], old[axis] < shape[axis] else { return nil }
        let inner = shape[(axis + 1)...].reduce(1, *)
        let outer = shape[..<axis].reduce(1, *)
        var result = fresh
        let values = stored.floats
        for o in 0..<outer {
            for row in 0..<old[axis] {
                for i in 0..<inner {
                    result[(o * shape[axis] + row) * inner + i] = Double(Float(values[(o * old[axis] + row) * inner + i]))
                }
            }
        }
        return result
    }

    static func sample(_ initializer: ModelParameter.Initializer, count: Int, _ generator: inout SeededGenerator) -> [Double] {
        switch initializer {
        case .zeros: return [Double](repeating: 0, count: count)
        case .ones: return [Double](repeating: 1, count: count)
        case .normal(let std): return (0..<count).map { _ in Double(Float(generator.normal() * std)) }
        case .uniform(let bound): return (0..<count).map { _ in Double(Float(Double.random(in: -bound...bound, using: &generator))) }
        }
    }
}
