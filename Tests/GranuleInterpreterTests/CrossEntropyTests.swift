import GranuleIR
import Testing

@testable import GranuleInterpreter

/// cross_entropy and cross_entropy_grad with every reduction, ignored positions and bad labels.
@Suite struct CrossEntropyTests {
    // Row [1, 2, 3] with label 2 and row [1, 1, 1] with label 0.
    let loss0 = 0.4076059644443806
    let loss1 = 1.0986122886681098
    let softmax123 = [0.09003057317038046, 0.24472847105479764, 0.6652409557748218]
    let logits = f64([2, 3], [1, 2, 3, 1, 1, 1])

    func loss(_ reduction: String, _ labels: [Int64], result: String, extra: String = "", logits: Tensor? = nil, labelShape: [Int] = [2]) throws -> Tensor {
        let input = logits ?? self.logits
        let labelType = "i64[\(labelShape.map(String.init).joined(separator: ","))]"
        let ir = """
        func @f(%z: \(input.type) input, %y: \(labelType) input) -> (l: \(result)) {
          %l = cross_entropy %z, %y {reduction = \(reduction)\(extra)} : \(result)
          return %l
        }
        """
        return try runOne(ir, ["z": input, "y": i64(labelShape, labels)])
    }

    func grad(_ reduction: String, _ labels: [Int64], dloss: Tensor, extra: String = "", logits: Tensor? = nil, labelShape: [Int] = [2]) throws -> Tensor {
        let input = logits ?? self.logits
        let labelType = "i64[\(labelShape.map(String.init).joined(separator: ","))]"
        let ir = """
        func @f(%z: \(input.type) input, %y: \(labelType) input, %d: \(dloss.type) input) -> (g: \(input.type)) {
          %g = cross_entropy_grad %z, %y, %d {reduction = \(reduction)\(extra)} : \(input.type)
          return %g
        }
        """
        return try runOne(ir, ["z": input, "y": i64(labelShape, labels), "d": dloss])
    }

    @Test func reductions() throws {
        expectTensor(try loss("none", [2, 0], result: "f64[2]"), TensorType(.f64, [2]), [loss0, loss1])
        expectTensor(try loss("sum", [2, 0], result: "f64[]"), TensorType(.f64, []), [loss0 + loss1])
        expectTensor(try loss("mean", [2, 0], result: "f64[]"), TensorType(.f64, []), [(loss0 + loss1) / 2])
    }

    @Test func ignoredPositionsContributeNothing() throws {
        expectTensor(try loss("none", [2, -100], result: "f64[2]"), TensorType(.f64, [2]), [loss0, 0])
        expectTensor(try loss("mean", [2, -100], result: "f64[]"), TensorType(.f64, []), [loss0])
        expectTensor(try loss("mean", [-100, -100], result: "f64[]"), TensorType(.f64, []), [0])
        expectTensor(try loss("sum", [-1, 0], result: "f64[]", extra: ", ignore_index = -1"), TensorType(.f64, []), [loss1])
    }

    @Test func sampleMeanAveragesPerSample() throws {
        // Sample 0: rows [1,2,3] (label 2) and [1,1,1] (ignored); sample 1: [1,1,1] (label 0), [1,2,3] (label 2).
        let z = f64([2, 2, 3], [1, 2, 3, 1, 1, 1, 1, 1, 1, 1, 2, 3])
        let y = try loss("sample_mean", [2, -100, 0, 2], result: "f64[2]", logits: z, labelShape: [2, 2])
        expectTensor(y, TensorType(.f64, [2]), [loss0, (loss1 + loss0) / 2])
        let allIgnored = try loss("sample_mean", [-100, -100, 0, 2], result: "f64[2]", logits: z, labelShape: [2, 2])
        expectTensor(allIgnored, TensorType(.f64, [2]), [0, (loss1 + loss0) / 2])
    }

