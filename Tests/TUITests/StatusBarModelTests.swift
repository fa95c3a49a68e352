import ChatAPI
import Testing
@testable import TUI

/// The status bar names the model the app runs (a cached checkpoint by its repo id) and its
/// weight format.
struct StatusBarModelTests {
    @Test func statusBarNamesTheModel() {
        var s = AppState()
        s.modelName = "OpenGVLab/Mini-InternVL-Chat-4B-V1-5"
        s.weightFormat = "q4"
        let screen = renderFrame(s, width: 120, height: 10).grid.text
        let bar = screen.split(separator: "\n").filter { $0.contains("OpenGVLab/Mini-InternVL-Chat-4B-V1-5 (q4)") }
        #expect(bar.count == 1, "\(screen)")
    }
}
