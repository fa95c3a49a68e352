import ArgumentParser
import Chat
import FileInput
import Foundation

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

    static func read(_ path: String) throws -> [Step] {
        func bad(_ r: String) -> ChatError { .badHistory(path, reason: r) }
        let data: Data
        do { data = Data(try FileInput.read(path, limit: 64 << 20)) } catch { throw bad("the file cannot be read: \(error.reason)") }
        guard let arr = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw bad("expected a JSON array of turn objects")
        }
        return try arr.enumerated().map { k, o in
            let a = (o["action"] as? String) ?? "ask"
            guard let action = Action(rawValue: a) else { throw bad("turn \(k): unknown action \(a) (ask, regenerate, edit, new)") }
            let q = o["question"] as? String
            if (action == .ask || action == .edit) && (q ?? "").isEmpty { throw bad("turn \(k): \(a) needs a question") }
            return Step(action: action, question: q, images: o["images"] as? [String] ?? [], maxTiles: o["max_tiles"] as? Int,
                        maxNewTokens: o["max_new_tokens"] as? Int, cancelAfterTokens: o["cancel_after_tokens"] as? Int)
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
