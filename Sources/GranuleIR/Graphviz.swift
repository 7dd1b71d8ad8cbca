/// Renders a module's dataflow graphs in the Graphviz DOT language (`granule ... | dot -Tsvg`).
///
/// Each function becomes one cluster: its parameters are nodes styled by role, each op is a box
/// labelled with its name and result type (constants are drawn small), edges run from operands to
/// the ops that use them, and each function result is an output node. A result that `writes` a
/// parameter has a dashed edge back to that parameter. A legend cluster explains the styles.
public enum Graphviz {
    public static func dot(_ module: Module) -> String {
        var lines = [
            "digraph granule {",
            "  rankdir=TB;",
            "  compound=true;",
            "  node [fontname=\"Helvetica\", fontsize=10];",
            "  edge [fontname=\"Helvetica\", fontsize=8, color=\"#555555\"];",
        ]
        for (index, function) in module.functions.enumerated() {
            lines += cluster(function, prefix: "f\(index)_", clusterName: "cluster_f\(index)")
        }
        lines += legend()
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: styles

    /// The DOT attributes of a parameter node with `role`.
    static func style(for role: Role) -> String {
        switch role {
        case .trainable: "shape=cylinder, style=filled, fillcolor=\"#8fd18f\""
        case .frozen: "shape=cylinder, style=filled, fillcolor=\"#c8c8c8\""
        case .state: "shape=cylinder, style=filled, fillcolor=\"#f5a142\""
        case .input: "shape=ellipse, style=filled, fillcolor=\"#add8f0\""
        }
    }

    static let opStyle = "shape=box, style=\"rounded\""
    static let constantStyle = "shape=box, style=\"rounded,filled\", fillcolor=\"#f4f4f4\", fontsize=7, height=0.2, margin=\"0.04,0.02\""
    static let resultStyle = "shape=invhouse, style=\"filled,bold\", fillcolor=\"#fff3b0\""
    static let writesEdgeStyle = "style=dashed, color=\"#d2691e\", fontcolor=\"#d2691e\", label=\"writes\", constraint=false"

    // MARK: pieces

    static func cluster(_ function: Function, prefix: String, clusterName: String) -> [String] {
        func node(_ value: Value) -> String { "\(prefix)v\(value.id)" }
        var lines = [
            "  subgraph \(clusterName) {",
            "    label=\(quoted("@" + function.name));",
            "    labeljust=l;",
            "    style=rounded;",
            "    color=\"#888888\";",
        ]
        for parameter in function.parameters {
            let value = parameter.value
            let label = "%\(function.name(of: value))\n\(function.type(of: value))\n\(parameter.role.rawValue)"
            lines.append("    \(node(value)) [label=\(quoted(label)), \(style(for: parameter.role))];")
        }
        for op in function.operations {
            let type = function.type(of: op.result)
            let tooltip = Printer.print(op, in: function)
            if op.opcode == .constant {
                let data = op.constant.map { Printer.print($0, options: PrintOptions(elideConstantsOver: 4)) } ?? ""
                let label = "\(data)\n\(type)"
                lines.append("    \(node(op.result)) [label=\(quoted(label)), tooltip=\(quoted(tooltip)), \(constantStyle)];")
            } else {
                let label = "\(op.opcode.name)\n\(type)"
                lines.append("    \(node(op.result)) [label=\(quoted(label)), tooltip=\(quoted(tooltip)), \(opStyle)];")
            }
        }
        for op in function.operations {
            // Number the operands where their order matters (sub, div, select, ...).
            let numbered = op.operands.count > 1 && !op.opcode.isCommutative
            for (position, operand) in op.operands.enumerated() {
                let label = numbered ? " [headlabel=\"\(position)\"]" : ""
                lines.append("    \(node(operand)) -> \(node(op.result))\(label);")
            }
        }
        for (index, result) in function.results.enumerated() {
            let output = "\(prefix)r\(index)"
            lines.append("    \(output) [label=\(quoted(result.name)), \(resultStyle)];")
            lines.append("    \(node(result.value)) -> \(output);")
            if let target = result.writes {
                lines.append("    \(output) -> \(node(target)) [\(writesEdgeStyle)];")
            }
        }
        lines.append("  }")
        return lines
    }

    static func legend() -> [String] {
        var lines = [
            "  subgraph cluster_legend {",
            "    label=\"legend\";",
            "    labeljust=l;",
            "    style=dashed;",
            "    color=\"#aaaaaa\";",
        ]
        let entries: [(id: String, label: String, style: String)] = [
            ("legend_input", "input", style(for: .input)),
            ("legend_trainable", "trainable", style(for: .trainable)),
            ("legend_frozen", "frozen", style(for: .frozen)),
            ("legend_state", "state", style(for: .state)),
            ("legend_op", "op\nresult type", opStyle),
            ("legend_constant", "constant", constantStyle),
            ("legend_result", "result", resultStyle),
        ]
        for entry in entries {
            lines.append("    \(entry.id) [label=\(quoted(entry.label)), \(entry.style)];")
        }
        // Invisible edges stack the legend entries in one column.
        lines.append("    " + entries.map(\.id).joined(separator: " -> ") + " [style=invis];")
        lines.append("    legend_result -> legend_state [\(writesEdgeStyle)];")
        lines.append("  }")
        return lines
    }

    /// A DOT double-quoted string: backslashes and quotes are escaped, and line breaks become
    /// DOT's centred line break `\n` (so a label can never end the string or the statement early).
    static func quoted(_ text: String) -> String {
        var out = "\""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n", "\r\n": out += "\\n"
            case "\r": break
            default: out.append(character)
            }
        }
        return out + "\""
    }
}
