// swift-tools-version: 6.0
import PackageDescription

/// LLVM 19 ships no pkg-config file; its headers live in a versioned prefix.
let llvmInclude: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-I/usr/lib/llvm-19/include"])]

let package = Package(
    name: "Granule",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "granule", targets: ["granule"]),
        .library(name: "GranuleIR", targets: ["GranuleIR"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries (module maps over Debian's headers).
        .systemLibrary(name: "CLLVM", path: "Sources/CLLVM"),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),

        // Small shared pieces with no IR knowledge (a strict JSON reader and writer).
        .target(name: "GranuleSupport"),
        // The tensor IR: types, ops and their shape rules, text form, verifier.
        .target(name: "GranuleIR"),
        // Reference semantics of every op, tensors and safetensors I/O.
        .target(name: "GranuleInterpreter", dependencies: ["GranuleIR", "GranuleSupport"]),
        // Passes over the IR, one per file.
        .target(name: "GranulePasses", dependencies: ["GranuleIR"]),
        // BART / T5 + visual embedding + PET methods → IR; model specs; parameter tables.
        .target(name: "GranuleFrontend", dependencies: ["GranuleIR", "GranuleSupport", "GranuleInterpreter"]),
        // Code generation: schedule (fusion, views), memory plan, LLVM IR kernels, object files and the JIT.
        .target(
            name: "GranuleCodegen", dependencies: ["GranuleIR", "GranuleSupport", "CLLVM"],
            swiftSettings: llvmInclude, linkerSettings: [.linkedLibrary("LLVM-19")]),
        // The C runtime of compiled programs (also linked into this process for the JIT).
        .target(
            name: "GranuleRuntime", path: "Runtime", exclude: ["main", "tests", "README.md"],
            sources: ["src"], publicHeadersPath: "include",
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("z"), .linkedLibrary("pthread"), .linkedLibrary("m"), .linkedLibrary("openblas")]),
        // Runs compiled programs in this process through ORC's LLJIT (tests, `granule run --backend llvm`).
        .target(
            name: "GranuleJIT",
            dependencies: ["GranuleCodegen", "GranuleInterpreter", "GranuleIR", "GranuleRuntime", "CLLVM", "CBLAS"],
            swiftSettings: llvmInclude, linkerSettings: [.linkedLibrary("LLVM-19")]),
        // Gradient checking against finite differences and deterministic random inputs.
        .target(name: "GranuleCheck", dependencies: ["GranuleIR", "GranuleInterpreter", "GranulePasses", "GranuleSupport"]),
        // The command-line tool.
        .executableTarget(
            name: "granule",
            dependencies: [
                "GranuleIR", "GranuleInterpreter", "GranulePasses", "GranuleCheck", "GranuleFrontend", "GranuleCodegen", "GranuleJIT",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: llvmInclude),

        .testTarget(name: "GranuleIRTests", dependencies: ["GranuleIR"]),
        .testTarget(name: "GranuleInterpreterTests", dependencies: ["GranuleIR", "GranuleInterpreter", "GranuleSupport"]),
        .testTarget(
            name: "GranulePassesTests",
            dependencies: ["GranuleIR", "GranuleInterpreter", "GranulePasses", "GranuleCheck"],
            exclude: ["Goldens"]),
        .testTarget(
            name: "GranuleFrontendTests",
            dependencies: ["GranuleIR", "GranuleInterpreter", "GranulePasses", "GranuleFrontend", "GranuleCheck", "GranuleSupport"],
            exclude: ["Goldens"]),
        .testTarget(
            name: "GranuleCodegenTests",
            dependencies: ["GranuleIR", "GranuleInterpreter", "GranulePasses", "GranuleCodegen", "GranuleJIT", "GranuleCheck", "GranuleFrontend"],
            exclude: ["Goldens"],
            swiftSettings: llvmInclude),
        .testTarget(
            name: "SystemLibraryTests",
            dependencies: ["CLLVM", "CBLAS", "CZlib"],
            swiftSettings: llvmInclude,
            linkerSettings: [.linkedLibrary("LLVM-19")]),
    ],
    swiftLanguageModes: [.v6]
)
