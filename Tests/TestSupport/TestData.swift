import Foundation

/// Where the fixtures made by Tests/reference/make_fixtures.py live: `$INTERNVL_TESTDATA`,
/// else `testdata/` at the package root (scripts/test builds it before `swift test`).
public enum TestData {
    /// A test tool built beside the test bundle (Tests/Tools/NAME), found where swift build puts it.
    public static func tool(_ name: String) -> URL {
        let here = Bundle.main.bundleURL.deletingLastPathComponent()
        for dir in [here, here.deletingLastPathComponent()] {
            let u = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return packageRoot.appendingPathComponent(".build/debug/" + name)
    }

    public static let packageRoot: URL = {
        var u = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { u.deleteLastPathComponent() }
        return u
    }()

    public static var root: URL {
        if let e = ProcessInfo.processInfo.environment["INTERNVL_TESTDATA"], !e.isEmpty {
            return URL(fileURLWithPath: e)
        }
        return packageRoot.appendingPathComponent("testdata")
    }

    public static func url(_ name: String) -> URL { root.appendingPathComponent(name) }

    /// The real InternLM2 tokenizer files in ../shared (present in the team's checkouts and CI,
    /// absent from a user's clone).
    public static var realTokenizer: URL? {
        let env = ProcessInfo.processInfo.environment["INTERNVL_SHARED"]
        let shared = env.map { URL(fileURLWithPath: $0) }
            ?? packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
        let u = shared.appendingPathComponent("fixtures/internlm2-tokenizer")
        return FileManager.default.fileExists(atPath: u.appendingPathComponent("tokenizer.model").path) ? u : nil
    }

    public static let tinyModels = ["tiny-a", "tiny-b", "tiny-c"]

    /// Lines of a JSONL file as objects. Fails loudly when the fixture is missing: the
    /// fixtures are part of the test command, so a missing one is an error, not a skip.
    public static func jsonl(_ name: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: url(name), encoding: .utf8)
        return try text.split(separator: "\n").map {
            guard let o = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] else {
                throw CocoaError(.fileReadCorruptFile)
            }
            return o
        }
    }

    public static func json(_ url: URL) throws -> [String: Any] {
        let data = try Data(contentsOf: url)
        guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CocoaError(.fileReadCorruptFile)
        }
        return o
    }

    public static func ints(_ a: Any?) -> [Int32] { (a as? [Any] ?? []).map { Int32(($0 as? Int) ?? -1) } }
}

/// A small deterministic generator for property tests (SplitMix64).
public struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension TestData {
    /// Row `index` of a `[cases, vocab]` little-endian float64 file of reference logits.
    public static func logits(_ file: URL, index: Int, vocab: Int) throws -> [Double] {
        let d = try Data(contentsOf: file)
        precondition(d.count % (8 * vocab) == 0, "\(file.path) is not a [cases, \(vocab)] float64 table")
        return d.withUnsafeBytes { raw in
            let all = raw.bindMemory(to: Double.self)
            return Array(all[(index * vocab)..<((index + 1) * vocab)])
        }
    }
}
