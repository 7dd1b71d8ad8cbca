import CBLAS
import CLLVM
import Foundation
import GranuleCodegen
import GranuleIR
import GranuleInterpreter
import GranuleRuntime

/// A compiled program loaded into ORC's LLJIT in this process: how tests and
/// `granule run --backend llvm` run generated code without linking an executable.
///
/// The runtime functions the generated code calls come from the `GranuleRuntime` C target linked
/// into this process and are defined as absolute symbols; libm and OpenBLAS resolve through the
/// process's dynamic symbols.
public final class JITProgram {
    private let jit: LLVMOrcLLJITRef
    private let runtime: OpaquePointer
    /// The manifest loaded without entries: it lets the runtime name the op and source location
    /// of a run-time error ("model.tir:12:3: gather: index 70 is out of range [0, 64)").
    private let manifest: OpaquePointer
    private let entries: [UnsafeRawPointer]
    public let program: CompiledProgram
    public let module: Module

    public init(module: Module, toolchain: LLVMToolchain = LLVMToolchain(), threads: Int32 = 0) throws(Diagnostic) {
        self.module = module
        program = try ProgramEmitter().emit(module)
        let optimized = try toolchain.optimizedText(program.llvmText)
        LLVMInitializeNativeTarget()
        LLVMInitializeNativeAsmPrinter()

        var jitRef: LLVMOrcLLJITRef?
        if let error = LLVMOrcCreateLLJIT(&jitRef, nil) { throw Diagnostic("cannot create the JIT: \(JITProgram.consume(error))") }
        jit = jitRef!
        let dylib = LLVMOrcLLJITGetMainJITDylib(jit)

        var generator: LLVMOrcDefinitionGeneratorRef?
        if let error = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&generator, LLVMOrcLLJITGetGlobalPrefix(jit), nil, nil) {
            throw Diagnostic("cannot search this process's symbols: \(JITProgram.consume(error))")
        }
        LLVMOrcJITDylibAddGenerator(dylib, generator)
        try JITProgram.defineRuntimeSymbols(jit, dylib)

