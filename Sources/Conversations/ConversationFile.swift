import ChatAPI
import Foundation
import Imaging

/// `conversation.json`, format version 1 (docs/conversation-format.md). Images are listed once
/// per (content, tiling) and referred to by index; their bytes live beside the file, named by
/// their SHA-256, so the file holds no paths at all.
public struct ConversationFile: Codable, Sendable, Equatable {
    public static let formatName = "internvl-chat conversation"
    public static let currentVersion = 1

    public var format: String
    public var version: Int
    public var id: String
    public var name: String?
    public var title: String
    public var created: Date
    public var updated: Date
    public var system: String
    public var model: ModelIdentity
    public var images: [ImageEntry]
    public var turns: [Turn]
    /// Text typed for the next question and not sent when the conversation was saved (absent
    /// when there was none).
    public var draft: String?
    /// Images attached for the next question and not sent (indices into `images`; absent when
    /// there were none).
    public var pending: [Int]?

    public struct ImageEntry: Codable, Sendable, Equatable {
        public var sha256: String
        /// The original file's name, without its folder (shown; never used as a path).
        public var name: String
        public var bytes: Int
        public var format: String          // jpeg, png or webp: the stored file's extension
        public var width: Int
        public var height: Int
        public var tiling: TilingOptions
        public var grid: TileGrid
        public var tiles: Int
        public var tokenCost: Int
        public var tokensPerTile: Int
    }

    public struct Turn: Codable, Sendable, Equatable {
        /// As sent to the model, image placeholders included.
        public var question: String
        /// As the user typed it.
        public var typed: String
        public var answer: String
        /// Indices into `images`.
        public var images: [Int]
        public var interrupted: Bool
        public var record: GenerationRecord?
    }

    /// Turn count, image count and a one-line summary for lists.
    public var imageCount: Int { Set(images.map(\.sha256)).count }
}

/// Why a conversation file cannot be used (each names the file and the problem).
public enum ConversationError: LocalizedError, Equatable {
    case notFound(String, store: String)
    case ambiguous(String, matches: [String])
    case unreadable(String, reason: String)
    case invalid(String, reason: String)
    case futureVersion(String, version: Int)
    case locked(String, by: String)
    case notFoundAmongUnreadable(String, store: String, unreadable: Int)
    case nameTaken(String, id: String)
    case badName(String)
    case optionLikeName(String)
    case saveFailed(String, reason: String)
    case exportFailed(String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .notFound(let n, let store): return "No saved conversation \(n) in \(store) (`internvl-chat conversations`, or /list in the app, shows them)."
        case .notFoundAmongUnreadable(let n, let store, let k):
            return "No readable conversation \(n) in \(store); \(k == 1 ? "one" : "\(k)") could not be read (a newer version or a damaged file) "
                + "and may be it: `internvl-chat conversations` lists them with the reason."
        case .ambiguous(let n, let m): return "\(n) matches several conversations: \(m.joined(separator: ", "))."
        case .unreadable(let p, let r): return "Cannot read \(p): \(r)."
        case .invalid(let p, let r): return "\(p) is not a valid conversation: \(r). It was left as it is."
        case .futureVersion(let p, let v):
            return "\(p) was written by a newer internvl-chat (format version \(v)); this one reads version \(ConversationFile.currentVersion). It was left as it is."
        case .locked(let n, let by): return "Conversation \(n) is open in another internvl-chat (\(by)); close it there first."
        case .nameTaken(let n, let id): return "A conversation named \(n) exists already (\(id))."
        case .badName(let n): return "\(n) cannot be a conversation name: use letters, digits, spaces, - _ . (at most 80)."
        case .optionLikeName(let n):
            return "\(n) cannot be a new conversation name: a name starting with \"-\" would be read as an option on the command line. Start it with a letter, a digit or _."
        case .saveFailed(let p, let r): return "Could not save \(p): \(r). Whatever was saved before is intact."
        case .exportFailed(let p, let r): return "Could not write \(p): \(r)."
        }
    }
}

enum Limits {
    static let conversationFileBytes = 64 << 20
    static let imageBytes = 256 << 20
    static let textCharacters = 4 << 20
    static let turns = 100_000
    static let visionFileBytes = 2 << 30
    static let tokens = 1 << 24
    static let tileSize = 4_096
    static let tokensPerTile = 4_096
}

