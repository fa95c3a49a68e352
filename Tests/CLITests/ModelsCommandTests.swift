import Foundation
import Testing
import TestSupport

/// `internvl-chat models` through the real binary: --json is one object listing the --model
/// checkpoints with family, format, size and template; the table names the family.
struct ModelsCommandTests {
    @Test func listsTheGivenCheckpoints() throws {
        let phi3 = TestData.url("tiny-phi3").path, qwen = TestData.url("tiny-qwen2").path
        let r = try BoundedRun.run(CLITests.binary, ["models", "--json", "--model", phi3, "--model", qwen])
        #expect(r.status == 0, "\(r.err)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let models = obj["models"] as! [[String: Any]]
        let mine = models.filter { ($0["source"] as? String) == "argument" }
        #expect(mine.map { $0["name"] as! String } == [phi3, qwen])
        #expect(mine.map { $0["family"] as! String } == ["Phi-3", "Qwen2"])
        #expect(mine.map { $0["template"] as! String } == ["phi3-chat", "internvl2_5"])
        #expect(mine.allSatisfy { $0["weight_format"] as? String == "bf16" && $0["supported"] as? Bool == true })
        #expect(mine.allSatisfy { ($0["size_bytes"] as! Int) > 1_000_000 })

        let t = try BoundedRun.run(CLITests.binary, ["models", "--model", phi3])
        #expect(t.status == 0 && t.out.hasPrefix("  NAME") && t.out.contains("Phi-3") && t.out.contains("phi3-chat"), "\(t.out)")
    }
}
