import GranuleIR

extension Lowering {
    /// Decoder inputs from labels (spec 3.4): the start token, then the labels shifted right by
    /// one, with the ignore index −100 replaced by the pad token.
    mutating func shiftRight(_ labels: Value) throws(Diagnostic) -> Value {
        let (batch, length) = (graph.shape(labels)[0], graph.shape(labels)[1])
        let start = try graph.splat(Double(spec.backbone.decoderStartTokenId), TensorType(.i64, [batch, 1]))
        var shifted = start
        if length > 1 {
            let kept = try graph.builder.emit(.slice, [labels], ["start": .ints([0, 0]), "limit": .ints([batch, length - 1])])
            shifted = try graph.builder.emit(.concat, [start, kept], ["axis": .int(1)])
        }
        let ignored = try graph.builder.compare(shifted, "eq", try graph.splat(-100, .scalar(.i64)))
        return try graph.builder.select(ignored, try graph.splat(Double(spec.backbone.padTokenId), .scalar(.i64)), shifted)
    }

    /// The training loss of spec 3.5 (no label smoothing, ignore index −100).
    mutating func lossValue(logits: Value, labels: Value, scores: Value?) throws(Diagnostic) -> Value {
        switch spec.loss {
        case .tokenMean:
            return try graph.builder.emit(.crossEntropy, [logits, labels], ["reduction": .symbol("mean"), "ignore_index": .int(-100)])
        case .sampleMean, .scoreWeighted:
            var perSample = try graph.builder.emit(.crossEntropy, [logits, labels], ["reduction": .symbol("sample_mean"), "ignore_index": .int(-100)])
            if let scores { perSample = try graph.builder.mul(perSample, scores) }
            return try graph.builder.reduceMean(perSample, axes: [0])
        }
    }
}
