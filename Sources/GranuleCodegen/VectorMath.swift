/// Float32 transcendental functions as inline LLVM IR polynomials: calls to libm's `expf` keep
/// loops scalar, these let the loop vectorizer use the full SIMD width.
///
/// Accuracy (float32): exp within 2 ulp on [-87.3, 88] (Cody–Waite reduction, degree-6
/// polynomial; it saturates at e^88 instead of overflowing); tanh and sigmoid through exp (absolute error below 1e-7); erf by Abramowitz &
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
      %p6 = call float @llvm.fma.f32(float %r, float 0x3F56C16C20000000, float 0x3F81111120000000)
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

    static let declarations = [
        "declare float @llvm.maxnum.f32(float, float)",
        "declare float @llvm.minnum.f32(float, float)",
        "declare float @llvm.rint.f32(float)",
        "declare float @llvm.fma.f32(float, float, float)",
        "declare float @llvm.fabs.f32(float)",
        "declare float @llvm.copysign.f32(float, float)",
    ]
}
