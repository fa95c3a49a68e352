/// Which model produced something: enough to tell whether stored vision tokens still fit.
public struct ModelIdentity: Codable, Sendable, Equatable {
    /// The model folder's name (for people; not compared).
    public var name: String
    /// SHA-256 of config.json, lowercase hex.
    public var configSHA256: String
    /// How the language model's weights were held ("bf16", "int8" or "q4").
    public var weightFormat: String

    public init(name: String, configSHA256: String, weightFormat: String) {
        self.name = name; self.configSHA256 = configSHA256; self.weightFormat = weightFormat
    }

    /// Same weights and vision numerics: vision tokens computed by one are valid for the other.
    public func sameModel(as o: ModelIdentity) -> Bool { configSHA256 == o.configSHA256 && weightFormat == o.weightFormat }
}

/// How an answer was produced, kept with it.
public struct GenerationRecord: Codable, Sendable, Equatable {
    public var parameters: SamplingParameters
    public var model: ModelIdentity
    public var visionSeconds: Double
    public var prefillSeconds: Double
    public var decodeSeconds: Double
    public var firstTokenSeconds: Double
    public var promptTokens: Int
    public var reusedTokens: Int
    public var generatedTokens: Int
    public var stoppedAtStopToken: Bool
    public var interrupted: Bool

    public init(parameters: SamplingParameters, model: ModelIdentity, stats: TurnStats) {
        self.parameters = parameters; self.model = model
        visionSeconds = stats.visionSeconds; prefillSeconds = stats.prefillSeconds; decodeSeconds = stats.decodeSeconds
        firstTokenSeconds = stats.firstTokenSeconds; promptTokens = stats.promptTokens; reusedTokens = stats.reusedTokens
        generatedTokens = stats.generatedTokens; stoppedAtStopToken = stats.stoppedAtStopToken
        interrupted = stats.interrupted
    }
}

/// One question and its answer, as the session holds them.
public struct ChatTurn: Sendable, Equatable {
    /// The question as sent to the model, image placeholders included.
    public var question: String
    /// The question as the user typed it (what the screen shows).
    public var typed: String
    public var answer: String
    public var imageIDs: [Int]
    public var interrupted: Bool
    public var record: GenerationRecord?

    public init(question: String, typed: String? = nil, answer: String, imageIDs: [Int], interrupted: Bool,
                record: GenerationRecord? = nil) {
        self.question = question; self.typed = typed ?? question; self.answer = answer; self.imageIDs = imageIDs
        self.interrupted = interrupted; self.record = record
    }
}

/// Everything needed to save a conversation, or to restore one into a session.
public struct SessionSnapshot: Sendable, Equatable {
    public struct Image: Sendable, Equatable {
        /// `info.id` is what the turns' `imageIDs` refer to; `info.tiling` how it was cut.
        public var info: AttachedImage
        /// The file's bytes, as read when it was attached.
        public var bytes: [UInt8]
        /// The vision tokens (`tiles x tokensPerTile x hidden`), when known.
        public var tokens: [Float]?

        public init(info: AttachedImage, bytes: [UInt8], tokens: [Float]? = nil) {
            self.info = info; self.bytes = bytes; self.tokens = tokens
        }
    }

    public var systemMessage: String
    public var turns: [ChatTurn]
    public var images: [Image]
    public var model: ModelIdentity
    /// Text typed for the next question and not sent yet (kept with a saved conversation).
    public var draft = ""
    /// Images attached for the next question and not sent yet, by `info.id`, in the order they
    /// were attached; they are in `images` too.
    public var pendingImageIDs: [Int] = []

    public init(systemMessage: String, turns: [ChatTurn], images: [Image], model: ModelIdentity) {
        self.systemMessage = systemMessage; self.turns = turns; self.images = images; self.model = model
    }
}

extension ChatTurn {
    /// `text` without the leading `<image>` / `FrameK: <image>` lines a video's question starts
    /// with (turns saved before the text typed was kept apart have them in `typed` too); nil when
    /// there is no `Frame1: <image>` line among them.
    public static func withoutVideoMarkers(_ text: String) -> String? {
        let markers = leadingImageMarkers(text)
        guard markers.contains(1) else { return nil }
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropFirst(markers.count).joined(separator: "\n")
    }

    /// The image lines `text` starts with, up to its first other line: nil for `<image>`, K for
    /// `FrameK: <image>` (a video's frame).
    public static func leadingImageMarkers(_ text: String) -> [Int?] {
        var markers: [Int?] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "<image>" {
                markers.append(nil)
            } else if line.hasPrefix("Frame"), line.hasSuffix(": <image>"), let k = Int(line.dropFirst(5).dropLast(9)) {
                markers.append(k)
            } else {
                break
            }
        }
        return markers
    }
}
