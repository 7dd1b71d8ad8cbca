import Foundation
import GranuleIR

/// The IR text files the tests read: every `.tir` under `IR/tests` and `examples`, found at test
/// time relative to this package's root, plus the embedded samples below.
enum Corpus {
    struct Entry: Sendable {
        /// The path diagnostics show (relative to the package root for files).
        var name: String
        var text: String
    }

    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // GranuleIRTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    /// Every `.tir` file under `IR/tests` and `examples`, sorted by path.
    static func files() -> [Entry] {
        var entries: [Entry] = []
        for directory in ["IR/tests", "examples"] {
            let root = packageRoot.appendingPathComponent(directory)
            guard let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { continue }
            for case let url as URL in enumerator where url.pathExtension == "tir" {
                guard let text = try? String(contentsOf: url, encoding: .utf8) else { continue }
                let relative = String(url.standardizedFileURL.path.dropFirst(packageRoot.standardizedFileURL.path.count + 1))
                entries.append(Entry(name: relative, text: text))
            }
        }
        return entries.sorted { $0.name < $1.name }
    }

    /// The files and the embedded samples.
    static func all() -> [Entry] { files() + samples }

    /// Valid modules that together use every op of `Opcode`, every role and `writes`.
    static let samples: [Entry] = [
        Entry(name: "sample-elementwise.tir", text: """
            // Every elementwise op.
            func @elementwise(%x: f32[2,3] input, %y: f32[3] input, %w: f32[2,3] trainable) -> (out: f32[2,3], mask: i1[2,3]) {
              %0 = neg %x : f32[2,3]
              %1 = abs %0 : f32[2,3]
              %2 = exp %1 : f32[2,3]
              %3 = log %2 : f32[2,3]
              %4 = tanh %3 : f32[2,3]
              %5 = sigmoid %4 : f32[2,3]
              %6 = relu %5 : f32[2,3]
              %7 = sqrt %6 : f32[2,3]
              %8 = rsqrt %7 : f32[2,3]
              %9 = erf %8 : f32[2,3]
              %10 = pow %9 {exponent = 2.0} : f32[2,3]
              %11 = gelu %10 {approx = tanh} : f32[2,3]
              %12 = add %11, %y : f32[2,3]
              %13 = sub %12, %w : f32[2,3]
              %14 = mul %13, %y : f32[2,3]
              %15 = div %14, %w : f32[2,3]
              %16 = max %15, %x : f32[2,3]
              %17 = min %16, %x : f32[2,3]
              %18 = compare %17, %y {predicate = lt} : i1[2,3]
              %19 = select %18, %17, %x : f32[2,3]
              return %19, %18
            }

            """),
        Entry(name: "sample-shapes.tir", text: """
            // Reductions, matmul, data movement, sources and conversions.
            func @shapes(%a: f32[2,3,4] input, %b: f32[4,5] frozen, %ids: i32[6] input, %t: f32[10,4] trainable) -> (
                sum: f32[2,3], mean: f32[1,3,1], max: f32[2,4], mm: f32[2,3,5], mt: f32[5,5], flat: f32[6,4],
                perm: f32[4,2,3], sliced: f32[2,1,4], padded: f32[3,3,5], joined: f32[2,6,4], wide: f32[3,4,5],
                rows: f32[6,4], scattered: f32[10,4], steps: i64[5], half: f32[], ints: f32[3], bits: i1[2,2]
            ) {
              %s = reduce_sum %a {axes = [2]} : f32[2,3]
              %m = reduce_mean %a {axes = [0, 2], keepdims = true} : f32[1,3,1]
              %mx = reduce_max %a {axes = [1]} : f32[2,4]
              %mm = matmul %a, %b : f32[2,3,5]
              %mt = matmul %b, %b {transpose_a = true} : f32[5,5]
              %r = reshape %a : f32[6,4]
              %tr = transpose %a {perm = [2, 0, 1]} : f32[4,2,3]
              %sl = slice %a {start = [0, 1, 0], limit = [2, 2, 4]} : f32[2,1,4]
              %p = pad %a {low = [1, 0, 0], high = [0, 0, 1]} : f32[3,3,5]
              %c = concat %a, %a {axis = 1} : f32[2,6,4]
              %bc = broadcast_to %b : f32[3,4,5]
              %g = gather %t, %ids : f32[6,4]
              %sa = scatter_add %t, %ids, %g : f32[10,4]
              %io = iota {axis = 0} : i64[5]
              %k = constant splat<0.5> : f32[]
              %d = constant dense<[1, -2, 3]> : i32[3]
              %cs = cast %d : f32[3]
              %bits = constant dense<[true, false, 0, 1]> : i1[2,2]
              return %s, %m, %mx, %mm, %mt, %r, %tr, %sl, %p, %c, %bc, %g, %sa, %io, %k, %cs, %bits
            }

            """),
        Entry(name: "sample-nn.tir", text: """
            // Vision, randomness and the composite ops.
            func @nn(
                %img: f32[1,4,4,2] input, %dy: f32[1,3,3,2] input, %seed: i64[] input, %logits: f32[3,5] input,
                %labels: i64[3] input, %gamma: f32[5] trainable, %beta: f32[5] trainable
            ) -> (pooled: f32[1,3,3,2], dimg: f32[1,4,4,2], loss: f32[], dlogits: f32[3,5], per_sample: f32[3]) {
              %mp = max_pool2d %img {window = [2, 2]} : f32[1,3,3,2]
              %mpg = max_pool2d_grad %img, %dy {window = [2, 2]} : f32[1,4,4,2]
              %dr = dropout %logits, %seed {rate = 0.1, offset = 0} : f32[3,5]
              %sm = softmax %dr {axis = 1} : f32[3,5]
              %ls = log_softmax %sm {axis = 1} : f32[3,5]
              %ln = layer_norm %ls, %gamma, %beta {eps = 1e-05} : f32[3,5]
              %rn = rms_norm %ln, %gamma {eps = 1e-06} : f32[3,5]
              %ce = cross_entropy %rn, %labels {reduction = mean, ignore_index = -100} : f32[]
              %one = constant splat<1.0> : f32[]
              %ceg = cross_entropy_grad %rn, %labels, %one {reduction = mean} : f32[3,5]
              %cs = cross_entropy %rn, %labels {reduction = sample_mean} : f32[3]
              return %mp, %mpg, %ce, %ceg, %cs
            }

            """),
        Entry(name: "sample-state.tir", text: """
            // An optimizer step: results that write trainable and state parameters; two functions.
            func @step(%w: f32[4] trainable, %m: f32[4] state, %step: i64[] state, %lr: f64[] input, %scale: f32[] frozen) -> (new_w: f32[4] writes %w, new_m: f32[4] writes %m, new_step: i64[] writes %step) {
              %one = constant splat<1> : i64[]
              %s1 = add %step, %one : i64[]
              %lr32 = cast %lr : f32[]
              %m1 = mul %m, %lr32 : f32[4]
              %m2 = mul %m1, %scale : f32[4]
              %w1 = sub %w, %m2 : f32[4]
              return %w1, %m2, %s1
            }

            func @constants() -> (big: f32[20], special: f64[4]) {
              %big = constant dense<[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.5]> : f32[20]
              %special = constant dense<[inf, -inf, nan, -0.0]> : f64[4]
              return %big, %special
            }

            """),
    ]
}
