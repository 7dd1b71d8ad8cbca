/// Parses the text form of the IR (grammar in `IR/README.md`) into a `Module`.
///
/// The parser checks syntax and name resolution (every `%name` must be defined earlier in its
/// function, and only once); types and shapes are the verifier's job. Errors point at the
/// offending token as `file:line:col`.
public struct Parser {
    private var tokens: [Lexer.Token]
    private var position = 0

    public init(text: String, file: String = "<input>") throws(Diagnostic) {
        var lexer = Lexer(text: text, file: file)
        tokens = try lexer.tokenize()
    }

    /// Parses a whole module.
    public static func parse(_ text: String, file: String = "<input>") throws(Diagnostic) -> Module {
        var parser = try Parser(text: text, file: file)
        return try parser.parseModule()
    }

    public mutating func parseModule() throws(Diagnostic) -> Module {
        var module = Module()
        var seen: [String: SourceLocation] = [:]
        while current.kind != .end {
            let function = try parseFunction()
            if let previous = seen[function.name] {
                throw Diagnostic("function @\(function.name) is already defined at \(previous)", at: function.location)
            }
            seen[function.name] = function.location
            module.functions.append(function)
        }
        return module
    }

    // MARK: token helpers

    private var current: Lexer.Token { tokens[position] }

    private mutating func advance() { if position < tokens.count - 1 { position += 1 } }

    private func describe(_ kind: Lexer.Kind) -> String {
        switch kind {
        case .valueName(let name): "'%\(name)'"
        case .functionName(let name): "'@\(name)'"
        case .identifier(let name): "'\(name)'"
        case .integer(let text), .float(let text): "'\(text)'"
        case .punctuation(let text): "'\(text)'"
        case .end: "end of file"
        }
    }

    private func error(_ expected: String) -> Diagnostic {
        Diagnostic("expected \(expected), found \(describe(current.kind))", at: current.location)
    }

    private mutating func expect(_ punctuation: String) throws(Diagnostic) {
        guard current.kind == .punctuation(punctuation) else { throw error("'\(punctuation)'") }
        advance()
    }

    private mutating func consume(_ punctuation: String) -> Bool {
        guard current.kind == .punctuation(punctuation) else { return false }
        advance()
        return true
    }

    private mutating func expectKeyword(_ keyword: String) throws(Diagnostic) {
        guard current.kind == .identifier(keyword) else { throw error("'\(keyword)'") }
        advance()
    }

    private mutating func identifier(_ what: String) throws(Diagnostic) -> String {
        guard case .identifier(let name) = current.kind else { throw error(what) }
        advance()
        return name
    }

    private mutating func integer(_ what: String) throws(Diagnostic) -> Int {
        guard case .integer(let text) = current.kind else { throw error(what) }
        guard let value = Int(text) else { throw Diagnostic("integer \(text) is out of range", at: current.location) }
        advance()
        return value
    }

    // MARK: grammar

