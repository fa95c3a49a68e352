import ChatAPI
import Foundation
import Imaging

/// The OpenAI chat-completions request this backend sends, and the pieces of answers it reads.
enum OpenAIWire {
    /// One message of the conversation: text, and images as `data:` URLs of the file's bytes
    /// (before the text, as clients of vision models send them).
    struct Message {
        var role: String
        var text: String
        var images: [(bytes: [UInt8], maxTiles: Int?)] = []
    }

    /// The MIME type of an image file's bytes, from their signature.
    static func mimeType(_ bytes: [UInt8]) -> String {
        switch ImageDecoder.format(of: bytes) {
        case .jpeg: return "image/jpeg"
        case .png: return "image/png"
        case .webp: return "image/webp"
        case nil: return "application/octet-stream"
        }
    }

    static func dataURL(_ bytes: [UInt8]) -> String {
        "data:\(mimeType(bytes));base64,\(Data(bytes).base64EncodedString())"
    }

    /// The JSON body of a streamed completion. Sampling options outside OpenAI's (top_k,
    /// repetition_penalty, vLLM's min_tokens, the per-image max_dynamic_patch of LMDeploy and our serve) are sent
    /// only when they differ from "off", so a strict server sees only what the user asked for.
    static func requestBody(model: String, messages: [Message], parameters p: SamplingParameters) throws -> [UInt8] {
        var body: [String: Any] = [
            "model": model,
            "stream": true,
            "stream_options": ["include_usage": true],
            "max_tokens": p.maxNewTokens,
            "temperature": Double(p.temperature),
            "top_p": Double(p.topP),
            "seed": p.seed,
            "messages": messages.map { m -> [String: Any] in
                guard !m.images.isEmpty else { return ["role": m.role, "content": m.text] }
                var parts: [[String: Any]] = m.images.map { img in
                    var part: [String: Any] = ["type": "image_url", "image_url": ["url": dataURL(img.bytes)]]
                    if let t = img.maxTiles { part["max_dynamic_patch"] = t }
                    return part
                }
                parts.append(["type": "text", "text": m.text])
                return ["role": m.role, "content": parts]
            },
        ]
        if p.topK > 0 { body["top_k"] = p.topK }
        if p.minNewTokens > 0 { body["min_tokens"] = p.minNewTokens }
        if p.repetitionPenalty != 1 { body["repetition_penalty"] = Double(p.repetitionPenalty) }
        return Array(try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes]))
    }

    /// What one streamed chunk (or a whole non-streamed completion) says.
    struct Chunk: Equatable {
        var text = ""
        var finishReason: String?
        var promptTokens: Int?
        var completionTokens: Int?
        /// The answer's token ids, where the server gives them (our `serve` adds `token_ids` to
        /// the choice that finishes).
        var tokenIDs: [Int32]?
        /// An error object sent inside the stream.
        var error: String?
    }

    static func parseChunk(_ data: [UInt8]) throws -> Chunk {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any] else {
            throw RemoteError.badResponse("a streamed chunk is not a JSON object")
        }
        var c = Chunk()
        if obj["error"] != nil { c.error = RemoteError.message(fromBody: data); return c }
        if let choices = obj["choices"] as? [[String: Any]], let first = choices.first {
            let delta = (first["delta"] as? [String: Any]) ?? (first["message"] as? [String: Any])
            c.text = delta?["content"] as? String ?? ""
            c.finishReason = first["finish_reason"] as? String
            c.tokenIDs = (first["token_ids"] as? [Int])?.compactMap { Int32(exactly: $0) }
        }
        if let u = obj["usage"] as? [String: Any] {
            c.promptTokens = u["prompt_tokens"] as? Int
            c.completionTokens = u["completion_tokens"] as? Int
        }
        return c
    }

    /// The model ids of `GET /v1/models`.
    static func modelIDs(_ data: [UInt8]) -> [String] {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any],
              let list = obj["data"] as? [[String: Any]] else { return [] }
        return list.compactMap { $0["id"] as? String }
    }
}

/// Server-sent events, fed bytes as they arrive: yields the `data` of each complete event.
struct SSEParser {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    /// A line longer than this is refused (a chunk is a few hundred bytes).
    static let maxLine = 4 << 20

    mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [[UInt8]] {
        var events: [[UInt8]] = []
        for b in bytes {
            if b == 0x0A {
                if line.last == 0x0D { line.removeLast() }
                if let e = takeLine() { events.append(e) }
            } else {
                line.append(b)
                if line.count > Self.maxLine { throw RemoteError.badResponse("a line of the event stream exceeds \(Self.maxLine) bytes") }
            }
        }
        return events
    }

    /// The event a blank line completes, if any; other lines add to it.
    private mutating func takeLine() -> [UInt8]? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            guard hasData else { return nil }
            defer { data = []; hasData = false }
            return data
        }
        guard line.starts(with: Array("data:".utf8)) else { return nil }      // comments, event:, id:, retry:
        var value = line.dropFirst(5)
        if value.first == 0x20 { value = value.dropFirst() }
        if hasData { data.append(0x0A) }
        data += value
        hasData = true
        return nil
    }
}
