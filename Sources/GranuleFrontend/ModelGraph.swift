import GranuleIR

/// The function being lowered plus the table of model parameters it declares.
///
/// Parameters are declared where the lowering first needs them, under their checkpoint names;
/// whether each one trains is decided by the PET method's rule when the graph is finished.
struct ModelGraph {
    var builder: GraphBuilder
    private(set) var parameters: [ModelParameter] = []
    private var declared: [String: Value] = [:]
    /// Dropout sites get consecutive offsets so that no two share random numbers.
    private var nextDropoutOffset = 0
    let dropoutRate: Double
    let seed: Value?

    init(name: String, dropoutRate: Double) {
        var function = Function(name: name)
        seed = dropoutRate > 0 ? function.addParameter(named: "dropout_seed", type: .scalar(.i64), role: .input) : nil
        builder = GraphBuilder(function)
        self.dropoutRate = dropoutRate
    }

    var function: Function { builder.function }
    func type(_ value: Value) -> TensorType { builder.type(value) }
    func shape(_ value: Value) -> [Int] { builder.type(value).shape }

    mutating func input(_ name: String, _ type: TensorType) -> Value {
        builder.function.addParameter(named: name, type: type, role: .input)
    }

    /// The parameter `name`, declared on first use (a second declaration must agree on the shape).
    mutating func parameter(
        _ name: String, _ shape: [Int], origin: ModelParameter.Origin, initializer: ModelParameter.Initializer,
        isBuffer: Bool = false
    ) throws(Diagnostic) -> Value {
        if let value = declared[name] {
            guard type(value).shape == shape else {
                throw Diagnostic("internal: parameter \(name) declared as \(type(value).shape) and \(shape)")
            }
            return value
        }
        let value = builder.function.addParameter(named: name, type: TensorType(.f32, shape), role: .frozen)
        declared[name] = value
        parameters.append(ModelParameter(
            name: name, shape: shape, origin: origin, trainable: false, isBuffer: isBuffer, initializer: initializer))
        return value
    }

    /// Marks parameters trainable according to `rule` and gives the IR parameters their roles.
    mutating func assignRoles(_ rule: (ModelParameter) -> Bool) {
        for index in parameters.indices where !parameters[index].isBuffer {
            parameters[index].trainable = rule(parameters[index])
        }
        for index in builder.function.parameters.indices {
            let name = builder.function.name(of: builder.function.parameters[index].value)
            if let parameter = parameters.first(where: { $0.name == name }) {
                builder.function.parameters[index].role = parameter.trainable ? .trainable : .frozen
            }
        }
    }

    // MARK: layers

    /// `x·Wᵀ + b` for a weight stored `[out, in]` as in `nn.Linear`.
    mutating func linear(_ x: Value, weight: Value, bias: Value?) throws(Diagnostic) -> Value {
        let product = try builder.matmul(x, weight, transposeB: true)
        guard let bias else { return product }
        return try builder.add(product, bias)
    }

    /// Declares `prefix.weight` [out, in] (and `prefix.bias` [out]) and applies them.
    mutating func linear(
        _ x: Value, _ prefix: String, out: Int, bias: Bool = true, origin: ModelParameter.Origin,
        weightInit: ModelParameter.Initializer, biasInit: ModelParameter.Initializer = .zeros
    ) throws(Diagnostic) -> Value {
        let inFeatures = shape(x).last!
        let weight = try parameter("\(prefix).weight", [out, inFeatures], origin: origin, initializer: weightInit)
        let biasValue = bias ? try parameter("\(prefix).bias", [out], origin: origin, initializer: biasInit) : nil
        return try linear(x, weight: weight, bias: biasValue)
    }

    mutating func layerNorm(_ x: Value, _ prefix: String, eps: Double, origin: ModelParameter.Origin) throws(Diagnostic) -> Value {
        let d = shape(x).last!
        let gamma = try parameter("\(prefix).weight", [d], origin: origin, initializer: .ones)
        let beta = try parameter("\(prefix).bias", [d], origin: origin, initializer: .zeros)
        return try builder.emit(.layerNorm, [x, gamma, beta], ["eps": .float(eps)])
    }

    mutating func rmsNorm(_ x: Value, _ prefix: String, eps: Double, origin: ModelParameter.Origin) throws(Diagnostic) -> Value {
        let d = shape(x).last!
        let gamma = try parameter("\(prefix).weight", [d], origin: origin, initializer: .ones)
        return try builder.emit(.rmsNorm, [x, gamma], ["eps": .float(eps)])
    }

    mutating func dropout(_ x: Value, rate: Double? = nil) throws(Diagnostic) -> Value {
        let p = rate ?? dropoutRate
        guard p > 0, let seed else { return x }
        // The offset is its own half of the RNG counter: distinct sites never share numbers.
        let offset = nextDropoutOffset
        nextDropoutOffset += 1
        return try builder.emit(.dropout, [x, seed], ["rate": .float(p), "offset": .int(offset)])
    }

    mutating func gelu(_ x: Value, approx: String) throws(Diagnostic) -> Value {
        try builder.emit(.gelu, [x], ["approx": .symbol(approx)])
    }

    mutating func constant(_ values: [Int64], _ type: TensorType) throws(Diagnostic) -> Value {
        try builder.function.append(.constant, [], constant: .dense(values.map { .int($0) }), type: type)
    }

    mutating func splat(_ value: Double, _ type: TensorType) throws(Diagnostic) -> Value {
        let scalar: ConstantData.Scalar = type.dtype.isFloat ? .float(value) : .int(Int64(value))
        return try builder.function.append(.constant, [], constant: .splat(scalar), type: type)
    }
}
