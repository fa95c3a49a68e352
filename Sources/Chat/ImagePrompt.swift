/// Where images go in the prompt text (modeling_internvl_chat.py chat() and the model card's
/// multi-image form).
public enum ImagePrompt {
    public static let placeholder = "<image>"

    /// The question with image placeholders added when the conversation has none:
    /// `<image>\n` for one image, `Image-1: <image>\nImage-2: <image>\n...` for several.
    public static func withPlaceholders(question: String, history: [(String, String)], imageCount: Int) -> String {
        guard imageCount > 0 else { return question }
        let existing = history.reduce(count(in: question)) { $0 + count(in: $1.0) }
        guard existing == 0 else { return question }
        if imageCount == 1 { return placeholder + "\n" + question }
        return (1...imageCount).map { "Image-\($0): \(placeholder)\n" }.joined() + question
    }

    /// Replaces the first `tileCounts.count` placeholders, in order, by
    /// `<img>` + `<IMG_CONTEXT>` x (tokensPerTile x tiles) + `</img>` (query.replace(..., 1)).
    public static func expand(_ prompt: String, tileCounts: [Int], tokensPerTile: Int) throws -> String {
        let found = count(in: prompt)
        guard found >= tileCounts.count else {
            throw ChatError.imagePlaceholders(images: tileCounts.count, placeholders: found)
        }
        var rest = Substring(prompt), out = ""
        for tiles in tileCounts {
            let r = rest.range(of: placeholder)!
            out += rest[..<r.lowerBound]
            out += "<img>" + String(repeating: "<IMG_CONTEXT>", count: tokensPerTile * tiles) + "</img>"
            rest = rest[r.upperBound...]
        }
        return out + rest
    }

    public static func count(in s: String) -> Int {
        s.components(separatedBy: placeholder).count - 1
    }
}
