import GranuleIR

/// A small writer of LLVM IR text for one function: fresh SSA names, basic blocks, counted loops.
final class IRText {
    private var instructions: [String] = []
    /// Stack slots, placed at the top of the entry block where mem2reg promotes them.
    private var allocas: [String] = []
    private var counter = 0
    /// The label of the block being written (phi nodes need their predecessors).
    private(set) var block = "entry"

    init() {}

    func fresh(_ hint: String = "t") -> String {
        counter += 1
        return "%\(hint)\(counter)"
    }

    func label(_ hint: String) -> String {
        counter += 1
        return "\(hint)\(counter)"
    }

    /// The function body: `entry:`, the stack slots, then everything emitted.
    var lines: [String] { [instructions.first ?? "entry:"] + allocas + instructions.dropFirst() }

    /// Appends an instruction.
    func emit(_ line: String) { instructions.append("  " + line) }

    /// Appends an instruction producing a value and returns its name.
    @discardableResult
    func value(_ instruction: String, _ hint: String = "t") -> String {
        let name = fresh(hint)
        emit("\(name) = \(instruction)")
        return name
    }

    func startBlock(_ label: String) {
        instructions.append("\(label):")
        block = label
    }

    /// `for (i = start; i < end; i++) body(i)`; `body` may open blocks of its own.
    func loop(from start: String, to end: String, _ hint: String = "i", body: (String) -> Void) {
        let header = label("\(hint).head")
        let bodyLabel = label("\(hint).body")
        let exit = label("\(hint).exit")
        let entry = block
        let index = fresh(hint)
        let next = fresh("\(hint).next")
        emit("br label %\(header)")
        startBlock(header)
        // The back-edge predecessor is patched in after the body is written.
        let phiLine = instructions.count
        instructions.append("")
        let condition = value("icmp slt i64 \(index), \(end)", "c")
        emit("br i1 \(condition), label %\(bodyLabel), label %\(exit)")
        startBlock(bodyLabel)
        body(index)
        emit("\(next) = add nsw i64 \(index), 1")
        let latch = block
        emit("br label %\(header)")
        instructions[phiLine] = "  \(index) = phi i64 [ \(start), %\(entry) ], [ \(next), %\(latch) ]"
        startBlock(exit)
    }

    /// `if (condition) then()`.
    func when(_ condition: String, then: () -> Void) {
        let thenLabel = label("then")
        let after = label("endif")
        emit("br i1 \(condition), label %\(thenLabel), label %\(after)")
        startBlock(thenLabel)
        then()
        emit("br label %\(after)")
        startBlock(after)
    }

    /// A mutable scalar in a stack slot (mem2reg turns it into registers).
    func variable(_ type: String, initial: String) -> String {
        let slot = fresh("var")
        allocas.append("  \(slot) = alloca \(type)")
        emit("store \(type) \(initial), ptr \(slot)")
        return slot
    }

    /// The per-axis indices of the row-major linear `index` into `shape` (the first axis is not
    /// reduced modulo its size: `index` is in range).
    func unflatten(_ index: String, shape: [Int]) -> [String] {
        var indices: [String] = []
        var remainder = index
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            if axis == 0 {
                indices.insert(remainder, at: 0)
            } else {
                indices.insert(value("urem i64 \(remainder), \(shape[axis])", "ix"), at: 0)
                remainder = value("udiv i64 \(remainder), \(shape[axis])", "q")
            }
        }
        return indices
    }

    /// A stack array of `count` elements of `type` (uninitialised), e.g. per-lane accumulators.
    func array(_ type: String, count: Int) -> String {
        let slot = fresh("arr")
        allocas.append("  \(slot) = alloca [\(count) x \(type)], align 64")
        return slot
    }

    /// Starts the function body (`entry:`).
    func begin() {
        instructions = ["entry:"]
        allocas = []
        block = "entry"
    }

    var body: String { lines.joined(separator: "\n") }
}

/// LLVM types and literals of IR element types.
extension DType {
    /// The in-memory LLVM type (i1 is stored as a byte).
    var llvm: String {
        switch self {
        case .f32: "float"
        case .f64: "double"
        case .i32: "i32"
        case .i64: "i64"
        case .i1: "i8"
        }
    }

    var bitWidth: Int { byteSize * 8 }
}

/// A float literal LLVM accepts exactly: doubles in hexadecimal, floats as the double of their value.
func llvmFloat(_ value: Double, _ dtype: DType) -> String {
    let exact = dtype == .f32 ? Double(Float(value)) : value
    return "0x" + String(exact.bitPattern, radix: 16, uppercase: true).leftPadded(to: 16)
}

func llvmConstant(_ scalar: ConstantData.Scalar, _ dtype: DType) -> String {
    switch dtype {
    case .f32, .f64: llvmFloat(scalar.asDouble, dtype)
    default: String(scalar.asInt64 ?? 0)
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
