import Chat
import ChatAPI
import Foundation

// Usage: compute-probe MODEL-FOLDER
// Runs as many chat turns with long prompts at once as the cooperative pool has threads, while
// a task on the pool sleeps 10 ms at a time; prints "busy=S gap=S prefilled=N": how long the
// turns computed, the longest time between two of the task's wake-ups, and the positions the
// turns prefilled. Its own process, so that no other test's work shares the pool.

let args = CommandLine.arguments
guard args.count == 2 else { FileHandle.standardError.write(Data("usage: compute-probe MODEL-FOLDER\n".utf8)); exit(2) }
let folder = URL(fileURLWithPath: args[1])
let poolWidth = min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 8)
// One engine per session: a model's scratch buffers serve one forward call at a time.
let sessions = try (0..<poolWidth).map { _ in ChatSession(engine: try ChatEngine(folder: folder, contextLength: 16384)) }
let ticker = Task { () -> Double in
    var last = Date(), longest = 0.0
    while !Task.isCancelled {
        try? await Task.sleep(nanoseconds: 10_000_000)
        let now = Date()
        longest = max(longest, now.timeIntervalSince(last))
        last = now
    }
    return longest
}
try await Task.sleep(nanoseconds: 50_000_000)
let start = Date()
let prefilled = await runTurns(sessions)
let busy = Date().timeIntervalSince(start)
ticker.cancel()
let gap = await ticker.value
print("busy=\(busy) gap=\(gap) prefilled=\(prefilled) sessions=\(poolWidth)")

/// One long-prompt turn on every session at once; the positions they prefilled.
func runTurns(_ sessions: [ChatSession]) async -> Int {
    let question = String(repeating: "the quick brown fox jumps over the lazy dog ", count: 500)
    return await withTaskGroup(of: Int.self) { group in
    for s in sessions {
        group.addTask {
            var n = 0
            for await e in await s.send(question, images: [], parameters: SamplingParameters(maxNewTokens: 1)) {
                if case .finished(let st) = e { n = st.prefilledTokens }
                if case .failed(let m) = e { FileHandle.standardError.write(Data("turn failed: \(m)\n".utf8)) }
            }
            return n
        }
    }
    var total = 0
    for await n in group { total += n }
    return total
    }
}
