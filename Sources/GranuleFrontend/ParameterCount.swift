/// Trainable and total parameter counts as the paper's "Params (%)" column computes them
/// (spec 5): over the final model (resized vocabulary, visual embedding, PET modules), tied
/// embeddings once, buffers excluded.
public struct ParameterCount: Sendable, Equatable {
    public struct Group: Sendable, Equatable {
        public var name: String
        public var trainable: Int
        public var total: Int
    }

    public var trainable: Int
    public var total: Int
    public var groups: [Group]

    public var percent: Double { total == 0 ? 0 : 100 * Double(trainable) / Double(total) }

    public init(_ parameters: [ModelParameter]) {
        var groups: [Group] = []
        for parameter in parameters where !parameter.isBuffer {
            let name = ParameterCount.groupName(parameter)
            if let index = groups.firstIndex(where: { $0.name == name }) {
                groups[index].total += parameter.elementCount
                if parameter.trainable { groups[index].trainable += parameter.elementCount }
            } else {
                groups.append(Group(name: name, trainable: parameter.trainable ? parameter.elementCount : 0, total: parameter.elementCount))
            }
        }
        self.groups = groups
        trainable = groups.reduce(0) { $0 + $1.trainable }
        total = groups.reduce(0) { $0 + $1.total }
    }

    /// A readable group: the backbone split into norms, biases and weights; the visual embedding;
    /// each kind of PET module with the layer index removed.
    static func groupName(_ parameter: ModelParameter) -> String {
        switch parameter.origin {
        case .visual:
            return "visual embedding"
        case .backbone:
            let name = parameter.name
            if name.contains("layer_norm") || name.contains("layernorm") { return "backbone norms" }
            if name.hasSuffix(".bias") { return "backbone biases" }
            return "backbone weights"
        case .pet:
            let components = parameter.name.split(separator: ".")
            let side = components.contains("decoder") ? "decoder" : "encoder"
            let module = components.first { part in
                ["adapter", "gating", "lora", "prompt"].contains { part.contains($0) }
            } ?? components.dropLast().last ?? ""
            return "PET \(side) \(module)"
        }
    }

    /// The report of `granule params`, ending with `trainable <count> of <count> (<percent>%)`.
    public func report() -> String {
        let width = max(groups.map(\.name.count).max() ?? 0, 12)
        var lines = ["\("group".padding(toLength: width, withPad: " ", startingAt: 0))  \(pad("trainable", 12))  \(pad("total", 12))"]
        for group in groups {
            lines.append("\(group.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(pad(String(group.trainable), 12))  \(pad(String(group.total), 12))")
        }
        lines.append("trainable \(trainable) of \(total) (\(formatPercent(percent))%)")
        return lines.joined(separator: "\n")
    }

    private func pad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }

    private func formatPercent(_ value: Double) -> String {
        let hundredths = (value * 100).rounded()
        let whole = Int(hundredths) / 100
        let fraction = Int(hundredths) % 100
        return "\(whole).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
