import GranuleIR

/// A parameter-efficient tuning method and its hyper-parameters (spec sections 1, 2 and 7).
public enum PETMethod: Sendable, Equatable {
    /// VL-PET: a multi-head bottleneck ΔH on every encoder sub-layer, a granularity-controlled
    /// gate G, a value-path adapter in every decoder cross-attention.
    case vlpet(VLPETOptions)
    /// VL-Adapter ("single adapter"): a bottleneck adapter after every sub-layer, all LayerNorms trainable.
    case vlAdapter(r: Int)
    /// LoRA on the query and value projections of every attention; all biases trainable.
    case lora(r: Int, alpha: Double)
    /// Compacter: VL-Adapter's placement with PHM (Kronecker-sum) projections.
    case compacter(r: Int, n: Int)
    /// BitFit: every bias trainable.
    case bitfit
    /// Prompt tuning: `length` prompt vectors from an MLP over a learned embedding, prepended to the text.
    case promptTuning(length: Int, midDim: Int)
    /// Full fine-tuning: every parameter trainable.
    case full

    public struct VLPETOptions: Sendable, Equatable {
        public enum Granularity: String, Sendable, CaseIterable { case small, middlex, middley, large }
        /// What ΔH is: VL-PET's multi-head adapter, a Compacter PHM adapter (Table 9), or LoRA
        /// (rank r on the encoder's self-attention q and v, ΔH = 0, and LoRA on the decoder
        /// cross-attention's v as the value-path module: Granule's reading of spec 7.8 for LoRA).
        public enum Base: Sendable, Equatable {
            case adapter
            case compacter(n: Int)
            case lora(alpha: Double)
        }

        public var granularity: Granularity
        public var r: Int
        public var heads: Int
        /// r_g, the bottleneck of VL-PET-large's gate generator.
        public var gateR: Int
        /// s, the scaling of the gated branch (BART 1.0, T5 0.3).
        public var scale: Double
        /// r_v, the bottleneck of the decoder value-path adapter.
        public var valueR: Int
        public var base: Base
        /// T5's zero-init flags (spec 1.6): up-projections, gate up-projections and z start at 0.
        public var zeroInit: Bool
    }

    /// Prompt vectors prepended to the encoder text.
    public var promptLength: Int {
        if case .promptTuning(let length, _) = self { return length }
        return 0
    }

    public var name: String {
        switch self {
        case .vlpet(let options):
            switch options.base {
            case .adapter: "vl-pet-\(options.granularity.rawValue)"
            case .compacter: "compacter+g-\(options.granularity.rawValue)"
            case .lora: "lora+g-\(options.granularity.rawValue)"
            }
        case .vlAdapter: "vl-adapter"
        case .lora: "lora"
        case .compacter: "compacter"
        case .bitfit: "bitfit"
        case .promptTuning: "prompt-tuning"
        case .full: "full"
        }
    }

    static func parse(_ json: JSONFields, backbone: BackboneConfig) throws(Diagnostic) -> PETMethod {
        let methods = ["vl-pet", "vl-adapter", "lora", "compacter", "bitfit", "prompt-tuning", "full"]
        let method = try json.required("method").string(oneOf: methods)
        let d = backbone.dModel
        func divides(_ value: Int, _ field: String, by divisor: Int, _ what: String) throws(Diagnostic) {
            guard value % divisor == 0 else {
                throw Diagnostic(file: json.file, "field 'pet.\(field)': \(value) is not divisible by \(what) (\(divisor))")
            }
        }
        /// Compacter's n must divide d_model (its Kronecker factors tile the d × r weights).
        func phmDividesModel(_ n: Int) throws(Diagnostic) {
            guard d % n == 0 else { throw Diagnostic(file: json.file, "field 'pet.phm_n': \(n) does not divide d_model (\(d))") }
        }
        switch method {
        case "vl-pet":
            try json.onlyKeys(["method", "granularity", "r", "heads", "gate_r", "scale", "value_r", "base", "phm_n", "alpha", "zero_init"])
            let granularity = VLPETOptions.Granularity(
                rawValue: try json.required("granularity").string(oneOf: VLPETOptions.Granularity.allCases.map(\.rawValue)))!
            let r = try json.required("r").positiveInt()
            let heads = try json.optional("heads")?.positiveInt() ?? 1
            try divides(r, "r", by: heads, "heads")
            var gateR = 0
            if granularity == .large {
                gateR = try json.required("gate_r").positiveInt()
            } else if try json.optional("gate_r") != nil {
                throw Diagnostic(file: json.file, "field 'pet.gate_r': only VL-PET-large has a gate bottleneck")
            }
            var base = VLPETOptions.Base.adapter
            let baseName = try json.optional("base")?.string(oneOf: ["adapter", "compacter", "lora"]) ?? "adapter"
            if baseName != "lora", try json.optional("alpha") != nil {
                throw Diagnostic(file: json.file, "field 'pet.alpha': only applies with \"base\": \"lora\"")
            }
            switch baseName {
            case "lora":
                base = .lora(alpha: try json.required("alpha").double())
            case "compacter":
                let n = try json.required("phm_n").positiveInt()
                try phmDividesModel(n)
                try divides(r, "r", by: n, "phm_n")
                base = .compacter(n: n)
            default:
                if try json.optional("phm_n") != nil { throw Diagnostic(file: json.file, "field 'pet.phm_n': only applies with \"base\": \"compacter\"") }
            }
            // LoRA's value-path module is its rank-r update of v: no separate bottleneck.
            let valueR = baseName == "lora" ? try json.optional("value_r")?.positiveInt() ?? r : try json.required("value_r").positiveInt()
            if case .compacter(let n) = base { try divides(valueR, "value_r", by: n, "phm_n") }
            return .vlpet(VLPETOptions(
                granularity: granularity, r: r, heads: heads, gateR: gateR,
                scale: try json.optional("scale")?.double() ?? 1.0, valueR: valueR, base: base,
                zeroInit: try json.optional("zero_init")?.bool() ?? (backbone.family == .t5)))
        case "vl-adapter":
            try json.onlyKeys(["method", "r"])
            return .vlAdapter(r: try json.required("r").positiveInt())
        case "lora":
            try json.onlyKeys(["method", "r", "alpha"])
            return .lora(r: try json.required("r").positiveInt(), alpha: try json.required("alpha").double())
        case "compacter":
            try json.onlyKeys(["method", "r", "phm_n"])
            let r = try json.required("r").positiveInt()
            let n = try json.required("phm_n").positiveInt()
            try divides(r, "r", by: n, "phm_n")
            try phmDividesModel(n)
            return .compacter(r: r, n: n)
        case "bitfit":
            try json.onlyKeys(["method"])
            return .bitfit
        case "prompt-tuning":
            try json.onlyKeys(["method", "length", "mid_dim"])
            return .promptTuning(length: try json.required("length").positiveInt(), midDim: try json.required("mid_dim").positiveInt())
        default:
            try json.onlyKeys(["method"])
            return .full
        }
    }
}
