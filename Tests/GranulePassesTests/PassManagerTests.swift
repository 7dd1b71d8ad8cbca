import GranuleIR
import GranulePasses
import Testing

/// An error in the input module is the input's: reported at its location, before any pass runs,
/// and not blamed on the first pass.
@Test("the pass manager verifies its input before the first pass")
func passManagerVerifiesItsInput() throws {
    let text = """
        func @f(%x: f32[2,3] input, %b: f32[4] trainable) -> (y: f32[2,3]) {
          %y = add %x, %b : f32[2,3]
          return %y
        }
        """
    let module = try Parser.parse(text, file: "bad.tir")
    do {
        _ = try PassManager([Autodiff(), DeadCodeElimination()]).run(module)
        Issue.record("an unverifiable module went through the passes")
    } catch {
        #expect(!error.message.contains("after pass"), "blamed on a pass: \(error.message)")
        #expect(error.message.contains("do not broadcast"), "\(error.message)")
        #expect(error.location?.line == 2, "at \(String(describing: error.location))")
    }
}
