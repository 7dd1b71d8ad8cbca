/// Checks that a module is well formed, reporting the first problem at the offending op:
///
/// 1. function names are unique; every function returns at least one value;
/// 2. parameter and value types are valid; `trainable` and `frozen` parameters are floats;
/// 3. every operand is defined before its use (SSA order) and every value is defined once;
/// 4. every op passes its shape/type rule and its written type equals the rule's result;
/// 5. results have unique names; a result that `writes` a parameter has the parameter's type, and
///    only `state` and `trainable` parameters may be written, each at most once.
///
/// It does not check numerics (NaNs in constants) or that indices fed at run time are in range:
/// those are run-time properties.
public enum Verifier {
    public static func verify(_ module: Module) throws(Diagnostic) {
        var seen: Set<String> = []
        for function in module.functions {
            guard seen.insert(function.name).inserted else {
                throw Diagnostic("function @\(function.name) is defined twice", at: function.location)
            }
            try verify(function)
        }
    }

    public static func verify(_ function: Function) throws(Diagnostic) {
        var defined = [Bool](repeating: false, count: function.valueCount)
        let inTable = { (value: Value) in value.id >= 0 && value.id < function.valueCount }
        for parameter in function.parameters {
            guard inTable(parameter.value) else {
                throw Diagnostic("a parameter of @\(function.name) refers to no value", at: parameter.location ?? function.location)
            }
            let type = function.type(of: parameter.value)
            let name = function.name(of: parameter.value)
            guard !defined[parameter.value.id] else {
                throw Diagnostic("parameter %\(name) is declared twice", at: parameter.location ?? function.location)
            }
            defined[parameter.value.id] = true
            guard type.checkedElementCount != nil, type.shape.allSatisfy({ $0 <= TensorType.maxElementCount }) else {
                throw Diagnostic("parameter %\(name) has type \(type), which has a negative dimension or more than 2^40 elements", at: parameter.location ?? function.location)
            }
            if parameter.role == .trainable || parameter.role == .frozen, !type.dtype.isFloat {
                throw Diagnostic("\(parameter.role.rawValue) parameter %\(name) must be a float tensor, got \(type)", at: parameter.location ?? function.location)
            }
        }
        for op in function.operations {
            let location = op.location ?? function.location
            for operand in op.operands where !inTable(operand) || !defined[operand.id] {
                let name = inTable(operand) ? function.name(of: operand) : "#\(operand.id)"
                throw Diagnostic("%\(name) is used before it is defined", at: location)
            }
            guard inTable(op.result) else { throw Diagnostic("an op's result refers to no value", at: location) }
            guard !defined[op.result.id] else {
                throw Diagnostic("%\(function.name(of: op.result)) is defined more than once", at: location)
            }
            if op.constant != nil, op.opcode != .constant {
                throw Diagnostic("only 'constant' carries data", at: location)
            }
            let declared = function.type(of: op.result)
            let inferred: TensorType
            do {
                inferred = try TypeRules.resultType(
                    of: op.opcode, operands: op.operands.map(function.type(of:)), attributes: op.attributes,
                    constant: op.constant, declared: declared)
            } catch {
                throw Diagnostic(error.message, at: location)
            }
            guard inferred == declared else {
                throw Diagnostic("'\(op.opcode.name)' produces \(inferred) but the result is written as \(declared)", at: location)
            }
            defined[op.result.id] = true
        }
        guard !function.results.isEmpty else {
            throw Diagnostic("function @\(function.name) returns nothing", at: function.location)
        }
        var names: Set<String> = []
        var written: Set<Value> = []
        for result in function.results {
            let location = result.location ?? function.location
            guard names.insert(result.name).inserted else {
                throw Diagnostic("result name '\(result.name)' is used twice", at: location)
            }
            guard inTable(result.value), defined[result.value.id] else {
                throw Diagnostic("result '\(result.name)' is not defined", at: location)
            }
            guard let target = result.writes else { continue }
            guard inTable(target) else { throw Diagnostic("result '\(result.name)' writes no value", at: location) }
            guard let parameter = function.parameter(for: target) else {
                throw Diagnostic("result '\(result.name)' writes %\(function.name(of: target)), which is not a parameter", at: location)
            }
            guard parameter.role == .state || parameter.role == .trainable else {
                throw Diagnostic("result '\(result.name)' writes the \(parameter.role.rawValue) parameter %\(function.name(of: target)); only state and trainable parameters may be written", at: location)
            }
            guard written.insert(target).inserted else {
                throw Diagnostic("%\(function.name(of: target)) is written by more than one result", at: location)
            }
            guard function.type(of: target) == function.type(of: result.value) else {
                throw Diagnostic("result '\(result.name)' is \(function.type(of: result.value)) but writes %\(function.name(of: target)) of type \(function.type(of: target))", at: location)
            }
        }
    }
}
