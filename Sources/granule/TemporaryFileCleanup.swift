import Dispatch
import Foundation

/// While a command writes temporary files next to its output (`OUTPUT.tmp-part.N.o`,
/// `OUTPUT.tmp-link`, ...), SIGINT or SIGTERM removes them before the process ends, with the
/// status a signal gives (128 + its number). Without it a `kill` during `granule compile` left the
/// parts behind. Files a child process (the linker) creates after the signal are not covered.
final class TemporaryFileCleanup {
    private var sources: [DispatchSourceSignal] = []

    /// Handles the signals until `stop()`; removes the files in `output`'s directory whose names
    /// start with `output`'s name + ".tmp-".
    init(output: String) {
        let url = URL(fileURLWithPath: output)
        let directory = url.deletingLastPathComponent().path
        let prefix = url.lastPathComponent + ".tmp-"
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)  // delivered to the dispatch source instead
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                for name in names where name.hasPrefix(prefix) {
                    try? FileManager.default.removeItem(atPath: directory + "/" + name)
                }
                // _exit: other threads may be inside LLVM, whose global destructors exit() would run.
                _exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Restores the default actions.
    func stop() {
        for source in sources { source.cancel() }
        sources = []
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