    private mutating func parseFunction() throws(Diagnostic) -> Function {
        let location = current.location
        try expectKeyword("func")
        guard case .functionName(let name) = current.kind else { throw error("a function name like '@loss'") }
        advance()
        var function = Function(name: name, location: location)
        var definedAt: [Value: SourceLocation] = [:]

        try expect("(")
        if !consume(")") {
            repeat {
                let parameterLocation = current.location
                let (valueName, _) = try valueName()
                try expect(":")
                let type = try parseType()
                let roleName = try identifier("a role (input, frozen, trainable or state)")
                guard let role = Role(rawValue: roleName) else {
                    throw Diagnostic("unknown role '\(roleName)'; expected input, frozen, trainable or state", at: tokens[position - 1].location)
                }
                let value = try define(valueName, type: type, at: parameterLocation, in: &function, definedAt: &definedAt)
                function.parameters.append(Parameter(value: value, role: role, location: parameterLocation))
            } while consume(",")
            try expect(")")
        }

        try expect("->")
        try expect("(")
        var signature: [(name: String, type: TensorType, writes: (String, SourceLocation)?, location: SourceLocation)] = []
        if !consume(")") {
            repeat {
                let resultLocation = current.location
                let resultName = try identifier("a result name like 'loss'")
                try expect(":")
                let type = try parseType()
                var writes: (String, SourceLocation)?
                if current.kind == .identifier("writes") {
                    advance()
                    let (target, targetLocation) = try valueName()
                    writes = (target, targetLocation)
                }
                signature.append((resultName, type, writes, resultLocation))
            } while consume(",")
            try expect(")")
        }

        try expect("{")
        while current.kind != .identifier("return") {
            function.operations.append(try parseOperation(in: &function, definedAt: &definedAt))
        }
        let returnLocation = current.location
        advance()
        var returned: [(Value, SourceLocation)] = []
        if case .valueName = current.kind {
            repeat {
                let (name, nameLocation) = try valueName()
                returned.append((try use(name, at: nameLocation, in: function), nameLocation))
            } while consume(",")
        }
        try expect("}")

        guard returned.count == signature.count else {
            throw Diagnostic("'return' gives \(returned.count) value\(returned.count == 1 ? "" : "s") but the signature declares \(signature.count)", at: returnLocation)
        }
        for (entry, (value, valueLocation)) in zip(signature, returned) {
            guard function.type(of: value) == entry.type else {
                throw Diagnostic("result '\(entry.name)' is declared \(entry.type) but %\(function.name(of: value)) is \(function.type(of: value))", at: valueLocation)
            }
            var target: Value?
            if let (writesName, writesLocation) = entry.writes {
                target = try use(writesName, at: writesLocation, in: function)
            }
            function.results.append(FunctionResult(name: entry.name, value: value, writes: target, location: entry.location))
        }
        return function
    }

    private mutating func valueName() throws(Diagnostic) -> (String, SourceLocation) {
        guard case .valueName(let name) = current.kind else { throw error("a value name like '%x'") }
        let location = current.location
        advance()
        return (name, location)
    }

    private func use(_ name: String, at location: SourceLocation, in function: Function) throws(Diagnostic) -> Value {
        guard let value = function.value(named: name) else {
            throw Diagnostic("use of undefined value %\(name)", at: location)
        }
        return value
    }

    private func define(
        _ name: String, type: TensorType, at location: SourceLocation, in function: inout Function,
        definedAt: inout [Value: SourceLocation]
    ) throws(Diagnostic) -> Value {
        if let existing = function.value(named: name) {
            let previous = definedAt[existing].map { " at \($0)" } ?? ""
            throw Diagnostic("value %\(name) is already defined\(previous)", at: location)
        }
        let value = function.makeValue(named: name, type: type)
        definedAt[value] = location
        return value
    }

    private mutating func parseOperation(in function: inout Function, definedAt: inout [Value: SourceLocation]) throws(Diagnostic) -> Operation {
        let (resultName, resultLocation) = try valueName()
        try expect("=")
        let opLocation = current.location
        let opName = try identifier("an op name")
        guard let opcode = Opcode(rawValue: opName) else {
            throw Diagnostic("unknown op '\(opName)'", at: opLocation)
        }
        var operands: [Value] = []
        if case .valueName = current.kind {
            repeat {
                let (name, location) = try valueName()
                operands.append(try use(name, at: location, in: function))
            } while consume(",")
        }
        var constant: ConstantData?
        if opcode == .constant {
            constant = try parseConstantData()
        }
        var attributes = Attributes()
        if consume("{") {
            if !consume("}") {
                repeat {
                    let keyLocation = current.location
                    let key = try identifier("an attribute name")
                    guard attributes[key] == nil else { throw Diagnostic("attribute '\(key)' is given twice", at: keyLocation) }
                    try expect("=")
                    attributes[key] = try parseAttribute()
                } while consume(",")
                try expect("}")
            }
        }
        try expect(":")
        let type = try parseType()
        let result = try define(resultName, type: type, at: resultLocation, in: &function, definedAt: &definedAt)
        return Operation(result: result, opcode: opcode, operands: operands, attributes: attributes, constant: constant, location: opLocation)
    }

