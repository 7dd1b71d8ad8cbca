/// Float32 transcendental functions as inline LLVM IR polynomials: calls to libm's `expf` keep
/// loops scalar, these let the loop vectorizer use the full SIMD width.
///
/// Accuracy (float32): log within 3e-7 relative for normal numbers (exponent split and the
/// atanh series, 2·atanh((m−1)/(m+1)) to s⁹); exp within 0.9 ulp on [-87.3, 88] (Cody–Waite reduction, the degree-7
/// Taylor polynomial: degree 6 left errors up to 2.7 ulp; it saturates at e^88 instead of overflowing); tanh and sigmoid through exp (absolute error below 1e-7); erf by Abramowitz &
/// Stegun 7.1.26 (absolute error below 5e-7 in float arithmetic). Doubles keep libm.
enum VectorMath {
    static let definitions = """
    define internal float @gr.expf(float %x) alwaysinline {
      %lo = call float @llvm.maxnum.f32(float %x, float 0xC055D589E0000000)
      %c = call float @llvm.minnum.f32(float %lo, float 88.0)
      %t = fmul float %c, 0x3FF7154760000000
      %n = call float @llvm.rint.f32(float %t)
      %r1 = call float @llvm.fma.f32(float %n, float 0xBFE62E4000000000, float %c)
      %r = call float @llvm.fma.f32(float %n, float 0xBEB7F7D1C0000000, float %r1)
      %p7 = call float @llvm.fma.f32(float %r, float 0x3F2A01A020000000, float 0x3F56C16C20000000)
      %p6 = call float @llvm.fma.f32(float %r, float %p7, float 0x3F81111120000000)
      %p5 = call float @llvm.fma.f32(float %r, float %p6, float 0x3FA5555560000000)
      %p4 = call float @llvm.fma.f32(float %r, float %p5, float 0x3FC5555560000000)
      %p3 = call float @llvm.fma.f32(float %r, float %p4, float 0x3FE0000000000000)
      %p2 = call float @llvm.fma.f32(float %r, float %p3, float 1.0)
      %p1 = call float @llvm.fma.f32(float %r, float %p2, float 1.0)
      %ni = fptosi float %n to i32
      %e = add i32 %ni, 127
      %bits = shl i32 %e, 23
      %scale = bitcast i32 %bits to float
      %y = fmul float %p1, %scale
      %isnan = fcmp uno float %x, 0.0
      %out = select i1 %isnan, float %x, float %y
      ret float %out
    }

    define internal float @gr.tanhf(float %x) alwaysinline {
      %a = call float @llvm.fabs.f32(float %x)
      %m = fmul float %a, -2.0
      %e = call float @gr.expf(float %m)
      %num = fsub float 1.0, %e
      %den = fadd float 1.0, %e
      %t = fdiv float %num, %den
      %y = call float @llvm.copysign.f32(float %t, float %x)
      ret float %y
    }

    define internal float @gr.sigmoidf(float %x) alwaysinline {
      %n = fneg float %x
      %e = call float @gr.expf(float %n)
      %d = fadd float 1.0, %e
      %y = fdiv float 1.0, %d
      ret float %y
    }

    define internal float @gr.logf(float %x) alwaysinline {
      %bits = bitcast float %x to i32
      %shifted = lshr i32 %bits, 23
      %e0 = and i32 %shifted, 255
      %mant = and i32 %bits, 8388607
      %mone = or i32 %mant, 1065353216
      %m0 = bitcast i32 %mone to float
      %big = fcmp ogt float %m0, 0x3FF6A09E60000000
      %half = fmul float %m0, 0.5
      %m = select i1 %big, float %half, float %m0
      %e1 = add i32 %e0, 1
      %e2 = select i1 %big, i32 %e1, i32 %e0
      %e = sub i32 %e2, 127
      %ef = sitofp i32 %e to float
      %num = fsub float %m, 1.0
      %den = fadd float %m, 1.0
      %s = fdiv float %num, %den
      %s2 = fmul float %s, %s
      %q4 = call float @llvm.fma.f32(float %s2, float 0x3FBC71C720000000, float 0x3FC24924A0000000)
      %q3 = call float @llvm.fma.f32(float %s2, float %q4, float 0x3FC99999A0000000)
      %q2 = call float @llvm.fma.f32(float %s2, float %q3, float 0x3FD5555560000000)
      %q1 = call float @llvm.fma.f32(float %s2, float %q2, float 1.0)
      %t = fmul float %s, %q1
      %lm = fmul float %t, 2.0
      %r = call float @llvm.fma.f32(float %ef, float 0x3FE62E4300000000, float %lm)
      %isinf = fcmp oeq float %x, 0x7FF0000000000000
      %r1 = select i1 %isinf, float %x, float %r
      %iszero = fcmp oeq float %x, 0.0
      %r2 = select i1 %iszero, float 0xFFF0000000000000, float %r1
      %bad = fcmp ult float %x, 0.0
      %r3 = select i1 %bad, float 0x7FF8000000000000, float %r2
      ret float %r3
    }

    define internal float @gr.erff(float %x) alwaysinline {
      %a = call float @llvm.fabs.f32(float %x)
      %pa = fmul float %a, 0x3FD4F740A0000000
      %den = fadd float 1.0, %pa
      %t = fdiv float 1.0, %den
      %q5 = call float @llvm.fma.f32(float %t, float 0x3FF0FB8440000000, float 0xBFF7401C60000000)
      %q4 = call float @llvm.fma.f32(float %t, float %q5, float 0x3FF6BE1C60000000)
      %q3 = call float @llvm.fma.f32(float %t, float %q4, float 0xBFD23531C0000000)
      %q2 = call float @llvm.fma.f32(float %t, float %q3, float 0x3FD04F20C0000000)
      %poly = fmul float %t, %q2
      %sq = fmul float %a, %a
      %nsq = fneg float %sq
      %g = call float @gr.expf(float %nsq)
      %pg = fmul float %poly, %g
      %r = fsub float 1.0, %pg
      %y = call float @llvm.copysign.f32(float %r, float %x)
      ret float %y
    }
    """

