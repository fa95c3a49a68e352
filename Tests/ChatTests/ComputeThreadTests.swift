import Foundation
import Testing
import TestSupport

/// Sessions compute on threads of their own: while as many turns as the cooperative pool has
/// threads prefill long prompts, a UI-tick-like task on the pool still wakes on time. Measured
/// by Tests/Tools/compute-probe in a process of its own (tests running beside this one block
/// pool threads of the test process). Computing on the actor's default executor, the turns held
/// every pool thread and the tick waited about as long as they computed.
struct ComputeThreadTests {
    @Test func theCooperativePoolKeepsTickingWhileTurnsCompute() throws {
        let p = Process()
        p.executableURL = TestData.tool("compute-probe")
        p.arguments = [TestData.url("tiny-b").path]
        let out = Pipe(); p.standardOutput = out; p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        var v: [String: Double] = [:]
        for f in text.split(whereSeparator: \.isWhitespace) {
            let kv = f.split(separator: "=")
            if kv.count == 2, let d = Double(kv[1]) { v[String(kv[0])] = d }
        }
        let busy = try #require(v["busy"], "\(text)"), gap = try #require(v["gap"]), sessions = try #require(v["sessions"])
        #expect(try #require(v["prefilled"]) > sessions * 3000, "every turn prefilled its long prompt: \(text)")
        // The check means something only if the turns computed well beyond a tick's slack.
        #expect(busy > 1.5, "the turns computed for \(busy) s: too short to show starvation")
        // Starved, the tick waits about as long as the turns compute (4.5 s of 4.6 measured); on
        // time it waits for the OS scheduler only (0.44 s at worst measured, at a load of 16 on 2 cores).
        #expect(gap < busy / 4, "the tick waited \(gap) s while the turns computed for \(busy) s")
    }
}
