import Chat
import ChatAPI
import FileInput
import Foundation
import Imaging

/// `generate --batch FILE.jsonl` and `--batch-images DIR`: many independent questions, each with
/// its images, answered as the official `batch_chat` answers them in one call. batch_chat
/// left-pads the prompts to the longest and generates them together; padding is masked and
/// positions come from the mask, so each answer is its prompt's own, except that dynamic NTK
/// RoPE sees the padded length: each line is generated alone here (the model loaded once) with
/// that padding counted (`KVCache.leadingPadding`). Output: one JSON line per question, in order.
struct BatchRun {
    struct Line {
        var number: Int
        var question: String
        var images: [String]
        var maxTiles: Int?
        /// The image's name for `--batch-images` output.
        var label: String?
        /// Where the line is, for errors: "FILE line K" for a JSONL file (nil for a folder, whose
        /// errors name the image).
        var place: String? = nil
    }

    struct BatchError: LocalizedError {
        let message: String
        var errorDescription: String? { message }
    }

    struct Answer: Encodable {
        var image: String?
        var text: String
        var token_ids: [Int32]
        var prompt_token_ids: [Int32]
        var tiles: [Int]
        var stopped_at_stop_token: Bool
    }

    let engine: ChatEngine
    let template: ChatTemplate
    let parameters: SamplingParameters

    /// The lines of a JSONL file: each `{"question": "...", "images": ["a.jpg"], "max_tiles": 6}`
    /// (images optional; max_tiles defaults to `defaultMaxTiles` (--max-tiles), else config.json;
    /// relative image paths from the file's folder). Blank lines
    /// are skipped; anything else that is not such an object is an error naming its line.
    static func read(jsonl path: String, defaultMaxTiles: Int? = nil) throws -> [Line] {
        let data: Data
        do { data = Data(try FileInput.read(path, limit: 256 << 20)) } catch {
            throw BatchError(message: "\(TerminalText.sanitize(path)): \(error.reason)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BatchError(message: "\(TerminalText.sanitize(path)) is not UTF-8 text")
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        var lines: [Line] = []
        // Lines end in LF or CRLF (a Windows editor's); "\r\n" is one Character in Swift.
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let number = i + 1
            func bad(_ why: String) -> BatchError { BatchError(message: "\(TerminalText.sanitize(path)) line \(number): \(why)") }
            guard !raw.allSatisfy(\.isWhitespace) else { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any] else {
                throw bad("not a JSON object")
            }
            if let unknown = JSONSteps.unknownKey(object, keys: ["question", "images", "max_tiles"]) { throw bad(unknown) }
            guard let question = object["question"] as? String, !question.isEmpty else { throw bad("\"question\" must be a non-empty string") }
            var images: [String] = []
            if let value = object["images"] {
                guard let list = value as? [String] else { throw bad("\"images\" must be a list of paths") }
                images = list.map { $0.hasPrefix("/") ? $0 : folder.appendingPathComponent($0).path }
            }
            // A missing image is found before the first answer, not after hours of others.
            for image in images {
                if let problem = FileInput.kind(image) { throw bad("image \(TerminalText.sanitize(image)): \(problem.reason)") }
            }
            let maxTiles = try JSONSteps.wholeNumber(object, "max_tiles", DynamicTiling.tileCountLimit, bad) ?? defaultMaxTiles
            lines.append(Line(number: number, question: question, images: images, maxTiles: maxTiles,
                              place: "\(TerminalText.sanitize(path)) line \(number)"))
        }
        guard !lines.isEmpty else { throw BatchError(message: "\(TerminalText.sanitize(path)) has no questions") }
        return lines
    }

    /// One line per image file of `folder` (sorted by name), all asking `question`; files that
    /// are not JPEG, PNG or WebP by their name, and image names that are no readable file (a broken
    /// link, a FIFO), are skipped with a note on standard error.
    static func read(folder: String, question: String, maxTiles: Int?) throws -> [Line] {
        let entries: [(name: String, path: String)]
        do { entries = try FileInput.entries(ofFolder: folder).sorted { $0.name < $1.name } } catch {
            throw BatchError(message: "\(TerminalText.sanitize(folder)) cannot be listed: \(error.reason)")
        }
        var lines: [Line] = []
        for (name, path) in entries {
            let isImage = ["jpg", "jpeg", "png", "webp"].contains(URL(fileURLWithPath: name).pathExtension.lowercased())
            switch FileInput.kind(path) {
            case nil: break
            case .directory?: continue
            case let problem?:
                // Listed, so "missing" is a link whose target is gone.
                let why = problem == .missing ? "a link to a missing file" : problem.reason
                if isImage { writeStderr("note: skipping \(TerminalText.sanitize(name)) (\(why))\n") }
                continue
            }
            guard isImage else {
                writeStderr("note: skipping \(TerminalText.sanitize(name)) (not a .jpg, .png or .webp)\n")
                continue
            }
            lines.append(Line(number: lines.count + 1, question: question, images: [path], maxTiles: maxTiles, label: name))
        }
        guard !lines.isEmpty else { throw BatchError(message: "\(TerminalText.sanitize(folder)) has no .jpg, .png or .webp images") }
        return lines
    }

    /// Answers every line in order, writing each answer as one JSON line as soon as it is done.
    func run(_ lines: [Line], progress: Bool) throws {
        // The prompts' lengths set the padding, which only matters where the RoPE can change with
        // the call's length (dynamic NTK, long factors) at a padded length, under 2 x the context:
        // tiny test models, not the real ones. Only then are the prompts built first.
        var longest = 0
        if engine.prefillsWhole(promptLength: 2 * engine.contextLength) {
            longest = try lines.map { line in try prompt(line, tiles: try line.images.map { try prepare($0, line).tiles }).count }.max() ?? 0
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for (k, line) in lines.enumerated() {
            if progress { writeStderr("\r\u{1B}[Kline \(k + 1) of \(lines.count)…") }
            let prepared = try line.images.map { try prepare($0, line) }
            let ids = try prompt(line, tiles: prepared.map(\.tiles))
            let vision = prepared.flatMap { engine.encodeImage($0) }
            let result = try engine.generate(prompt: ids, imageTokens: vision, parameters: parameters, leadingPadding: max(0, longest - ids.count))
            let answer = Answer(image: line.label, text: result.text, token_ids: result.tokenIDs, prompt_token_ids: result.promptTokenIDs,
                                tiles: prepared.map(\.tiles), stopped_at_stop_token: result.stoppedAtStopToken)
            Output.write(String(decoding: try encoder.encode(answer), as: UTF8.self) + "\n")
        }
        if progress { writeStderr("\r\u{1B}[K") }
    }

    private func prepare(_ path: String, _ line: Line) throws -> PreparedImage {
        do { return try engine.prepareImage(path: path, maxTiles: line.maxTiles) } catch { throw failure(error, line) }
    }

    /// An error of `line`'s images or prompt, named by where the line is.
    private func failure(_ error: Error, _ line: Line) -> BatchError {
        let why = TerminalText.sanitize((error as? LocalizedError)?.errorDescription ?? "\(error)")
        return BatchError(message: line.place.map { "\($0): \(why)" } ?? why)
    }

    /// batch_chat's query: `<image>\n` before a question with no placeholder (Image-k labels for
    /// several images, as `generate`), the template with its default system message.
    private func prompt(_ line: Line, tiles: [Int]) throws -> [Int32] {
        do { return try engine.promptIDs(template: template, history: [], question: line.question, tileCounts: tiles) } catch {
            throw failure(error, line)
        }
    }
}
