import CLLVM
import Foundation
import GranuleIR

/// Splits a generated program module into `count` parts that LLVM optimises and compiles on
/// separate threads, one object file each: LLVM's pass pipelines and instruction selection are
/// single-threaded, and on BART-base they are most of a compile.
///
/// Every thread parses the same text into its own context (LLVM contexts are not thread-safe)
/// and keeps its share of the *units*: the entry functions and the kernels, which only reach each
/// other through `granule_entries` and `gr_parallel_for`'s function pointers, never by inlining.
/// Units go to the least loaded part by instruction count, largest first, the same way in every
/// thread. A unit kept in a part becomes an external definition with hidden visibility (it was
/// internal); elsewhere it is replaced by a hidden declaration that the linker
/// resolves. The `gr.*` helpers (always-inline math) and private constants stay in every part,
/// so inlining is unchanged and unused copies die in the optimiser. The manifest and the entry
/// table live in part 0 only.
///
/// Deliberately not a general module splitter: it relies on the emitter's naming (`gr.` helpers,
/// `granule_` globals) and does not move globals other than those two.
struct ModulePartition {
    let index: Int
    let count: Int

    /// The functions split between parts: every definition that is not a `gr.*` helper.
    static func isUnit(_ name: String) -> Bool { !name.hasPrefix("gr.") }

    /// Keeps this part's units and the shared pieces in `module`, in place.
    func apply(to module: LLVMModuleRef) {
        guard count > 1 else { return }
        var units: [(name: String, function: LLVMValueRef, size: Int)] = []
        var function = LLVMGetFirstFunction(module)
        while let current = function {
            let name = ModulePartition.name(of: current)
            if LLVMIsDeclaration(current) == 0 && ModulePartition.isUnit(name) {
                units.append((name, current, ModulePartition.instructionCount(current)))
            }
            function = LLVMGetNextFunction(current)
        }
        units.sort { $0.size != $1.size ? $0.size > $1.size : $0.name < $1.name }
        var load = [Int](repeating: 0, count: count)
        for unit in units {
            let part = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            load[part] += unit.size + 1
            let wasInternal = LLVMGetLinkage(unit.function) == LLVMInternalLinkage || LLVMGetLinkage(unit.function) == LLVMPrivateLinkage
            let kept = part == index ? unit.function : ModulePartition.replaceWithDeclaration(unit.function, in: module, name: unit.name)
            LLVMSetLinkage(kept, LLVMExternalLinkage)
            if wasInternal { LLVMSetVisibility(kept, LLVMHiddenVisibility) }
        }
        if index != 0 {
            for global in ["granule_entries", "granule_manifest"] {
                if let value = LLVMGetNamedGlobal(module, global) { LLVMDeleteGlobal(value) }
            }
        }
    }

    /// A body-less twin of `function` takes over its uses and its name (the C API has no
    /// `deleteBody`).
    static func replaceWithDeclaration(_ function: LLVMValueRef, in module: LLVMModuleRef, name: String) -> LLVMValueRef {
        let declaration = LLVMAddFunction(module, "", LLVMGlobalGetValueType(function))!
        LLVMReplaceAllUsesWith(function, declaration)
        LLVMDeleteFunction(function)
        name.withCString { LLVMSetValueName2(declaration, $0, name.utf8.count) }
        return declaration
    }

    static func name(of value: LLVMValueRef) -> String {
        var length = 0
        guard let pointer = LLVMGetValueName2(value, &length) else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    static func instructionCount(_ function: LLVMValueRef) -> Int {
        var total = 0
        var block = LLVMGetFirstBasicBlock(function)
        while let current = block {
            var instruction = LLVMGetFirstInstruction(current)
            while let each = instruction {
                total += 1
                instruction = LLVMGetNextInstruction(each)
            }
            block = LLVMGetNextBasicBlock(current)
        }
        return total
    }
}
