import Foundation
import GranuleIR

/// A model spec: the backbone, the PET method and its hyper-parameters, the visual input, the
/// static batch shapes and the loss. Read from JSON (documented in the README); every error names
/// the file and the field.
public struct ModelSpec: Sendable, Equatable {
    /// Absolute or spec-relative path of the Hugging Face `config.json`, resolved.
    public var backbonePath: String
    public var backbone: BackboneConfig
    /// Rows of the backbone checkpoint's token embedding before `resize_vocab` (VL-BART adds 200
    /// visual-extra tokens; VL-T5 resizes to 32,200); equal to `backbone.vocabSize` otherwise.
    public var checkpointVocabSize: Int
    public var pet: PETMethod
    public var visual: VisualInput?
    public var batch: BatchShape
    public var loss: LossReduction
    /// Dropout probability of the frozen backbone (and of LoRA's input path); 0 lowers no dropout ops.
    public var dropout: Double
    public var tasks: [TaskSpec]

    public struct VisualInput: Sendable, Equatable {
        public var featureDim: Int
        /// The feature grid of one image (VL-BART: 7×7 CLIP RN101 `layer4` features).
        public var grid: [Int]
        /// Stride-1 max-pool window applied to the grid (7×7 → 6×6 = 36 tokens with [2, 2]).
        public var poolWindow: [Int]
        /// Images per example (NLVR2: 2).
        public var images: Int

        public var tokensPerImage: Int { (grid[0] - poolWindow[0] + 1) * (grid[1] - poolWindow[1] + 1) }
        public var tokens: Int { tokensPerImage * images }
    }

    public struct BatchShape: Sendable, Equatable {
        public var size: Int
        public var textLength: Int
        public var targetLength: Int
    }

    public enum LossReduction: String, Sendable, Equatable {
        /// Per-sample token mean, then batch mean (GQA, NLVR2).
        case sampleMean = "sample_mean"
        /// Per-sample token mean × the answer's soft score, then batch mean (VQA).
        case scoreWeighted = "score_weighted"
        /// Mean over every target token of the batch (captioning).
        case tokenMean = "token_mean"
    }

    public struct TaskSpec: Sendable, Equatable {
        public var name: String
        public var prompt: String
        public var loss: LossReduction
    }

    public static func load(path: String) throws(Diagnostic) -> ModelSpec {
        let json = try JSONFields.load(path)
        try json.onlyKeys(["backbone", "resize_vocab", "pet", "visual", "batch", "loss", "dropout", "tasks", "description", "notes"])
        let backboneField = try json.required("backbone")
        let relative = try backboneField.string()
        // Resolve against the working directory first: a relative spec path must keep its `..`s.
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let directory = URL(fileURLWithPath: absolute).standardizedFileURL.deletingLastPathComponent()
        let backbonePath = relative.hasPrefix("/") ? relative : directory.appendingPathComponent(relative).standardized.path
        guard FileManager.default.fileExists(atPath: backbonePath) else {
            throw Diagnostic(file: path, "field 'backbone': no config file at \(backbonePath)")
        }
        var backbone = try BackboneConfig.load(path: backbonePath)
        let checkpointVocabSize = backbone.vocabSize
        if let resize = try json.optional("resize_vocab") {
            let rows = try resize.positiveInt()
            guard rows >= backbone.vocabSize else { throw resize.failure("at least the backbone's vocab_size \(backbone.vocabSize)") }
            backbone.vocabSize = rows
        }

        var visual: VisualInput?
        if let field = try json.optional("visual") {
            try field.onlyKeys(["feature_dim", "grid", "pool_window", "images"])
            let grid = try field.required("grid").positiveInts(count: 2)
            let window = try field.optional("pool_window")?.positiveInts(count: 2) ?? [1, 1]
            guard window[0] <= grid[0], window[1] <= grid[1] else {
                throw try field.required("pool_window").failure("a window no larger than the grid \(grid)")
            }
            visual = VisualInput(
                featureDim: try field.required("feature_dim").positiveInt(), grid: grid, poolWindow: window,
                images: try field.optional("images")?.positiveInt() ?? 1)
            if let visual, visual.images > 2 { throw try field.required("images").failure("1 or 2 (the image-order embedding has 2 rows)") }
        }

        let batchField = try json.required("batch")
        try batchField.onlyKeys(["size", "text_length", "target_length"])
        let batch = BatchShape(
            size: try batchField.required("size").positiveInt(),
            textLength: try batchField.required("text_length").positiveInt(),
            targetLength: try batchField.required("target_length").positiveInt())

        let loss = try lossReduction(json.required("loss"))
        let dropout = try json.optional("dropout")?.double() ?? 0.1
        guard dropout >= 0, dropout < 1 else { throw try json.required("dropout").failure("a probability in [0, 1)") }

        var tasks: [TaskSpec] = []
        for task in try json.optional("tasks")?.array() ?? [] {
            try task.onlyKeys(["name", "prompt", "loss"])
            tasks.append(TaskSpec(
                name: try task.required("name").string(), prompt: try task.optional("prompt")?.string() ?? "",
                loss: try task.optional("loss").map(lossReduction) ?? loss))
        }

        let spec = ModelSpec(
            backbonePath: backbonePath, backbone: backbone, checkpointVocabSize: checkpointVocabSize,
            pet: try PETMethod.parse(json.required("pet"), backbone: backbone),
            visual: visual, batch: batch, loss: loss, dropout: dropout, tasks: tasks)
        try spec.checkSizes(json)
        return spec
    }