    @Test func badLabelsAreRunTimeErrorsAtTheOp() throws {
        for bad: Int64 in [3, -1] {
            let error = diagnostic { _ = try loss("mean", [0, bad], result: "f64[]") }
            #expect(error?.message == "'cross_entropy' label \(bad) at labels[1] is out of range [0, 3) and is not the ignore_index -100")
            #expect(error?.location?.line == 2)
            #expect(error?.location?.column == 8)
        }
        let gradError = diagnostic { _ = try grad("sum", [5, 0], dloss: f64([], [1])) }
        #expect(gradError?.message.hasPrefix("'cross_entropy_grad' label 5") == true)
    }

    @Test func gradientPerReduction() throws {
        let none = try grad("none", [2, 0], dloss: f64([2], [1, 2]))
        expectTensor(none, TensorType(.f64, [2, 3]), [softmax123[0], softmax123[1], softmax123[2] - 1, -4.0 / 3, 2.0 / 3, 2.0 / 3])
        let sum = try grad("sum", [2, 0], dloss: f64([], [3]))
        expectTensor(sum, TensorType(.f64, [2, 3]), [3 * softmax123[0], 3 * softmax123[1], 3 * (softmax123[2] - 1), -2, 1, 1])
        let mean = try grad("mean", [2, -100], dloss: f64([], [2]))
        expectTensor(mean, TensorType(.f64, [2, 3]), [2 * softmax123[0], 2 * softmax123[1], 2 * (softmax123[2] - 1), 0, 0, 0])
        let z = f64([2, 1, 3], [1, 2, 3, 1, 1, 1])
        let sample = try grad("sample_mean", [2, 0], dloss: f64([2], [1, 3]), logits: z, labelShape: [2, 1])
        expectTensor(sample, TensorType(.f64, [2, 1, 3]), [softmax123[0], softmax123[1], softmax123[2] - 1, -2, 1, 1])
    }

    @Test func gradientMatchesFiniteDifferences() throws {
        // In float64 mode the analytic gradient of every reduction matches central differences.
        let z = f32([2, 2, 3], [0.3, -1.2, 2.0, 0.7, 0.1, -0.4, 1.5, 1.4, -2.2, 0.0, 0.9, 0.2])
        let labels = i64([2, 2], [2, 0, -100, 1])
        for (reduction, lossType) in [("sum", "f32[]"), ("mean", "f32[]"), ("sample_mean", "f32[2]")] {
            let ir = """
            func @f(%z: f32[2,2,3] input, %y: i64[2,2] input, %d: \(lossType) input) -> (l: \(lossType), g: f32[2,2,3]) {
              %l = cross_entropy %z, %y {reduction = \(reduction)} : \(lossType)
              %g = cross_entropy_grad %z, %y, %d {reduction = \(reduction)} : f32[2,2,3]
              return %l, %g
            }
            """
            let function = try parseFunction(ir)
            let interpreter = Interpreter(precision: .float64)
            let dloss = lossType == "f32[]" ? f32([], [1]) : f32([2], [1, 1])
            let analytic = try interpreter.run(function, inputs: ["z": z, "y": labels, "d": dloss])[1].tensor.floats
            let h = 1e-6
            for index in 0..<z.elementCount {
                var plus = z.floats
                var minus = z.floats
                plus[index] += h
                minus[index] -= h
                let lossPlus = try interpreter.run(function, inputs: ["z": f32([2, 2, 3], plus), "y": labels, "d": dloss])[0].tensor.floats.reduce(0, +)
                let lossMinus = try interpreter.run(function, inputs: ["z": f32([2, 2, 3], minus), "y": labels, "d": dloss])[0].tensor.floats.reduce(0, +)
                let numeric = (lossPlus - lossMinus) / (2 * h)
                #expect(Swift.abs(numeric - analytic[index]) < 1e-7, "\(reduction) element \(index): \(numeric) vs \(analytic[index])")
            }
        }
    }
}
