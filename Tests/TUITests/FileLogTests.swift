import Foundation
import Logging
import Testing
@testable import TUI

/// The app's log file: one event per line, nothing a terminal would act on.
struct FileLogTests {
    @Test func aFileNameCannotForgeALineOrAnEscape() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("internvl-log-\(UUID()).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sink = try #require(FileSink(path: path))
        let h = FileLogHandler(label: "app", sink: sink)
        Logger(label: "app") { _ in h }.info("attach /tmp/a\n2026-01-01T00:00:00Z error app: forged\u{1B}[31m.png")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.split(separator: "\n").count == 1, "\(text)")
        #expect(text.contains("/tmp/a\u{2424}2026") && !text.contains("\u{1B}"), "\(text)")
    }
}
