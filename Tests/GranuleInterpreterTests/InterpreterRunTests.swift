import GranuleIR
import Testing

@testable import GranuleInterpreter

/// The driver: input checking, result order, precision modes, liveness, error locations.
@Suite struct InterpreterRunTests {
    let mlp = """
    func @mlp(%x: f32[2,3] input, %fc1.w: f32[3,2] trainable, %fc1.b: f32[2] trainable) -> (h: f32[2,2], sum: f32[], x: f32[2,3]) {
      %xw = matmul %x, %fc1.w : f32[2,2]
      %pre = add %xw, %fc1.b : f32[2,2]
      %h = relu %pre : f32[2,2]
      %sum = reduce_sum %h {axes = [0, 1]} : f32[]
      return %h, %sum, %x
    }
    """
    var inputs: [String: Tensor] {
        ["x": f32([2, 3], [1, 2, 3, -1, -2, -3]), "fc1.w": f32([3, 2], [1, 0, 0, 1, 1, 1]), "fc1.b": f32([2], [0.5, -10])]
    }

    @Test func resultsComeInSignatureOrderWithTheirNames() throws {
        let results = try Interpreter().run(parseFunction(mlp), inputs: inputs)
        #expect(results.map(\.name) == ["h", "sum", "x"])
        // xw = [[4, 5], [-4, -5]]; + b = [[4.5, -5], [-3.5, -15]]; relu = [[4.5, 0], [0, 0]].
        expectTensor(results[0].tensor, TensorType(.f32, [2, 2]), [4.5, 0, 0, 0])
        expectTensor(results[1].tensor, TensorType(.f32, []), [4.5])
        #expect(results[2].tensor == inputs["x"])
    }

    @Test func extraInputsAreIgnored() throws {
        var extended = inputs
        extended["unused"] = .scalar(1)
        #expect(try Interpreter().run(parseFunction(mlp), inputs: extended).count == 3)
    }

    @Test func missingInputNamesTheParameter() throws {
        var partial = inputs
        partial["fc1.b"] = nil
        let error = diagnostic { _ = try Interpreter().run(parseFunction(mlp), inputs: partial) }
        #expect(error?.message == "missing input for parameter %fc1.b of type f32[2]")
        #expect(error?.location?.line == 1)
        #expect(error?.location?.column == 59)
    }

    @Test func wrongTypeNamesExpectedAndGiven() throws {
        var wrong = inputs
        wrong["fc1.w"] = f32([2, 3], [1, 2, 3, 4, 5, 6])
        let error = diagnostic { _ = try Interpreter().run(parseFunction(mlp), inputs: wrong) }
        #expect(error?.message == "input for parameter %fc1.w must be f32[3,2], got f32[2,3]")
        wrong["fc1.w"] = f64([3, 2], [1, 2, 3, 4, 5, 6])
        let dtypeError = diagnostic { _ = try Interpreter().run(parseFunction(mlp), inputs: wrong) }
        #expect(dtypeError?.message == "input for parameter %fc1.w must be f32[3,2], got f64[3,2]")
    }

    @Test func malformedInputTensorIsAnError() throws {
        var bad = inputs
        var tensor = f32([2], [1, 2])
        tensor.storage = .float([1, 2, 3])
        bad["fc1.b"] = tensor
        let error = diagnostic { _ = try Interpreter().run(parseFunction(mlp), inputs: bad) }
        #expect(error?.message == "input for parameter %fc1.b has 3 elements but f32[2] has 2")
        let ir = unaryIR("cast %x", "i1[2]", result: "f32[2]")
        var flags = i1([2], [0, 1])
        flags.storage = .int([0, 2])
        let flagError = diagnostic { _ = try runOne(ir, ["x": flags]) }
        #expect(flagError?.message == "input for parameter %x i1 element 1 is 2, not 0 or 1")
    }

