import Foundation
import GranuleCodegen
import GranuleIR
import GranuleInterpreter
import Testing

/// `granule compile --profile` and `MODEL bench --profile`: every kernel and GEMM is timed and
/// listed; a program compiled without profiling refuses --profile.
private let model = """
    func @f(%x: f32[64,32] input, %w: f32[32,48] frozen, %v: f32[48,8] frozen) -> (y: f32[64,8]) {
      %h = matmul %x, %w : f32[64,48]
      %a = tanh %h : f32[64,48]
      %y = matmul %a, %v : f32[64,8]
      return %y
    }
    """

@Test("bench --profile lists the time of every kernel and GEMM of a profiled program")
func benchProfile() throws {
    let module = try Parser.parse(model, file: "profile.tir")
    let profiled = try CompiledExecutable(module, name: "profiled", profile: true)
    defer { profiled.remove() }
    let weights = profiled.file("weights.safetensors"), batch = profiled.file("batch.safetensors")
    try Safetensors.write(
        [("w", Tensor(TensorType(.f32, [32, 48]), floats: (0..<1536).map { Double($0 % 7) * 0.01 })),
         ("v", Tensor(TensorType(.f32, [48, 8]), floats: (0..<384).map { Double($0 % 5) * 0.02 }))], to: weights)
    try Safetensors.write([("x", Tensor(TensorType(.f32, [64, 32]), floats: (0..<2048).map { Double($0 % 11) * 0.1 }))], to: batch)
    let arguments = ["bench", "--weights", weights, "--batch", batch, "--function", "f", "--steps", "3", "--warmup", "1", "--json", "--profile"]
    let (status, errors) = try profiled.invoke(arguments)
    #expect(status == 0, "\(errors)")
    #expect(errors.contains("profile of @f: 3 timed calls, 3 steps ran"), "\(errors)")
    #expect(errors.contains("f: gemm %h = 1 × [64×32]·[32×48]"), "\(errors)")
    #expect(errors.contains("f: gemm %y = 1 × [64×48]·[48×8]"), "\(errors)")
    #expect(errors.contains("f: kernel f0_k1: elementwise %a"), "\(errors)")

    // --profile-rows N lists the N longest steps and sums up the rest.
    let (shortStatus, shortTable) = try profiled.invoke(arguments + ["--profile-rows", "1"])
    #expect(shortStatus == 0, "\(shortTable)")
    #expect(shortTable.split(separator: "\n").filter { $0.contains("  f: ") }.count == 1, "\(shortTable)")
    #expect(shortTable.contains("(2 more steps)"), "\(shortTable)")

    let plain = try CompiledExecutable(module, name: "plain")
    defer { plain.remove() }
    let refused = try plain.invoke(arguments)
    #expect(refused.status == 1)
    #expect(refused.errors.contains("error: --profile: this program was compiled without profiling (granule compile --profile)"), "\(refused.errors)")
}
