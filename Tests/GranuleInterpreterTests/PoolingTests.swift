import GranuleIR
import Testing

@testable import GranuleInterpreter

/// max_pool2d and max_pool2d_grad.
@Suite struct PoolingTests {
    let grid = f32([1, 3, 3, 1], [1, 2, 3, 4, 5, 6, 7, 8, 9])

    @Test func poolsOverlappingWindows() throws {
        let y = try runOne(unaryIR("max_pool2d %x {window = [2, 2]}", "f32[1,3,3,1]", result: "f32[1,2,2,1]"), ["x": grid])
        expectTensor(y, TensorType(.f32, [1, 2, 2, 1]), [5, 6, 8, 9])
    }

    @Test func poolsChannelsAndBatchesIndependently() throws {
        // Two batches of a 2x2 grid with two channels; channel 1 is the negation of channel 0.
        let x = f32([2, 2, 2, 2], [1, -1, 4, -4, 3, -3, 2, -2, 0, 0, -5, 5, 7, -7, 1, -1])
        let y = try runOne(unaryIR("max_pool2d %x {window = [2, 2]}", "f32[2,2,2,2]", result: "f32[2,1,1,2]"), ["x": x])
        expectTensor(y, TensorType(.f32, [2, 1, 1, 2]), [4, -1, 7, 5])
        let rows = try runOne(unaryIR("max_pool2d %x {window = [1, 2]}", "f32[2,2,2,2]", result: "f32[2,2,1,2]"), ["x": x])
        expectTensor(rows, TensorType(.f32, [2, 2, 1, 2]), [4, -1, 3, -2, 0, 5, 7, -1])
    }

    func grad(_ x: Tensor, _ dy: Tensor, _ xType: String, _ yType: String, window: String) throws -> Tensor {
        let ir = """
        func @f(%x: \(xType) input, %dy: \(yType) input) -> (dx: \(xType)) {
          %dx = max_pool2d_grad %x, %dy {window = \(window)} : \(xType)
          return %dx
        }
        """
        return try runOne(ir, ["x": x, "dy": dy])
    }

    @Test func gradientGoesToTheMaximum() throws {
        let dx = try grad(grid, f32([1, 2, 2, 1], [1, 2, 3, 4]), "f32[1,3,3,1]", "f32[1,2,2,1]", window: "[2, 2]")
        expectTensor(dx, TensorType(.f32, [1, 3, 3, 1]), [0, 0, 0, 0, 1, 2, 0, 3, 4])
    }

    @Test func tiesGoToTheFirstPositionInWindowOrder() throws {
        let dx = try grad(f32([1, 2, 2, 1], [1, 1, 1, 1]), f32([1, 1, 1, 1], [5]), "f32[1,2,2,1]", "f32[1,1,1,1]", window: "[2, 2]")
        expectTensor(dx, TensorType(.f32, [1, 2, 2, 1]), [5, 0, 0, 0])
        // A second maximum later in the window does not take the gradient either.
        let later = try grad(f32([1, 2, 2, 1], [0, 3, 3, 1]), f32([1, 1, 1, 1], [2]), "f32[1,2,2,1]", "f32[1,1,1,1]", window: "[2, 2]")
        expectTensor(later, TensorType(.f32, [1, 2, 2, 1]), [0, 2, 0, 0])
    }

    @Test func overlappingWindowsAccumulate() throws {
        let dx = try grad(f32([1, 1, 3, 1], [1, 3, 2]), f32([1, 1, 2, 1], [1, 2]), "f32[1,1,3,1]", "f32[1,1,2,1]", window: "[1, 2]")
        expectTensor(dx, TensorType(.f32, [1, 1, 3, 1]), [0, 3, 0])
    }
}