extension ConversationFile.ImageEntry {
    /// The tiling fields agree with each other as `TilePlan` makes them: a grid within the tile
    /// limits, a thumbnail only for a grid of more than one tile, the prompt cost from the tiles;
    /// or none of them known (grid, tiles and costs all zero).
    func validateTiling(at: String, bad: (String) -> ConversationError) throws {
        let t = tiling, most = DynamicTiling.tileCountLimit.upperBound
        guard DynamicTiling.tileCountLimit.contains(t.minTiles), (t.minTiles...most).contains(t.maxTiles), (1...Limits.tileSize).contains(t.tileSize) else {
            throw bad("\(at) has an impossible tiling (tiles \(t.minTiles) to \(t.maxTiles) within \(DynamicTiling.tileCountText), tile size \(t.tileSize) within 1 to \(Limits.tileSize))")
        }
        // An image attached through a server whose model's tiling is not known here (the remote
        // backend) has no grid and no cost yet: all of them zero.
        if grid.cols == 0 && grid.rows == 0 && tiles == 0 && tokenCost == 0 && tokensPerTile == 0 { return }
        guard (1...most).contains(grid.cols), (1...most).contains(grid.rows), (t.minTiles...t.maxTiles).contains(grid.cols * grid.rows) else {
            throw bad("\(at) has a \(grid.cols)x\(grid.rows) grid, outside \(t.minTiles) to \(t.maxTiles) tiles")
        }
        let n = grid.cols * grid.rows
        guard tiles == n + (t.useThumbnail && n > 1 ? 1 : 0) else {
            throw bad("\(at) has \(tiles) tiles, but its \(grid.cols)x\(grid.rows) grid makes \(n + (t.useThumbnail && n > 1 ? 1 : 0))")
        }
        guard (1...Limits.tokensPerTile).contains(tokensPerTile), tokenCost == 2 + tiles * tokensPerTile else {
            throw bad("\(at) costs \(tokenCost) tokens, but \(tiles) tiles of \(tokensPerTile) (1 to \(Limits.tokensPerTile)) make \(2 + tiles * min(max(tokensPerTile, 0), Limits.tokensPerTile))")
        }
    }
}

extension ConversationFile {
    /// Checks everything a hand edit could break; `path` names the file in messages.
    func validate(path: String) throws {
        func bad(_ r: String) -> ConversationError { .invalid(path, reason: r) }
        guard format == Self.formatName else { throw bad("its format is \"\(format)\", not \"\(Self.formatName)\"") }
        guard version >= 1 else { throw bad("version \(version)") }
        guard version <= Self.currentVersion else { throw ConversationError.futureVersion(path, version: version) }
        guard ConversationStore.isValidID(id) else { throw bad("its id \"\(id)\" is not one this program makes") }
        if let n = name { guard ConversationStore.isValidName(n) else { throw bad("its name \"\(n)\" is not allowed") } }
        guard turns.count <= Limits.turns else { throw bad("\(turns.count) turns") }
        for (i, e) in images.enumerated() {
            let at = "image \(i + 1)"
            guard e.sha256.count == 64, e.sha256.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw bad("\(at) has \"\(e.sha256.prefix(80))\" where a SHA-256 (64 hex digits) belongs")
            }
            guard ["jpeg", "png", "webp"].contains(e.format) else { throw bad("\(at) has format \"\(e.format.prefix(20))\"") }
            guard e.bytes > 0, e.bytes <= Limits.imageBytes else { throw bad("\(at) claims \(e.bytes) bytes (at most \(Limits.imageBytes))") }
            let (pixels, overflow) = e.width.multipliedReportingOverflow(by: e.height)
            guard e.width > 0, e.height > 0, !overflow, pixels <= ImageDecoder.maxPixels else {
                throw bad("\(at) claims \(e.width)x\(e.height) pixels (at most \(ImageDecoder.maxPixels) in all)")
            }
            try e.validateTiling(at: at, bad: bad)
        }
        for i in pending ?? [] where i < 0 || i >= images.count {
            throw bad("the images for the next question include image \(i + 1), but there are \(images.count)")
        }
        for (k, t) in turns.enumerated() {
            for i in t.images where i < 0 || i >= images.count {
                throw bad("turn \(k + 1) shows image \(i + 1), but there are \(images.count)")
            }
            if let r = t.record {
                let counts = [r.promptTokens, r.reusedTokens, r.generatedTokens]
                let times = [r.visionSeconds, r.prefillSeconds, r.decodeSeconds, r.firstTokenSeconds]
                guard counts.allSatisfy({ (0...Limits.tokens).contains($0) }), r.reusedTokens <= r.promptTokens,
                      times.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                    throw bad("turn \(k + 1) has impossible statistics (token counts 0 to \(Limits.tokens), times not negative)")
                }
            }
            guard t.question.count <= Limits.textCharacters, t.answer.count <= Limits.textCharacters,
                  t.typed.count <= Limits.textCharacters else { throw bad("turn \(k + 1) is longer than \(Limits.textCharacters) characters") }
        }
    }
}
