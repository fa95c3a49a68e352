import ArgumentParser
import Chat
import ChatAPI
import FileInput
import Foundation
import Imaging

/// `generate --turns FILE`: a JSON array of steps run in order over one session, e.g.
/// `[{"question": "Describe.", "images": ["cat.jpg"]}, {"question": "And the colour?"},
///   {"action": "regenerate"}, {"action": "edit", "question": "Which colour?"},
///   {"question": "Long answer", "cancel_after_tokens": 5}, {"action": "new"}]`
enum TurnScript {
    enum Action: String, Sendable { case ask, regenerate, edit, new }

    struct Step: Sendable {
        var action: Action
        var question: String?
        var images: [String]
        var maxTiles: Int?
        var maxNewTokens: Int?
        var cancelAfterTokens: Int?
    }

    /// Why a script cannot be run, naming the file.
    struct BadScript: LocalizedError {
        let path: String, reason: String
        var errorDescription: String? { "\(path) is not a valid turn script: \(reason)." }
    }

    static func read(_ path: String) throws -> [Step] {
        func bad(_ r: String) -> BadScript { BadScript(path: path, reason: r) }
        let data: Data
        do { data = Data(try FileInput.read(path, limit: 64 << 20)) } catch { throw bad("the file cannot be read: \(error.reason)") }
        guard let arr = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw bad("expected a JSON array of turn objects")
        }
        let keys = ["action", "question", "images", "max_tiles", "max_new_tokens", "cancel_after_tokens"]
        return try arr.enumerated().map { k, o in
            // As --batch checks its lines: a key misspelt or a value of the wrong kind is an error,
            // never a step run without it.
            if let unknown = JSONSteps.unknownKey(o, keys: keys) { throw bad("turn \(k): \(unknown)") }
            func whole(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
                try JSONSteps.wholeNumber(o, key, range) { bad("turn \(k): \($0)") }
            }
            guard o["action"] == nil || o["action"] is String else { throw bad("turn \(k): \"action\" must be a string") }
            let a = (o["action"] as? String) ?? "ask"
            guard let action = Action(rawValue: a) else { throw bad("turn \(k): unknown action \(TerminalText.line(a)) (ask, regenerate, edit, new)") }
            guard o["question"] == nil || o["question"] is String else { throw bad("turn \(k): \"question\" must be a string") }
            let q = o["question"] as? String
            if (action == .ask || action == .edit) && (q ?? "").isEmpty { throw bad("turn \(k): \(a) needs a question") }
            guard o["images"] == nil || o["images"] is [String] else { throw bad("turn \(k): \"images\" must be a list of paths") }
            return Step(action: action, question: q, images: o["images"] as? [String] ?? [], maxTiles: try whole("max_tiles", DynamicTiling.tileCountLimit),
                        maxNewTokens: try whole("max_new_tokens", 1...1_000_000), cancelAfterTokens: try whole("cancel_after_tokens", 0...1_000_000))
        }
    }
}

/// Runs async work from a synchronous command and waits for it.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

final class ResultBox<T>: @unchecked Sendable { var result: Result<T, Error>? }
