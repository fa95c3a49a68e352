import ChatAPI
import OpenAIAPI

/// The checks `--batch` lines and `--turns` steps share: a key outside the known ones, and a
/// whole number outside its range (true and false are no numbers, read as JSON numbers are by
/// `ChatCompletionBody.integer`), are errors naming them.
enum JSONSteps {
    /// `o`'s first key outside `keys`, as the error's words; nil when there is none.
    static func unknownKey(_ o: [String: Any], keys: [String]) -> String? {
        o.keys.sorted().first { !keys.contains($0) }
            .map { "unknown key \"\(TerminalText.line($0))\" (the keys are \(keys.joined(separator: ", ")))" }
    }

    /// `o[key]`: nil when absent; a whole number in `range`, or `bad` with why it is not.
    static func wholeNumber<E: Error>(_ o: [String: Any], _ key: String, _ range: ClosedRange<Int>, _ bad: (String) -> E) throws(E) -> Int? {
        guard let v = o[key] else { return nil }
        guard let n = ChatCompletionBody.integer(v), range.contains(n) else {
            throw bad("\"\(key)\" must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }
}
