import GranuleIR
import Testing

@testable import GranuleInterpreter

/// reshape, transpose, slice, pad, concat, broadcast_to, gather, scatter_add.
@Suite struct DataMovementTests {
    @Test func reshapeKeepsRowMajorOrder() throws {
        let y = try runOne(unaryIR("reshape %x", "f32[2,3]", result: "f32[3,2]"), ["x": f32([2, 3], [1, 2, 3, 4, 5, 6])])
        expectTensor(y, TensorType(.f32, [3, 2]), [1, 2, 3, 4, 5, 6])
    }

    @Test func transposeMatrix() throws {
        let y = try runOne(unaryIR("transpose %x {perm = [1, 0]}", "f32[2,3]", result: "f32[3,2]"), ["x": f32([2, 3], [1, 2, 3, 4, 5, 6])])
        expectTensor(y, TensorType(.f32, [3, 2]), [1, 4, 2, 5, 3, 6])
    }

    @Test func transposeRank3() throws {
        // result[i0, i1, i2] = x[j] with j[perm[k]] = i_k; perm = [2, 0, 1] gives x[i1, i2, i0].
        let x = i64([2, 3, 4], (0..<24).map(Int64.init))
        let y = try runOne(unaryIR("transpose %x {perm = [2, 0, 1]}", "i64[2,3,4]", result: "i64[4,2,3]"), ["x": x])
        var expected: [Int64] = []
        for i0 in 0..<4 { for i1 in 0..<2 { for i2 in 0..<3 { expected.append(Int64(i1 * 12 + i2 * 4 + i0)) } } }
        expectInts(y, TensorType(.i64, [4, 2, 3]), expected)
    }

    @Test func sliceBox() throws {
        let x = f32([3, 4], (0..<12).map(Double.init))
        let y = try runOne(unaryIR("slice %x {start = [1, 1], limit = [3, 3]}", "f32[3,4]", result: "f32[2,2]"), ["x": x])
        expectTensor(y, TensorType(.f32, [2, 2]), [5, 6, 9, 10])
        let empty = try runOne(unaryIR("slice %x {start = [1, 2], limit = [1, 4]}", "f32[3,4]", result: "f32[0,2]"), ["x": x])
        expectTensor(empty, TensorType(.f32, [0, 2]), [])
    }

    @Test func padWithZeros() throws {
        let y = try runOne(unaryIR("pad %x {low = [1, 0], high = [0, 1]}", "f32[2,2]", result: "f32[3,3]"), ["x": f32([2, 2], [1, 2, 3, 4])])
        expectTensor(y, TensorType(.f32, [3, 3]), [0, 0, 0, 1, 2, 0, 3, 4, 0])
        let ints = try runOne(unaryIR("pad %x {low = [2], high = [1]}", "i64[1]", result: "i64[4]"), ["x": i64([1], [7])])
        expectInts(ints, TensorType(.i64, [4]), [0, 0, 7, 0])
    }

    @Test func concatAlongEachAxis() throws {
        let ir = """
        func @f(%a: f32[2,1] input, %b: f32[2,2] input, %c: f32[2,1] input) -> (y: f32[2,4]) {
          %y = concat %a, %b, %c {axis = 1} : f32[2,4]
          return %y
        }
        """
        let y = try runOne(ir, ["a": f32([2, 1], [1, 2]), "b": f32([2, 2], [3, 4, 5, 6]), "c": f32([2, 1], [7, 8])])
        expectTensor(y, TensorType(.f32, [2, 4]), [1, 3, 4, 7, 2, 5, 6, 8])
        let ir0 = """
        func @f(%a: i64[1,2] input, %b: i64[2,2] input) -> (y: i64[3,2]) {
          %y = concat %a, %b {axis = 0} : i64[3,2]
          return %y
        }
        """
        expectInts(try runOne(ir0, ["a": i64([1, 2], [1, 2]), "b": i64([2, 2], [3, 4, 5, 6])]), TensorType(.i64, [3, 2]), [1, 2, 3, 4, 5, 6])
    }

    @Test func broadcastTo() throws {
        expectTensor(try runOne(unaryIR("broadcast_to %x", "f32[3]", result: "f32[2,3]"), ["x": f32([3], [1, 2, 3])]),
                     TensorType(.f32, [2, 3]), [1, 2, 3, 1, 2, 3])
        expectTensor(try runOne(unaryIR("broadcast_to %x", "f32[2,1]", result: "f32[2,3]"), ["x": f32([2, 1], [1, 2])]),
                     TensorType(.f32, [2, 3]), [1, 1, 1, 2, 2, 2])
        expectTensor(try runOne(unaryIR("broadcast_to %x", "f32[]", result: "f32[2,2]"), ["x": .scalar(5)]),
                     TensorType(.f32, [2, 2]), [5, 5, 5, 5])
    }

    let gatherIR = """
        func @f(%t: f32[3,2] input, %i: i64[2,2] input) -> (y: f32[2,2,2]) {
          %y = gather %t, %i : f32[2,2,2]
          return %y
        }
        """

    @Test func gatherRows() throws {
        let y = try runOne(gatherIR, ["t": f32([3, 2], [1, 2, 3, 4, 5, 6]), "i": i64([2, 2], [2, 0, 1, 2])])
        expectTensor(y, TensorType(.f32, [2, 2, 2]), [5, 6, 1, 2, 3, 4, 5, 6])
    }

    @Test func gatherWithI32IndicesFromAVector() throws {
        let ir = """
        func @f(%t: i64[4] input, %i: i32[3] input) -> (y: i64[3]) {
          %y = gather %t, %i : i64[3]
          return %y
        }
        """
        expectInts(try runOne(ir, ["t": i64([4], [10, 11, 12, 13]), "i": i32([3], [3, 3, 0])]), TensorType(.i64, [3]), [13, 13, 10])
    }

    @Test func gatherOutOfRangeIsARunTimeErrorAtTheOp() throws {
        for bad: Int64 in [3, -1] {
            let error = diagnostic { _ = try runOne(gatherIR, ["t": f32([3, 2], [1, 2, 3, 4, 5, 6]), "i": i64([2, 2], [0, 1, bad, 2])]) }
            #expect(error?.message == "'gather' index \(bad) at indices[1, 0] is out of range [0, 3)")
            #expect(error?.location?.line == 2)
            #expect(error?.location?.column == 8)
            #expect(error?.description.hasPrefix("<input>:2:8: error: 'gather' index") == true)
        }
    }

    let scatterIR = """
        func @f(%t: f32[3,2] input, %i: i64[3] input, %u: f32[3,2] input) -> (y: f32[3,2]) {
          %y = scatter_add %t, %i, %u : f32[3,2]
          return %y
        }
        """

    @Test func scatterAddAccumulatesRepeatedIndices() throws {
        let y = try runOne(scatterIR, ["t": f32([3, 2], [0, 0, 100, 100, 0, 0]), "i": i64([3], [0, 2, 0]), "u": f32([3, 2], [1, 2, 3, 4, 5, 6])])
        expectTensor(y, TensorType(.f32, [3, 2]), [6, 8, 100, 100, 3, 4])
    }

    @Test func scatterAddOutOfRangeIsARunTimeError() throws {
        let error = diagnostic {
            _ = try runOne(scatterIR, ["t": .zeros(TensorType(.f32, [3, 2])), "i": i64([3], [0, 7, 0]), "u": .zeros(TensorType(.f32, [3, 2]))])
        }
        #expect(error?.message.contains("'scatter_add' index 7 at indices[1] is out of range [0, 3)") == true)
        #expect(error?.location?.line == 2)
    }
}
