import GranuleIR
import Testing

@testable import GranuleInterpreter

/// softmax, log_softmax, layer_norm, rms_norm.
@Suite struct NormalizationTests {
    let softmax123 = [0.09003057317038046, 0.24472847105479764, 0.6652409557748218]

    @Test func softmaxAndLogSoftmaxOverTheLastAxis() throws {
        let x = f32([2, 3], [1, 2, 3, 1001, 1002, 1003])  // the max is subtracted: no overflow
        let y = try runOne(unaryIR("softmax %x {axis = 1}", "f32[2,3]"), ["x": x], precision: .float64)
        expectTensor(y, TensorType(.f32, [2, 3]), softmax123 + softmax123)
        let logY = try runOne(unaryIR("log_softmax %x {axis = 1}", "f32[2,3]"), ["x": x], precision: .float64)
        expectTensor(logY, TensorType(.f32, [2, 3]), [-2.4076059644443806, -1.4076059644443804, -0.4076059644443804,
                                                      -2.4076059644443806, -1.4076059644443804, -0.4076059644443804])
    }

    @Test func softmaxOverALeadingAxis() throws {
        let x = f32([2, 2], [1, 0, 3, 0])
        let y = try runOne(unaryIR("softmax %x {axis = 0}", "f32[2,2]"), ["x": x], precision: .float64)
        expectTensor(y, TensorType(.f32, [2, 2]), [0.11920292202211755, 0.5, 0.8807970779778823, 0.5])
    }

    @Test func softmaxRoundsToFloatInFloat32Mode() throws {
        let y = try runOne(unaryIR("softmax %x {axis = 0}", "f32[3]"), ["x": f32([3], [1, 2, 3])])
        #expect(y.floats == softmax123.map(single))
    }

    @Test func layerNorm() throws {
        let ir = """
        func @f(%x: f32[2,4] input, %g: f32[4] input, %b: f32[4] input) -> (y: f32[2,4]) {
          %y = layer_norm %x, %g, %b {eps = 1e-05} : f32[2,4]
          return %y
        }
        """
        let x = f32([2, 4], [1, 2, 3, 4, 5, 5, 5, 5])
        let y = try runOne(ir, ["x": x, "g": f32([4], [1, 1, 2, 2]), "b": f32([4], [0, 0, 0, 1])], precision: .float64)
        // Row 0: mean 2.5, biased variance 1.25. Row 1: constant, so (x − μ) = 0 and y = β.
        expectTensor(y, TensorType(.f32, [2, 4]), [-1.3416354199689269, -0.447211806656309, 0.894423613312618, 3.6832708399378538, 0, 0, 0, 1])
    }

    @Test func rmsNorm() throws {
        let ir = """
        func @f(%x: f64[4] input, %g: f64[4] input) -> (y: f64[4]) {
          %y = rms_norm %x, %g {eps = 1e-05} : f64[4]
          return %y
        }
        """
        let y = try runOne(ir, ["x": f64([4], [1, 2, 3, 4]), "g": f64([4], [1, 1, 2, 2])])
        expectTensor(y, TensorType(.f64, [4]), [0.3651481282381064, 0.7302962564762128, 2.1908887694286383, 2.921185025904851])
    }
}
