/// Prints modules in the canonical text form: parsing the output and printing it again gives the
/// same text. Constants with more than `elideConstantsOver` elements print as
/// `dense<elided N values>` unless `elideConstantsOver` is nil.
public struct PrintOptions: Sendable {
    public var elideConstantsOver: Int?

    public init(elideConstantsOver: Int? = 16) { self.elideConstantsOver = elideConstantsOver }

    public static let full = PrintOptions(elideConstantsOver: nil)
}

public enum Printer {
    public static func print(_ module: Module, options: PrintOptions = PrintOptions()) -> String {
        module.functions.map { print($0, options: options) }.joined(separator: "\n")
    }

    public static func print(_ function: Function, options: PrintOptions = PrintOptions()) -> String {
        var out = ""
        let parameters = function.parameters.map { parameter in
            "%\(function.name(of: parameter.value)): \(function.type(of: parameter.value)) \(parameter.role.rawValue)"
        }
        let results = function.results.map { result in
            var text = "\(result.name): \(function.type(of: result.value))"
            if let target = result.writes { text += " writes %\(function.name(of: target))" }
            return text
        }
        let oneLine = "func @\(function.name)(\(parameters.joined(separator: ", "))) -> (\(results.joined(separator: ", "))) {"
        if oneLine.count <= 100 {
            out += oneLine + "\n"
        } else {
            out += "func @\(function.name)(\n"
            for (index, parameter) in parameters.enumerated() {
                out += "    \(parameter)\(index + 1 < parameters.count ? "," : "")\n"
            }
            out += ") -> (\n"
            for (index, result) in results.enumerated() {
                out += "    \(result)\(index + 1 < results.count ? "," : "")\n"
            }
            out += ") {\n"
        }
        for op in function.operations {
            out += "  " + print(op, in: function, options: options) + "\n"
        }
        let returned = function.results.map { "%" + function.name(of: $0.value) }
        out += returned.isEmpty ? "  return\n" : "  return \(returned.joined(separator: ", "))\n"
        out += "}\n"
        return out
    }

    public static func print(_ op: Operation, in function: Function, options: PrintOptions = PrintOptions()) -> String {
        var text = "%\(function.name(of: op.result)) = \(op.opcode.name)"
        if !op.operands.isEmpty {
            text += " " + op.operands.map { "%" + function.name(of: $0) }.joined(separator: ", ")
        }
        if let constant = op.constant {
            text += " " + print(constant, options: options)
        }
        if !op.attributes.isEmpty {
            text += " {" + op.attributes.map { "\($0.name) = \($0.value)" }.joined(separator: ", ") + "}"
        }
        text += " : \(function.type(of: op.result))"
        return text
    }

    static func print(_ constant: ConstantData, options: PrintOptions) -> String {
        switch constant {
        case .splat(let value):
            return "splat<\(value)>"
        case .dense(let values):
            if let limit = options.elideConstantsOver, values.count > limit {
                return "dense<elided \(values.count) values>"
            }
            return "dense<[" + values.map(\.description).joined(separator: ", ") + "]>"
        }
    }
}
