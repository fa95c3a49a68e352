import Foundation
import Testing
@testable import TUI

/// The input history file: entries as typed (several lines, quotes, escapes) come back in
/// order; a broken line is skipped; the file stays bounded and private.
struct InputHistoryTests {
    static func scratch() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("history-\(UUID())/history.jsonl").path
    }

    @Test func entriesComeBackAsTyped() throws {
        let path = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let h = InputHistory(path: path)
        #expect(h.load().isEmpty, "no file: no history")
        let entries = ["first", "two\nlines", "quotes \" and \\ and \u{1B}[31m", "/attach ~/x.png", "👩‍💻 ok"]
        for e in entries { h.append(e) }
        #expect(InputHistory(path: path).load() == entries)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile(); handle.write(Data("{not json\n\u{FF}\u{FE}\n".utf8)); try handle.close()
        h.append("after")
        #expect(h.load() == entries + ["after"], "broken lines are skipped")
    }

    @Test func aLastLineWithoutItsLineBreakKeepsItsEntryAndTheNext() throws {
        let path = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data("\"first\"\n\"cut short\"".utf8).write(to: URL(fileURLWithPath: path))
        let h = InputHistory(path: path)
        h.append("next")
        h.append("and another")
        #expect(InputHistory(path: path).load() == ["first", "cut short", "next", "and another"])
    }

    @Test func theFileIsBounded() throws {
        let path = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let h = InputHistory(path: path)
        for i in 0..<(2 * InputHistory.limit + 5) { h.append("entry \(i)") }
        let all = h.load()
        #expect(all.count == InputHistory.limit && all.last == "entry \(2 * InputHistory.limit + 4)")
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count
        #expect(lines <= 2 * InputHistory.limit, "rewritten with the newest \(InputHistory.limit): \(lines) lines")
    }

    @Test func theDefaultPathFollowsTheEnvironment() {
        #expect(InputHistory.defaultPath(environment: ["INTERNVL_CHAT_HISTORY": "/x/h"]) == "/x/h")
        #expect(InputHistory.defaultPath(environment: ["XDG_STATE_HOME": "/s"]) == "/s/internvl-chat/history.jsonl")
    }
}
