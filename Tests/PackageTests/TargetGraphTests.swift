import Foundation
import Testing
import TestSupport

/// The target graph as `swift package dump-package` reports it: front ends must not link the
/// inference stack, so they build (and a remote backend serves them) without OpenBLAS or the
/// kernels.
struct TargetGraphTests {
    /// Target name -> the targets it names directly (products of other packages left out).
    static func graph() throws -> [String: [String]] {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("internvl-dump-\(getpid())")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // A scratch path of its own: the running `swift test` holds the lock of .build.
        p.arguments = ["swift", "package", "dump-package", "--package-path", TestData.packageRoot.path,
                       "--scratch-path", scratch.path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "swift package dump-package failed")
        let manifest = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let targets = try #require(manifest["targets"] as? [[String: Any]])
        var g: [String: [String]] = [:]
        for t in targets {
            let name = try #require(t["name"] as? String)
            let deps = (t["dependencies"] as? [[String: Any]]) ?? []
            g[name] = deps.compactMap { d in
                ((d["byName"] ?? d["target"]) as? [Any])?.first as? String
            }
        }
        return g
    }

    static func closure(of target: String, in g: [String: [String]]) -> Set<String> {
        var seen = Set<String>(), todo = [target]
        while let t = todo.popLast() {
            for d in g[t] ?? [] where seen.insert(d).inserted { todo.append(d) }
        }
        return seen
    }

    static let inference: Set<String> = ["Chat", "Model", "Kernels", "CKernels", "COpenBLAS", "Checkpoint"]

    @Test func frontEndsDoNotLinkTheInferenceStack() throws {
        let g = try Self.graph()
        for front in ["ChatAPI", "Conversations", "TUI", "RemoteBackend", "ServingAPI", "OpenAIAPI", "Server"] {
            #expect(g[front] != nil, "no target \(front)")
            let linked = Self.closure(of: front, in: g).intersection(Self.inference)
            #expect(linked.isEmpty, "\(front) depends on \(linked.sorted().joined(separator: ", "))")
        }
        // The walk does reach the stack where it is linked.
        #expect(Self.closure(of: "internvl-chat", in: g).isSuperset(of: Self.inference))
    }
}