    /// `gr_philox_word` inline (bit-identical to the runtime's and to Philox.swift): word
    /// `index % 4` of Philox4x32-10 at counter (block lo, block hi, offset lo, offset hi) with
    /// block = index / 4 and key (seed lo, seed hi). Ten unrolled rounds of 32×32→64 multiplies,
    /// which vectorize, instead of a call per element.
    static var philox: String {
        var lines = [
            "define internal i32 @gr.philox_word(i64 %seed, i64 %offset, i64 %index) alwaysinline {",
            "  %block = lshr i64 %index, 2",
            "  %c0.0 = trunc i64 %block to i32",
            "  %bh = lshr i64 %block, 32",
            "  %c1.0 = trunc i64 %bh to i32",
            "  %c2.0 = trunc i64 %offset to i32",
            "  %oh = lshr i64 %offset, 32",
            "  %c3.0 = trunc i64 %oh to i32",
            "  %k0.0 = trunc i64 %seed to i32",
            "  %sh = lshr i64 %seed, 32",
            "  %k1.0 = trunc i64 %sh to i32",
        ]
        for round in 0..<10 {
            let (p, n) = (round, round + 1)
            var k0 = "%k0.\(p)", k1 = "%k1.\(p)"
            if round > 0 {
                lines.append("  %k0.\(n)b = add i32 %k0.\(p), -1640531527")  // + 0x9E3779B9
                lines.append("  %k1.\(n)b = add i32 %k1.\(p), -1150833019")  // + 0xBB67AE85
                k0 = "%k0.\(n)b"
                k1 = "%k1.\(n)b"
            }
            lines += [
                "  %a\(n) = zext i32 %c0.\(p) to i64",
                "  %p0.\(n) = mul i64 %a\(n), 3528531795",  // 0xD2511F53
                "  %b\(n) = zext i32 %c2.\(p) to i64",
                "  %p1.\(n) = mul i64 %b\(n), 3449720151",  // 0xCD9E8D57
                "  %h1.\(n) = lshr i64 %p1.\(n), 32",
                "  %h1t.\(n) = trunc i64 %h1.\(n) to i32",
                "  %x0.\(n) = xor i32 %h1t.\(n), %c1.\(p)",
                "  %c0.\(n) = xor i32 %x0.\(n), \(k0)",
                "  %c1.\(n) = trunc i64 %p1.\(n) to i32",
                "  %h0.\(n) = lshr i64 %p0.\(n), 32",
                "  %h0t.\(n) = trunc i64 %h0.\(n) to i32",
                "  %x2.\(n) = xor i32 %h0t.\(n), %c3.\(p)",
                "  %c2.\(n) = xor i32 %x2.\(n), \(k1)",
                "  %c3.\(n) = trunc i64 %p0.\(n) to i32",
            ]
            if round > 0 { lines.append("  %k0.\(n) = add i32 \(k0), 0\n  %k1.\(n) = add i32 \(k1), 0") } else {
                lines.append("  %k0.\(n) = add i32 %k0.\(p), 0\n  %k1.\(n) = add i32 %k1.\(p), 0")
            }
        }
        lines += [
            "  %lane = and i64 %index, 3",
            "  %is1 = icmp eq i64 %lane, 1",
            "  %is2 = icmp eq i64 %lane, 2",
            "  %is3 = icmp eq i64 %lane, 3",
            "  %w1 = select i1 %is1, i32 %c1.10, i32 %c0.10",
            "  %w2 = select i1 %is2, i32 %c2.10, i32 %w1",
            "  %w3 = select i1 %is3, i32 %c3.10, i32 %w2",
            "  ret i32 %w3",
            "}",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    static let declarations = [
        "declare float @llvm.maxnum.f32(float, float)",
        "declare float @llvm.minnum.f32(float, float)",
        "declare float @llvm.rint.f32(float)",
        "declare float @llvm.fma.f32(float, float, float)",
        "declare float @llvm.fabs.f32(float)",
        "declare float @llvm.copysign.f32(float, float)",
    ]
}