    @Test func unverifiedFunctionsAreRejected() throws {
        let module = try Parser.parse("func @f(%a: f32[2] input) -> (y: f32[3]) {\n  %y = neg %a : f32[3]\n  return %y\n}")
        let error = diagnostic { _ = try Interpreter().run(module.functions[0], inputs: ["a": f32([2], [1, 2])]) }
        #expect(error?.location?.line == 2)
    }

    @Test func float32ModeRoundsEveryResultFloat64ModeDoesNot() throws {
        let ir = """
        func @f(%a: f32[] input, %b: f32[] input) -> (y: f32[], z: f64[]) {
          %y = add %a, %b : f32[]
          %a64 = cast %a : f64[]
          %b64 = cast %b : f64[]
          %z = add %a64, %b64 : f64[]
          return %y, %z
        }
        """
        let inputs = ["a": f32([], [1]), "b": f32([], [1e-8])]
        let rounded = try run(ir, inputs, precision: .float32)
        #expect(rounded[0].floats == [1])
        #expect(rounded[1].floats == [1 + single(1e-8)])  // f64 is never rounded; the f32 input was
        let exact = try run(ir, inputs, precision: .float64)
        #expect(exact[0].floats == [1 + 1e-8])
        #expect(exact[1].floats == [1 + 1e-8])
    }

    @Test func float32ModeRoundsInputs() throws {
        let y = try runOne(unaryIR("neg %x", "f32[1]"), ["x": f32([1], [0.1])])
        #expect(y.floats == [-single(0.1)])
        let exact = try runOne(unaryIR("neg %x", "f32[1]"), ["x": f32([1], [0.1])], precision: .float64)
        #expect(exact.floats == [-0.1])
    }

    @Test func valuesAreFreedAfterTheirLastUse() throws {
        let function = try parseFunction(mlp)
        let lastUse = Interpreter.lastUses(function)
        func last(_ name: String) -> Int? { function.value(named: name).map { lastUse[$0.id] } }
        #expect(last("xw") == 1)
        #expect(last("fc1.w") == 0)
        #expect(last("pre") == 2)
        #expect(last("h") == Int.max)  // returned
        #expect(last("x") == Int.max)  // returned
    }

    @Test func unusedValuesStillRunTheirChecks() throws {
        let ir = """
        func @f(%t: f32[2] input, %i: i64[1] input) -> (y: f32[2]) {
          %unused = gather %t, %i : f32[1]
          %y = neg %t : f32[2]
          return %y
        }
        """
        let error = diagnostic { _ = try runOne(ir, ["t": f32([2], [1, 2]), "i": i64([1], [5])]) }
        #expect(error?.location?.line == 2)
    }

    @Test func modelSizedProgramRunsQuickly() throws {
        // A two-layer MLP with a cross-entropy loss at d_model 32, batch 64: a smoke test that the
        // interpreter is not absurdly slow in a debug build.
        let (batch, width, classes) = (64, 32, 10)
        let ir = """
        func @f(%x: f32[\(batch),\(width)] input, %y: i64[\(batch)] input, %w1: f32[\(width),\(4 * width)] trainable,
                %w2: f32[\(4 * width),\(classes)] trainable) -> (loss: f32[]) {
          %h = matmul %x, %w1 : f32[\(batch),\(4 * width)]
          %a = gelu %h {approx = tanh} : f32[\(batch),\(4 * width)]
          %z = matmul %a, %w2 : f32[\(batch),\(classes)]
          %loss = cross_entropy %z, %y {reduction = mean} : f32[]
          return %loss
        }
        """
        func values(_ count: Int, _ seed: Int) -> [Double] { (0..<count).map { Double(($0 * seed) % 17) / 17 - 0.5 } }
        let inputs: [String: Tensor] = [
            "x": f32([batch, width], values(batch * width, 5)),
            "y": i64([batch], (0..<batch).map { Int64($0 % classes) }),
            "w1": f32([width, 4 * width], values(width * 4 * width, 7)),
            "w2": f32([4 * width, classes], values(4 * width * classes, 3)),
        ]
        let loss = try runOne(ir, inputs)
        #expect(loss.floats[0].isFinite)
        #expect(loss.floats[0] > 0)
    }
}
