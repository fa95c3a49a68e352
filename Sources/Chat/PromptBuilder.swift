import Tokenizer

/// A templated, tokenised prompt: its ids, one reuse signature per position, and where the
/// image-token rows go.
public struct Prompt: Sendable {
    public let ids: [Int32]
    /// Per position: the token id, or for an image token the image's key and the token's index
    /// in it (equal ids of two different images must not match). Equal signature prefixes mean
    /// equal KV cache contents.
    public let signatures: [UInt64]
    /// Positions of the `<IMG_CONTEXT>` rows, in order: row k takes the k-th vision token of the
    /// prompt's images, concatenated in placeholder order.
    public let imageSlots: [Int]

    public var count: Int { ids.count }
}

/// An image as a prompt sees it: its content key (for reuse signatures) and its tile count.
public struct PromptImage: Sendable {
    public let key: UInt64
    public let tiles: Int
    public init(key: UInt64, tiles: Int) { self.key = key; self.tiles = tiles }
}

/// Turns a conversation into a `Prompt` in one pass: template, image placeholders expanded,
/// tokens, signatures and image slots, checked against the context.
public struct PromptBuilder: Sendable {
    public let tokenizer: any Tokenizer
    public let tokensPerTile: Int
    public let contextLength: Int
    let imageContextID: Int32?

    public init(tokenizer: any Tokenizer, tokensPerTile: Int, contextLength: Int) {
        self.tokenizer = tokenizer
        self.tokensPerTile = tokensPerTile
        self.contextLength = contextLength
        imageContextID = tokenizer.tokenID("<IMG_CONTEXT>")
    }

    /// The prompt for `question` after `history` in `template`. `images` are the images of the
    /// conversation in placeholder order (history first); when the conversation has no
    /// placeholder they are put before the question.
    public func build(template: ChatTemplate, history: [(String, String)], question: String,
                      images: [PromptImage]) throws -> Prompt {
        guard !question.isEmpty else { throw ChatError.emptyPrompt }
        let q = ImagePrompt.withPlaceholders(question: question, history: history, imageCount: images.count)
        return try build(text: template.prompt(history: history, question: q), images: images)
    }

    /// The prompt for `messages` in any order (a server's conversation), each image already
    /// placed by an `<image>` placeholder in its message; `images` in placeholder order.
    public func build(template: ChatTemplate, messages: [ChatTemplate.Message], images: [PromptImage]) throws -> Prompt {
        try build(text: template.prompt(messages: messages), images: images)
    }

    /// More bytes of text than any token of the vocabularies the engine reads covers (InternLM2's
    /// longest piece is 128 bytes, Qwen2's 256 in its byte-level form): text longer than the
    /// context times this cannot fit, and is refused before tokenizing it, which takes memory
    /// tens of times its size.
    public static let maxBytesPerToken = 256

    private func build(text prompt: String, images: [PromptImage]) throws -> Prompt {
        let bytes = prompt.utf8.count
        guard bytes <= contextLength * Self.maxBytesPerToken else { throw ChatError.textTooLong(bytes: bytes, context: contextLength) }
        // Only images put it there (expanding <image>); typed, it would count as image rows.
        guard !prompt.contains("<IMG_CONTEXT>") else { throw ChatError.imageTokenInText }
        let text = try ImagePrompt.expand(prompt, tileCounts: images.map(\.tiles), tokensPerTile: tokensPerTile)
        let ids = tokenizer.encode(text)
        guard ids.count < contextLength else { throw ChatError.promptTooLong(tokens: ids.count, context: contextLength) }
        let perImage = images.map { $0.tiles * tokensPerTile }
        var sigs: [UInt64] = [], slots: [Int] = [], img = 0, k = 0
        sigs.reserveCapacity(ids.count)
        for (p, id) in ids.enumerated() {
            if id == imageContextID {
                slots.append(p)
                if img < images.count {
                    sigs.append((images[img].key &+ UInt64(k) &* 0x9E37_79B9_7F4A_7C15) | (1 << 63))
                    k += 1
                    if k == perImage[img] { img += 1; k = 0 }
                    continue
                }
            }
            sigs.append(UInt64(UInt32(bitPattern: id)))
        }
        let rows = perImage.reduce(0, +)
        guard slots.count == rows else { throw ChatError.imagePlaceholders(images: rows, placeholders: slots.count) }
        return Prompt(ids: ids, signatures: sigs, imageSlots: slots)
    }
}
