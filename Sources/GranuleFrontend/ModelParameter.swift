import GranuleIR

/// One weight of a lowered model: its checkpoint name, shape, whether it trains, and how
/// `granule init` initialises it.
public struct ModelParameter: Sendable, Equatable {
    public enum Origin: Sendable, Equatable {
        /// Part of the Hugging Face backbone (loaded from its checkpoint).
        case backbone
        /// The visual embedding ("visual projector").
        case visual
        /// Added by the PET method.
        case pet
    }

    /// How a fresh parameter is initialised (spec 1.6).
    public enum Initializer: Sendable, Equatable {
        case normal(std: Double)
        /// PyTorch's default for `nn.Linear` (weight and bias): U(±1/√fan_in).
        case uniform(bound: Double)
        case zeros
        case ones
    }

    public var name: String
    public var shape: [Int]
    public var origin: Origin
    public var trainable: Bool
    /// A buffer (BART's `final_logits_bias`): loaded and frozen, but not counted as a parameter.
    public var isBuffer: Bool
    public var initializer: Initializer

    public var elementCount: Int { shape.reduce(1, *) }
}