    private mutating func parseAttribute() throws(Diagnostic) -> Attribute {
        switch current.kind {
        case .integer:
            return .int(try integer("an integer"))
        case .float(let text):
            advance()
            return .float(try floatValue(text, at: tokens[position - 1].location))
        case .identifier(let name):
            advance()
            switch name {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "nan", "inf": return .float(name == "nan" ? .nan : .infinity)
            default: return .symbol(name)
            }
        case .punctuation("["):
            advance()
            var values: [Int] = []
            if !consume("]") {
                repeat { values.append(try integer("an integer")) } while consume(",")
                try expect("]")
            }
            return .ints(values)
        default:
            throw error("an attribute value (number, true/false, name or [integers])")
        }
    }

    private func floatValue(_ text: String, at location: SourceLocation) throws(Diagnostic) -> Double {
        guard let value = Double(text) else { throw Diagnostic("invalid number '\(text)'", at: location) }
        return value
    }

    private mutating func parseScalar() throws(Diagnostic) -> ConstantData.Scalar {
        let location = current.location
        switch current.kind {
        case .integer(let text):
            advance()
            guard let value = Int64(text) else { throw Diagnostic("integer \(text) is out of range", at: location) }
            return .int(value)
        case .float(let text):
            advance()
            return .float(try floatValue(text, at: location))
        case .identifier("nan"), .identifier("inf"):
            let isNaN = current.kind == .identifier("nan")
            advance()
            return .float(isNaN ? .nan : .infinity)
        case .identifier("true"), .identifier("false"):
            let isTrue = current.kind == .identifier("true")
            advance()
            return .int(isTrue ? 1 : 0)
        default:
            throw error("a number")
        }
    }

    private mutating func parseConstantData() throws(Diagnostic) -> ConstantData {
        let location = current.location
        let kind = try identifier("'splat' or 'dense'")
        try expect("<")
        switch kind {
        case "splat":
            let value = try parseScalar()
            try expect(">")
            return .splat(value)
        case "dense":
            if current.kind == .identifier("elided") {
                throw Diagnostic("this constant's data was elided when it was printed; print the module with --full-constants to round-trip it", at: current.location)
            }
            try expect("[")
            var values: [ConstantData.Scalar] = []
            if !consume("]") {
                repeat { values.append(try parseScalar()) } while consume(",")
                try expect("]")
            }
            try expect(">")
            return .dense(values)
        default:
            throw Diagnostic("expected 'splat' or 'dense' constant data, found '\(kind)'", at: location)
        }
    }

    private mutating func parseType() throws(Diagnostic) -> TensorType {
        let location = current.location
        let name = try identifier("a type like f32[4,8]")
        guard let dtype = DType(rawValue: name) else {
            throw Diagnostic("unknown element type '\(name)'; expected f32, f64, i32, i64 or i1", at: location)
        }
        try expect("[")
        var shape: [Int] = []
        if !consume("]") {
            repeat {
                let dimLocation = current.location
                let dim = try integer("a dimension")
                guard dim >= 0 else { throw Diagnostic("dimension \(dim) is negative", at: dimLocation) }
                // Also with a zero dimension elsewhere: shape rules add and sum dimensions.
                guard dim <= TensorType.maxElementCount else {
                    throw Diagnostic("dimension \(dim) is larger than 2^40", at: dimLocation)
                }
                shape.append(dim)
            } while consume(",")
            try expect("]")
        }
        let type = TensorType(dtype, shape)
        guard type.checkedElementCount != nil else {
            throw Diagnostic("type \(type) has more than 2^40 elements", at: location)
        }
        return type
    }
}
