import GranuleIR

/// A transformation of a whole module. `run` returns the new module; the pass manager verifies it.
public protocol ModulePass: Sendable {
    /// The name used in pipelines (`--passes autodiff,cse`) and dump file names.
    var name: String { get }
    func run(on module: Module) throws(Diagnostic) -> Module
}

/// A pass that rewrites each function on its own.
public protocol FunctionPass: ModulePass {
    func run(on function: Function) throws(Diagnostic) -> Function
}

extension FunctionPass {
    public func run(on module: Module) throws(Diagnostic) -> Module {
        var result = module
        for index in result.functions.indices {
            result.functions[index] = try run(on: result.functions[index])
        }
        return result
    }
}

/// Options that pipelines built by name pass to the passes that take them.
public struct PassConfiguration: Sendable {
    /// Input parameters autodiff also differentiates with respect to (by name).
    public var extraGradientInputs: [String]

    public init(extraGradientInputs: [String] = []) { self.extraGradientInputs = extraGradientInputs }
}

/// The passes that can be named in a pipeline.
public enum PassRegistry {
    public static let names = [
        "merge-matmuls", "merge-shared-matmuls", "autodiff", "adamw", "narrow-slices", "pads-to-concat", "simplify",
        "accumulate-scatters", "cse", "hoist-masks", "dce",
    ]

    /// The pipeline `granule compile` and `granule stats` run on a lowered model spec. It merges no
    /// matmuls: `merge-shared-matmuls` (the decoder cross-attention's K, V and value-adapter down
    /// projections of every layer as one GEMM over the encoder output) measured time-neutral but
    /// 30–145 MB larger at batch 32 under the lifetime-based memory plan: the weight concat (30 MB
    /// on BART-base, 60 on T5-base), and the merged output and its gradient stay live as wholes
    /// (T5-base VL-PET-large b32 training: arena 1678 → 1533 MB, peak RSS 2655 → 2517 MiB).
    /// `narrow-slices` and `pads-to-concat` stay for pipelines that merge.
    /// `accumulate-scatters` adds an embedding's lookup gradients into its other gradients instead
    /// of summing zero-based scatters (full fine-tuning of BART-base: 465 MB less arena).
    /// `hoist-masks` moves the ReLU gradient's masks into the forward pass (T5's FFN saves a 1-byte
    /// mask per element instead of its 4-byte pre-activation).
    public static let modelPipeline = "autodiff,narrow-slices,pads-to-concat,adamw,simplify,accumulate-scatters,cse,hoist-masks,dce"

    public static func make(_ name: String, configuration: PassConfiguration = PassConfiguration()) -> (any ModulePass)? {
        switch name {
        case "merge-matmuls": MergeSiblingMatmuls()
        case "merge-shared-matmuls": MergeSiblingMatmuls(minimumMembers: 7)
        case "autodiff": Autodiff(extraGradientInputs: configuration.extraGradientInputs)
        case "adamw": AdamW()
        case "narrow-slices": NarrowSlicedMatmuls()
        case "pads-to-concat": ConcatDisjointPads()
        case "simplify": Simplify()
        case "accumulate-scatters": AccumulateScatters()
        case "cse": CommonSubexpressionElimination()
        case "hoist-masks": HoistMasks()
        case "dce": DeadCodeElimination()
        default: nil
        }
    }
}

/// Runs passes in order, verifying the module after each one so that a broken pass is caught at
/// the pass that broke it.
public struct PassManager: Sendable {
    public var passes: [any ModulePass]

    public init(_ passes: [any ModulePass]) { self.passes = passes }

    /// Verifies the module before the first pass (an error in the input is reported as the
    /// input's, at its location) and after every pass (an error there is the pass's).
    public func run(_ module: Module, afterEach: (String, Module) -> Void = { _, _ in }) throws(Diagnostic) -> Module {
        try Verifier.verify(module)
        var current = module
        for pass in passes {
            current = try pass.run(on: current)
            do {
                try Verifier.verify(current)
            } catch {
                throw Diagnostic("after pass '\(pass.name)': \(error.message)", at: error.location)
            }
            afterEach(pass.name, current)
        }
        return current
    }
}