    private static func lossReduction(_ field: JSONFields) throws(Diagnostic) -> LossReduction {
        LossReduction(rawValue: try field.string(oneOf: ["sample_mean", "score_weighted", "token_mean"]))!
    }

    /// Checks that the static shapes fit the backbone (positions, vocabulary rows for object ids).
    private func checkSizes(_ json: JSONFields) throws(Diagnostic) {
        let prompts = pet.promptLength
        if backbone.family == .bart, batch.textLength + prompts > backbone.maxPositions {
            throw Diagnostic(file: json.file, "field 'batch.text_length': \(batch.textLength) tokens (+\(prompts) prompts) exceed the backbone's max_position_embeddings \(backbone.maxPositions)")
        }
        if backbone.family == .bart, batch.targetLength > backbone.maxPositions {
            throw Diagnostic(file: json.file, "field 'batch.target_length': \(batch.targetLength) exceeds max_position_embeddings \(backbone.maxPositions)")
        }
        if let visual, visual.tokensPerImage > backbone.vocabSize {
            throw Diagnostic(file: json.file, "field 'visual': \(visual.tokensPerImage) object-order ids need that many vocabulary rows; the backbone has \(backbone.vocabSize)")
        }
        // The largest activations, checked here so that an absurd size is reported against the
        // fields that make it rather than by the graph builder, which knows no fields.
        let encoderLength = batch.textLength + prompts + (visual?.tokens ?? 0)
        let encoderFields = "'batch.size' and 'batch.text_length' (with \(prompts) prompts and \(visual?.tokens ?? 0) visual tokens)"
        let largest: [(fields: String, what: String, dims: [Int])] = [
            ("'batch.size' and 'batch.target_length'", "the logits", [batch.size, batch.targetLength, backbone.vocabSize]),
            (encoderFields, "the encoder's feed-forward activations", [batch.size, encoderLength, backbone.ffnDim]),
            (encoderFields, "the encoder's attention scores", [batch.size, backbone.heads, encoderLength, encoderLength]),
            ("'batch.size' and 'batch.target_length'", "the decoder's feed-forward activations", [batch.size, batch.targetLength, backbone.ffnDim]),
            ("'batch.size' and 'batch.target_length'", "the decoder's attention scores", [batch.size, backbone.heads, batch.targetLength, batch.targetLength]),
        ]
        if backbone.family == .t5 {
            // T5's relative-position buckets are constants built when lowering: length² i64 values
            // (512 MiB at 8192 positions; 400,000 decoder positions asked for 1.3 TB and crashed).
            if encoderLength > 8192 {
                throw Diagnostic(file: json.file, "fields \(encoderFields): \(encoderLength) encoder positions; T5's relative-position table is built when compiling, for at most 8192")
            }
            if batch.targetLength > 8192 {
                throw Diagnostic(file: json.file, "field 'batch.target_length': \(batch.targetLength) positions; T5's relative-position table is built when compiling, for at most 8192")
            }
        }
        for (fields, what, dims) in largest {
            var elements = 1
            for dim in dims {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                elements = overflow ? Int.max : product
            }
            if elements > 1 << 40 {
                let shape = "[" + dims.map(String.init).joined(separator: ", ") + "]"
                throw Diagnostic(file: json.file, "fields \(fields): \(what) \(shape) would have more than 2^40 elements")
            }
        }
    }
}
