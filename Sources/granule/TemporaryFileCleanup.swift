import Dispatch
import Foundation

/// While a command writes temporary files next to its output (`OUTPUT.tmp-part.N.o`,
/// `OUTPUT.tmp-link`, ...), SIGINT or SIGTERM removes them before the process ends, with the
/// status a signal gives (128 + its number). Without it a `kill` during `granule compile` left the
/// parts behind. Child processes (the C compiler and the linker it starts) are stopped first and
/// killed after: SIGTERM reaches only this process, and a linker left running would create
/// `OUTPUT.tmp-link` after the cleanup.
final class TemporaryFileCleanup {
    private var sources: [DispatchSourceSignal] = []

    /// Handles the signals until `stop()`; removes the files in each output's directory whose
    /// names start with its name + ".tmp-". Give the path as typed and the one a symbolic link
    /// resolves to: the object parts go next to the first, the linker's files next to the second.
    init(outputs: [String]) {
        let places = Set(outputs).map { output -> (directory: String, prefix: String) in
            let url = URL(fileURLWithPath: output)
            return (url.deletingLastPathComponent().path, url.lastPathComponent + ".tmp-")
        }
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)  // delivered to the dispatch source instead
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                // A tool the main thread started after the first scan is stopped by the second,
                // before any file is removed, so none of them creates a file after the removal.
                let tools = Self.stopDescendants() + Self.stopDescendants()
                for (directory, prefix) in places {
                    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                    for name in names where name.hasPrefix(prefix) {
                        try? FileManager.default.removeItem(atPath: directory + "/" + name)
                    }
                }
                // Killed last: an ended tool would let the waiting main thread go on and exit 1.
                // Only stopped processes are killed (one cannot end, so its pid is not reused).
                for pid in tools where Self.isStopped(pid) { kill(pid, SIGKILL) }  // the only signal a stopped process acts on
                // _exit: other threads may be inside LLVM, whose global destructors exit() would run.
                _exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Stops every process below this one (read from /proc: the tools are started through
    /// Foundation, which keeps no list a signal handler could use) and returns them. Stopped, not
    /// ended: a tool that ended would let the waiting command go on to fail and exit with 1 while
    /// the cleanup still runs. Parents are stopped before their children, and the tree is read
    /// again until no new process appears, so a compiler driver cannot start a linker after.
    private static func stopDescendants() -> [pid_t] {
        var stopped: [pid_t] = []
        for _ in 0..<10 {
            let fresh = descendants(of: getpid()).filter { !stopped.contains($0) }
            if fresh.isEmpty { break }
            for pid in fresh { kill(pid, SIGSTOP) }
            stopped += fresh
        }
        // kill(2) only queues SIGSTOP; wait (≤ 1 s) until /proc shows each stopped or gone.
        let deadline = Date().addingTimeInterval(1)
        var running = stopped
        while !running.isEmpty && Date() < deadline {
            running = running.filter { pid in
                guard let state = processState(pid) else { return false }
                return !"TtZX".contains(state)
            }
            if !running.isEmpty { usleep(1_000) }
        }
        return stopped
    }

    /// The state letter of /proc/PID/stat (R, S, T, Z, ...), nil when the process is gone.
    private static func processState(_ pid: pid_t) -> Character? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
    }

    private static func isStopped(_ pid: pid_t) -> Bool {
        guard let state = processState(pid) else { return false }
        return state == "T" || state == "t"
    }

    /// The processes below `pid`, parents before their children (Linux's /proc/PID/task/TID/children).
    private static func descendants(of pid: pid_t) -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var result: [pid_t] = []
        for task in tasks {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8) else { continue }
            for child in text.split(separator: " ").compactMap({ pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
                result.append(child)
                result += descendants(of: child)
            }
        }
        return result
    }

    /// Restores the default actions.
    func stop() {
        for source in sources { source.cancel() }
        sources = []
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