        let context = LLVMOrcCreateNewThreadSafeContext()
        defer { LLVMOrcDisposeThreadSafeContext(context) }
        let llvmContext = LLVMOrcThreadSafeContextGetContext(context)
        let parsed = try JITProgram.parse(optimized, context: llvmContext!)
        let threadSafe = LLVMOrcCreateNewThreadSafeModule(parsed, context)
        if let error = LLVMOrcLLJITAddLLVMIRModule(jit, dylib, threadSafe) {
            throw Diagnostic("cannot add the module to the JIT: \(JITProgram.consume(error))")
        }
        var table: LLVMOrcExecutorAddress = 0
        if let error = LLVMOrcLLJITLookup(jit, &table, "granule_entries") {
            throw Diagnostic("the JIT cannot find granule_entries: \(JITProgram.consume(error))")
        }
        let pointers = UnsafePointer<UnsafeRawPointer>(bitPattern: UInt(table))!
        entries = (0..<module.functions.count).map { pointers[$0] }
        var error = gr_error()
        guard let manifest = gr_program_load(program.manifest, nil, &error) else {
            LLVMOrcDisposeLLJIT(jit)
            throw Diagnostic("internal: the runtime rejects the manifest: \(JITProgram.message(of: error))")
        }
        guard let runtime = gr_runtime_create(threads) else {
            gr_program_free(manifest)
            LLVMOrcDisposeLLJIT(jit)
            throw Diagnostic("cannot create the runtime")
        }
        self.manifest = manifest
        self.runtime = runtime
    }

    deinit {
        gr_runtime_destroy(runtime)
        gr_program_free(manifest)
        LLVMOrcDisposeLLJIT(jit)
    }

    /// Runs function `name` on tensors keyed by parameter name; results in signature order.
    public func run(_ name: String, inputs: [String: Tensor]) throws(Diagnostic) -> [(name: String, tensor: Tensor)] {
        guard let index = module.functions.firstIndex(where: { $0.name == name }) else {
            throw Diagnostic("no function @\(name)")
        }
        let function = module.functions[index]
        var buffers: [UnsafeMutableRawPointer] = []
        defer { buffers.forEach { $0.deallocate() } }
        for parameter in function.parameters {
            let parameterName = function.name(of: parameter.value)
            let type = function.type(of: parameter.value)
            guard let tensor = inputs[parameterName] else { throw Diagnostic("missing input for parameter %\(parameterName)") }
            guard tensor.type == type else { throw Diagnostic("input %\(parameterName) is \(tensor.type), expected \(type)") }
            buffers.append(JITProgram.pack(tensor))
        }
        for result in function.results {
            let type = function.type(of: result.value)
            let bytes = max(type.elementCount * type.dtype.byteSize, 1)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            buffers.append(buffer)
        }
        let arenaBytes = program.functions[index].arenaBytes
        let arena = UnsafeMutableRawPointer.allocate(byteCount: max(arenaBytes, 64), alignment: 64)
        defer { arena.deallocate() }
        typealias Entry = @convention(c) (UnsafePointer<UnsafeMutableRawPointer?>?, UnsafeMutableRawPointer?, OpaquePointer?) -> Int32
        let entry = unsafeBitCast(entries[index], to: Entry.self)
        gr_runtime_attach_program(runtime, manifest)
        gr_runtime_reset_error(runtime)
        let arguments: [UnsafeMutableRawPointer?] = buffers
        let status = arguments.withUnsafeBufferPointer { entry($0.baseAddress, arena, runtime) }
        if status != 0 { throw Diagnostic(String(cString: gr_error_message(runtime))) }
        return function.results.enumerated().map { offset, result in
            (result.name, JITProgram.unpack(buffers[function.parameters.count + offset], function.type(of: result.value)))
        }
    }

    // MARK: tensors ↔ buffers

    static func pack(_ tensor: Tensor) -> UnsafeMutableRawPointer {
        let type = tensor.type
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(type.elementCount * type.dtype.byteSize, 1), alignment: 64)
        switch type.dtype {
        case .f32: for (i, value) in tensor.floats.enumerated() { buffer.storeBytes(of: Float(value), toByteOffset: i * 4, as: Float.self) }
        case .f64: for (i, value) in tensor.floats.enumerated() { buffer.storeBytes(of: value, toByteOffset: i * 8, as: Double.self) }
        case .i32: for (i, value) in tensor.ints.enumerated() { buffer.storeBytes(of: Int32(truncatingIfNeeded: value), toByteOffset: i * 4, as: Int32.self) }
        case .i64: for (i, value) in tensor.ints.enumerated() { buffer.storeBytes(of: value, toByteOffset: i * 8, as: Int64.self) }
        case .i1: for (i, value) in tensor.ints.enumerated() { buffer.storeBytes(of: UInt8(value != 0 ? 1 : 0), toByteOffset: i, as: UInt8.self) }
        }
        return buffer
    }

    static func unpack(_ buffer: UnsafeMutableRawPointer, _ type: TensorType) -> Tensor {
        let count = type.elementCount
        switch type.dtype {
        case .f32: return Tensor(type, floats: (0..<count).map { Double(buffer.load(fromByteOffset: $0 * 4, as: Float.self)) })
        case .f64: return Tensor(type, floats: (0..<count).map { buffer.load(fromByteOffset: $0 * 8, as: Double.self) })
        case .i32: return Tensor(type, ints: (0..<count).map { Int64(buffer.load(fromByteOffset: $0 * 4, as: Int32.self)) })
        case .i64: return Tensor(type, ints: (0..<count).map { buffer.load(fromByteOffset: $0 * 8, as: Int64.self) })
        case .i1: return Tensor(type, ints: (0..<count).map { Int64(buffer.load(fromByteOffset: $0, as: UInt8.self)) })
        }
    }

    // MARK: LLVM plumbing

    private static func defineRuntimeSymbols(_ jit: LLVMOrcLLJITRef, _ dylib: LLVMOrcJITDylibRef?) throws(Diagnostic) {
        let symbols: [(String, UnsafeRawPointer)] = [
            ("gr_parallel_for", unsafeBitCast(gr_parallel_for as @convention(c) (OpaquePointer?, gr_kernel_fn?, Int64, UnsafePointer<UnsafeMutableRawPointer?>?) -> Void, to: UnsafeRawPointer.self)),
            ("gr_raise", unsafeBitCast(gr_raise as @convention(c) (OpaquePointer?, Int32, Int32, Int64, Int64) -> Void, to: UnsafeRawPointer.self)),
            ("gr_failed", unsafeBitCast(gr_failed as @convention(c) (OpaquePointer?) -> Int32, to: UnsafeRawPointer.self)),
            ("gr_release_param", unsafeBitCast(gr_release_param as @convention(c) (OpaquePointer?, Int32) -> Void, to: UnsafeRawPointer.self)),
            ("gr_philox_word", unsafeBitCast(gr_philox_word as @convention(c) (Int64, Int64, Int64) -> UInt32, to: UnsafeRawPointer.self)),
            ("gr_sgemm_nt", unsafeBitCast(gr_sgemm_nt as @convention(c) (Int64, Int64, Int64, UnsafePointer<Float>?, Int64, UnsafePointer<Float>?, Int64, Float, UnsafeMutablePointer<Float>?, Int64) -> Void, to: UnsafeRawPointer.self)),
            ("gr_sgemm_small", unsafeBitCast(gr_sgemm_small as @convention(c) (Int32, Int64, Int64, Int64, UnsafePointer<Float>?, Int64, UnsafePointer<Float>?, Int64, Float, UnsafeMutablePointer<Float>?, Int64) -> Void, to: UnsafeRawPointer.self)),
            ("cblas_sgemm", unsafeBitCast(cblas_sgemm as @convention(c) (CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint, Float, UnsafePointer<Float>?, blasint, UnsafePointer<Float>?, blasint, Float, UnsafeMutablePointer<Float>?, blasint) -> Void, to: UnsafeRawPointer.self)),
            ("openblas_set_num_threads", unsafeBitCast(openblas_set_num_threads as @convention(c) (Int32) -> Void, to: UnsafeRawPointer.self)),
            ("cblas_dgemm", unsafeBitCast(cblas_dgemm as @convention(c) (CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint, Double, UnsafePointer<Double>?, blasint, UnsafePointer<Double>?, blasint, Double, UnsafeMutablePointer<Double>?, blasint) -> Void, to: UnsafeRawPointer.self)),
        ]
        var pairs = symbols.map { name, address in
            LLVMOrcCSymbolMapPair(
                Name: LLVMOrcLLJITMangleAndIntern(jit, name),
                Sym: LLVMJITEvaluatedSymbol(Address: LLVMOrcExecutorAddress(UInt(bitPattern: address)), Flags: LLVMJITSymbolFlags(GenericFlags: UInt8(LLVMJITSymbolGenericFlagsExported.rawValue), TargetFlags: 0)))
        }
        let unit = LLVMOrcAbsoluteSymbols(&pairs, pairs.count)
        if let error = LLVMOrcJITDylibDefine(dylib, unit) {
            throw Diagnostic("cannot define runtime symbols: \(consume(error))")
        }
    }

    private static func parse(_ text: String, context: LLVMContextRef) throws(Diagnostic) -> LLVMModuleRef {
        let buffer = text.withCString { LLVMCreateMemoryBufferWithMemoryRangeCopy($0, strlen($0), "granule") }
        var module: LLVMModuleRef?
        var message: UnsafeMutablePointer<CChar>?
        if LLVMParseIRInContext(context, buffer, &module, &message) != 0 {
            let detail = message.map { String(cString: $0) } ?? ""
            LLVMDisposeMessage(message)
            throw Diagnostic("internal: optimised IR does not parse: \(detail)")
        }
        return module!
    }

    private static func message(of error: gr_error) -> String {
        withUnsafeBytes(of: error.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    private static func consume(_ error: LLVMErrorRef) -> String {
        let message = LLVMGetErrorMessage(error)
        defer { LLVMDisposeErrorMessage(message) }
        return String(cString: message!)
    }
}
