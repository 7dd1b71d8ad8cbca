import CLLVM
import Testing

/// LLVM 19's C API through the CLLVM module map: build, verify and compile a tiny function.
@Suite struct LLVMTests {
    /// Takes ownership of an LLVM-allocated message.
    static func string(_ message: UnsafeMutablePointer<CChar>?) -> String {
        guard let message else { return "" }
        defer { LLVMDisposeMessage(message) }
        return String(cString: message)
    }

    /// A module with `i32 add(i32, i32)` (through a stack slot, to use the typed *2 builders) and
    /// `i32 twice(i32)` that calls it with LLVMBuildCall2.
    static func makeModule(in context: LLVMContextRef) -> LLVMModuleRef {
        let module = LLVMModuleCreateWithNameInContext("granule_test", context)!
        let i32 = LLVMInt32TypeInContext(context)!
        let builder = LLVMCreateBuilderInContext(context)!
        defer { LLVMDisposeBuilder(builder) }

        var addParameters: [LLVMTypeRef?] = [i32, i32]
        let addType = LLVMFunctionType(i32, &addParameters, 2, 0)!
        let add = LLVMAddFunction(module, "add", addType)!
        LLVMPositionBuilderAtEnd(builder, LLVMAppendBasicBlockInContext(context, add, "entry"))
        let slot = LLVMBuildAlloca(builder, i32, "slot")
        LLVMBuildStore(builder, LLVMGetParam(add, 0), slot)
        let loaded = LLVMBuildLoad2(builder, i32, slot, "a")
        let sum = LLVMBuildAdd(builder, loaded, LLVMGetParam(add, 1), "sum")
        LLVMBuildRet(builder, sum)

        var twiceParameters: [LLVMTypeRef?] = [i32]
        let twiceType = LLVMFunctionType(i32, &twiceParameters, 1, 0)!
        let twice = LLVMAddFunction(module, "twice", twiceType)!
        LLVMPositionBuilderAtEnd(builder, LLVMAppendBasicBlockInContext(context, twice, "entry"))
        var arguments: [LLVMValueRef?] = [LLVMGetParam(twice, 0), LLVMGetParam(twice, 0)]
        let call = LLVMBuildCall2(builder, addType, add, &arguments, 2, "doubled")
        LLVMBuildRet(builder, call)
        return module
    }

    @Test func buildsAndVerifiesAFunction() {
        let context = LLVMContextCreate()!
        defer { LLVMContextDispose(context) }
        let module = Self.makeModule(in: context)
        defer { LLVMDisposeModule(module) }

        var error: UnsafeMutablePointer<CChar>?
        let failed = LLVMVerifyModule(module, LLVMReturnStatusAction, &error)
        let message = Self.string(error)
        #expect(failed == 0, "\(message)")

        let text = Self.string(LLVMPrintModuleToString(module))
        #expect(text.contains("define i32 @add(i32 %0, i32 %1)"))
        #expect(text.contains("%sum = add i32 %a, %1"))
        #expect(text.contains("call i32 @add(i32 %0, i32 %0)"))
    }

    @Test func verifierRejectsABrokenFunction() {
        let context = LLVMContextCreate()!
        defer { LLVMContextDispose(context) }
        let module = LLVMModuleCreateWithNameInContext("broken", context)!
        defer { LLVMDisposeModule(module) }
        let i32 = LLVMInt32TypeInContext(context)!
        let function = LLVMAddFunction(module, "noreturn", LLVMFunctionType(i32, nil, 0, 0))!
        LLVMAppendBasicBlockInContext(context, function, "entry")  // no terminator

        var error: UnsafeMutablePointer<CChar>?
        #expect(LLVMVerifyModule(module, LLVMReturnStatusAction, &error) != 0)
        #expect(!Self.string(error).isEmpty)
    }

    @Test func nativeTargetCompilesTheModule() throws {
        #expect(LLVMInitializeNativeTarget() == 0)
        #expect(LLVMInitializeNativeAsmPrinter() == 0)

        let triple = Self.string(LLVMGetDefaultTargetTriple())
        #expect(triple.contains("x86_64") || triple.contains("aarch64"), "triple \(triple)")

        var target: LLVMTargetRef?
        var error: UnsafeMutablePointer<CChar>?
        let failed = LLVMGetTargetFromTriple(triple, &target, &error)
        #expect(failed == 0, "\(Self.string(error))")
        let machine = try #require(
            LLVMCreateTargetMachine(target, triple, "generic", "", LLVMCodeGenLevelDefault, LLVMRelocPIC, LLVMCodeModelDefault))
        defer { LLVMDisposeTargetMachine(machine) }

        let context = LLVMContextCreate()!
        defer { LLVMContextDispose(context) }
        let module = Self.makeModule(in: context)
        defer { LLVMDisposeModule(module) }
        LLVMSetTarget(module, triple)

        var buffer: LLVMMemoryBufferRef?
        #expect(LLVMTargetMachineEmitToMemoryBuffer(machine, module, LLVMAssemblyFile, &error, &buffer) == 0, "\(Self.string(error))")
        let output = try #require(buffer)
        defer { LLVMDisposeMemoryBuffer(output) }
        let bytes = UnsafeRawBufferPointer(start: LLVMGetBufferStart(output), count: LLVMGetBufferSize(output))
        let assembly = String(decoding: bytes, as: UTF8.self)
        #expect(assembly.contains("add:"))
        #expect(assembly.contains("twice:"))
    }
}
