import GranuleFrontend
import Testing

/// The spec's section 5.2 table, exact counts (trainable, total) and the paper's rounded percent.
@Test("granule params reproduces the paper's Params (%) column exactly", arguments: [
    ("bart-base-vlpet-small", 4_291_020, 143_845_068, "2.98"),
    ("bart-base-vlpet-middlex", 4_281_804, 143_835_852, "2.98"),
    ("bart-base-vlpet-middley", 4_281_792, 143_835_840, "2.98"),
    ("bart-base-vlpet-large", 6_052_416, 145_606_464, "4.16"),
    ("t5-base-vlpet-small", 10_518_168, 233_457_816, "4.51"),
    ("t5-base-vlpet-middlex", 10_499_736, 233_439_384, "4.50"),
    ("t5-base-vlpet-middley", 10_499_712, 233_439_360, "4.50"),
    ("t5-base-vlpet-large", 17_582_208, 240_521_856, "7.31"),
    ("bart-base-vl-adapter", 6_081_600, 145_606_464, "4.18"),
    ("bart-base-bitfit", 1_708_800, 141_156_864, "1.21"),
    ("bart-base-lora", 8_786_688, 148_234_752, "5.93"),
    ("bart-base-prompt-tuning", 2_843_936, 142_417_952, "2.00"),
    ("bart-base-compacter", 3_870_240, 143_395_104, "2.70"),
    // Table 9: VL-PET designs on Compacter.
    ("bart-base-compacter-g-small", 2_964_204, 142_518_252, "2.08"),
    ("bart-base-compacter-g-middlex", 2_954_988, 142_509_036, "2.07"),
    ("bart-base-compacter-g-middley", 2_954_976, 142_509_024, "2.07"),
    ("bart-base-compacter-g-large", 4_725_600, 144_279_648, "3.28"),
])
func paperParameterCounts(_ name: String, _ trainable: Int, _ total: Int, _ percent: String) throws {
    let spec = try ModelSpec.load(path: examplePath("examples/specs/\(name).json"))
    let count = ParameterCount(try Lowering.parameters(spec))
    #expect(count.trainable == trainable)
    #expect(count.total == total)
    #expect(count.report().hasSuffix("trainable \(trainable) of \(total) (\(percent)%)"))
}

@Test("full fine-tuning trains every parameter but the final_logits_bias buffer")
func fullFineTuning() throws {
    let spec = try ModelSpec.load(path: examplePath("examples/specs/bart-base-full.json"))
    let parameters = try Lowering.parameters(spec)
    #expect(parameters.filter { !$0.trainable }.map(\.name) == ["final_logits_bias"])
    #expect(ParameterCount(parameters).total == 139_574_016 + 1_582_848)
}
