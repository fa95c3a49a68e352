import ChatAPI
import Testing
@testable import TUI

/// The screen while the model loads behind it: typing works, the status bar says so, a question
/// sent meanwhile waits, and a failed load is shown without losing what was typed.
struct ModelLoadingTests {
    func loading() -> AppState {
        var s = AppState()
        s.modelName = "Mini-InternVL-Chat-2B-V1-5"
        s.weightFormat = "int8"
        s.modelLoading = true
        return s
    }

    @Test func typingWorksAndTheStatusBarSaysLoading() {
        var s = loading()
        _ = reduce(&s, .type("what is this?"))
        #expect(s.input == "what is this?")
        let screen = renderFrame(s, width: 100, height: 12).grid.text
        #expect(screen.contains("loading the model…"))
        #expect(screen.contains("what is this?"))
        _ = reduce(&s, .modelReady(weightFormat: "int8"))
        let after = renderFrame(s, width: 100, height: 12).grid.text
        #expect(!after.contains("loading the model"))
        #expect(after.contains("(int8)"))
    }

    @Test func aQuestionSentWhileLoadingWaitsAndSaysWhy() {
        var s = loading()
        _ = reduce(&s, .type("hello"))
        let effects = reduce(&s, .enter)
        #expect(effects.contains { if case .send = $0 { true } else { false } })
        _ = reduce(&s, .event(.phase(.loadingModel), at: 0))
        let screen = renderFrame(s, width: 100, height: 12).grid.text
        #expect(screen.contains("waiting for the model to load"))
        #expect(!screen.contains("loading the model…"), "one loading note, not two")
        #expect(reduce(&s, .cancel).contains(.cancel), "Esc stops a question still waiting")
    }

    @Test func aFailedLoadIsShownAndTheTypedTextStays() {
        var s = loading()
        _ = reduce(&s, .type("draft"))
        _ = reduce(&s, .modelFailed("config.json: llm_config.num_hidden_layers is 0"))
        #expect(!s.modelLoading)
        #expect(s.input == "draft")
        #expect(s.messages.last?.text == "The model could not be loaded: config.json: llm_config.num_hidden_layers is 0")
        #expect(renderFrame(s, width: 100, height: 12).grid.text.contains("The model could not be loaded"))
        for _ in 0..<30 { _ = reduce(&s, .notice("something else", error: false)) }     // the error scrolled away
        let status = renderFrame(s, width: 120, height: 12).grid.text.split(separator: "\n").last ?? ""
        #expect(status.contains("the model did not load"), "the status bar keeps saying so: \(status)")
    }
}
