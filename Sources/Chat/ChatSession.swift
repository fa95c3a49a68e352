import ChatAPI
import Foundation
import Imaging
import Kernels
import Model
import Tokenizer

/// The local inference session: it owns the engine, the conversation, the KV cache of the
/// conversation so far and the vision tokens of every attached image, and does the least work
/// per turn:
/// - each turn templates the whole conversation (as the official chat() does) and prefills only
///   what follows the longest prefix already in the cache;
/// - an image is decoded and encoded once, when attached, and found again by content;
/// - regenerate and edit truncate the cache instead of recomputing it.
/// Results equal a recomputation from scratch. One exception is built in on purpose: past
/// max_position_embeddings with dynamic NTK RoPE the official code re-prefills everything with a
/// new base every turn, so the session does the same there.
public actor ChatSession: ChatBackend {
    public typealias Turn = ChatTurn

    struct EncodedImage {
        let info: AttachedImage
        let key: UInt64              // content + tiling + model
        let tokens: [Float]          // [tiles * tokensPerTile, hidden]
        let bytes: [UInt8]           // the file as read (saved with the conversation)
        let seconds: Double          // decoding, tiling and encoding it (vision tokens given: no encoding)
    }

    public let engine: ChatEngine
    public private(set) var turns: [Turn] = []
    public private(set) var systemMessage: String
    private var images = HeldImages<EncodedImage, UInt64>()
    private let cache: KVCache
    /// One signature per cached position: the token id, or for an image token the image's key
    /// and the token's index in it (equal ids of two different images must not match).
    private var cached: [UInt64] = []
    private let cancelFlag = CancelFlag()
    /// Scripted cancel (tests, `generate --turns`): raise the cancel flag once this many tokens
    /// are generated, 0 meaning as prefill starts -- what a user's cancel does, at a known point.
    public private(set) var cancelAfterTokens: Int?

    public func setCancelAfterTokens(_ n: Int?) { cancelAfterTokens = n }

    /// A session on `engine`; `systemMessage` nil: the template's own.
    public init(engine: ChatEngine, systemMessage: String? = nil) {
        self.engine = engine
        self.systemMessage = systemMessage ?? engine.template.systemMessage
        cache = engine.makeCache()
    }

    /// Every turn, attach and prefill-ahead runs on this session's own thread (see ComputeThread).
    private nonisolated let computeThread = ComputeThread(name: "ChatSession compute")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { computeThread.asUnownedSerialExecutor() }

    deinit { computeThread.shutdown() }

    /// Stops the running turn, attach or prefill-ahead at its next check (between layers);
    /// callable from any thread without waiting for the session.
    public nonisolated func cancel() { cancelFlag.raise() }

    // MARK: images

    public func attach(path: String, maxTiles: Int?) async throws -> AttachedImage {
        try attachNow(path: path, maxTiles: maxTiles, events: nil)
    }

    public func attachStreaming(path: String, maxTiles: Int?) -> AsyncStream<ChatEvent> {
        stream { s, c in c.yield(.attached(try s.attachNow(path: path, maxTiles: maxTiles, events: c))) }
    }

    /// An image given as the bytes of an image file (a video frame, encoded losslessly), shown as `name`.
    public func attach(imageBytes: [UInt8], name: String, maxTiles: Int?) async throws -> AttachedImage {
        try attach(bytes: imageBytes, name: name, maxTiles: maxTiles, tokens: nil, events: nil)
    }

    func attachNow(path: String, maxTiles: Int?, events: AsyncStream<ChatEvent>.Continuation?) throws -> AttachedImage {
        try attach(bytes: ImageDecoder.readFile(path: path), name: path, maxTiles: maxTiles, tokens: nil, events: events)
    }

    /// Decodes, tiles and encodes `bytes` (or takes `tokens`, vision tokens computed before for
    /// the same content, tiling and model); found again by content when attached before.
    func attach(bytes: [UInt8], name: String, maxTiles: Int?, tokens known: [Float]?,
                events: AsyncStream<ChatEvent>.Continuation?) throws -> AttachedImage {
        let options = engine.tilingOptions(maxTiles: maxTiles)
        let key = fnv1a(bytes, seed: fnv1a(Array("\(options.tileSize)/\(options.minTiles)/\(options.maxTiles)/\(options.useThumbnail)/\(engine.folder.path)".utf8)))
        if let e = images.find(key) { return e.info }
        let v0 = Date()
        events?.yield(.phase(.decodingImage(name: name)))
        let decoded = try ImageDecoder.decode(bytes: bytes, name: name)
        let prepared = ImagePreprocessor.prepare(decoded, options: options)
        let expected = engine.visionTokenFloats(tiles: prepared.tiles)
        let tokens: [Float]
        if let known, known.count == expected {
            tokens = known
        } else {
            if events == nil { cancelFlag.reset() }      // a stream has reset it already
            guard let t = engine.encodeImage(prepared, shouldStop: { cancelFlag.isRaised },
                                             progress: { events?.yield(.phase(.encodingImage(layer: $0, of: $1))) })
            else { throw CancellationError() }
            tokens = t
        }
        return images.add(key: key) { id in
            let info = AttachedImage(id: id, name: name, width: prepared.width, height: prepared.height, tiles: prepared.tiles,
                                     tokenCost: 2 + prepared.tiles * engine.tokensPerTile,
                                     grid: TileGrid(cols: prepared.grid.cols, rows: prepared.grid.rows), tiling: options,
                                     tokensPerTile: engine.tokensPerTile, thumbnail: decoded.thumbnail(fitting: 256),
                                     sha256: ContentHash.sha256(bytes))
            return EncodedImage(info: info, key: key, tokens: tokens, bytes: bytes, seconds: Date().timeIntervalSince(v0))
        }.info
    }

    // MARK: saving and restoring

    public var modelIdentity: ModelIdentity { engine.identity }

    /// The conversation as it stands: system message, turns with their records, the images the
    /// turns show (bytes and vision tokens), and the images attached and never shown (pending:
    /// a front end keeps those it still lists for the next question).
    public func snapshot() -> SessionSnapshot {
        let (ids, pending) = images.snapshotOrder(turnImageIDs: turns.flatMap(\.imageIDs))
        let used = ids.compactMap { images[$0] }.map { SessionSnapshot.Image(info: $0.info, bytes: $0.bytes, tokens: $0.tokens) }
        var s = SessionSnapshot(systemMessage: systemMessage, turns: turns, images: used, model: engine.identity)
        s.pendingImageIDs = pending
        return s
    }

    /// Replaces the conversation with `snapshot`'s: images attached again (their stored vision
    /// tokens used when given, else encoded, with progress), then the turns. Ends with
    /// `.restored` (the images, in the snapshot's order, as attached now) or `.failed`; on
    /// failure or cancel the session is left empty.
    public func restore(_ snapshot: SessionSnapshot) -> AsyncStream<ChatEvent> {
        stream { s, c in
            defer { s.releaseUnused() }
            s.turns = []; s.cached = []; s.cache.truncate(to: 0)
            s.systemMessage = snapshot.systemMessage
            var map: [Int: Int] = [:], now: [AttachedImage] = []
            for img in snapshot.images {
                let a = try s.attach(bytes: img.bytes, name: img.info.name, maxTiles: img.info.tiling.maxTiles,
                                     tokens: img.tokens, events: c)
                map[img.info.id] = a.id
                now.append(a)
            }
            s.turns = try snapshot.turns.map { t in
                var t = t
                t.imageIDs = try t.imageIDs.map { id in
                    guard let n = map[id] else { throw ChatError.invalidParameters("a turn shows image \(id), which the conversation does not hold") }
                    return n
                }
                return t
            }
            c.yield(.restored(now))
        }
    }

    // MARK: turns

    public func send(_ question: String, typed: String, images: [AttachedImage], parameters: SamplingParameters) -> AsyncStream<ChatEvent> {
        let ids = images.map(\.id)
        return stream { s, c in try s.runTurn(question: question, typed: typed, imageIDs: ids, parameters: parameters, events: c) }
    }

    public func regenerate(parameters: SamplingParameters) -> AsyncStream<ChatEvent> {
        stream { s, c in
            guard let last = s.turns.popLast() else { throw ChatError.invalidParameters("there is no answer to regenerate") }
            do { try s.runTurn(question: last.question, typed: last.typed, imageIDs: last.imageIDs, parameters: parameters, events: c, placed: true) }
            catch { s.turns.append(last); throw error }
        }
    }

    public func editLast(_ question: String, typed: String, parameters: SamplingParameters) -> AsyncStream<ChatEvent> {
        stream { s, c in
            guard let last = s.turns.popLast() else { throw ChatError.invalidParameters("there is no question to edit") }
            do { try s.runTurn(question: question, typed: typed, imageIDs: last.imageIDs, parameters: parameters, events: c) }
            catch { s.turns.append(last); throw error }
        }
    }

    /// Starts from an existing conversation (as the official chat(history=...)): its turns are
    /// prefilled with the next question. `imageIDs[k]` are the attached images turn k shows.
    public func setHistory(_ pairs: [(String, String)], imageIDs: [[Int]] = []) {
        turns = pairs.enumerated().map { k, p in
            Turn(question: p.0, answer: p.1, imageIDs: k < imageIDs.count ? imageIDs[k] : [], interrupted: false, record: nil)
        }
    }

    /// Empties the conversation and releases the images its turns showed; images not shown yet
    /// stay (the front end keeps them for the next message).
    public func newConversation() {
        turns = []
        cached = []
        cache.truncate(to: 0)
        releaseUnused()
    }

    /// Drops the encoded images (bytes and vision tokens) that turns showed and no turn shows now.
    func releaseUnused() { images.releaseUnshown(shown: Set(turns.flatMap(\.imageIDs))) }

    public func release(imageIDs: [Int]) { images.release(imageIDs, shown: Set(turns.flatMap(\.imageIDs))) }

    /// Encoded images the session holds (for tests and the memory benchmark).
    public var heldImageCount: Int { images.count }
    /// Bytes those images keep: the file as read and the vision tokens.
    public var heldImageBytes: Int { images.all.reduce(0) { $0 + $1.bytes.count + $1.tokens.count * MemoryLayout<Float>.size } }

    public var defaultSystemMessage: String { engine.template.systemMessage }

    public func setSystemMessage(_ text: String) {
        systemMessage = text     // the next turn's prompt differs from its start: nothing is reused
    }

    /// Returns the event stream at once; `body` runs on the session right after, its errors
    /// becoming `.failed` events (a cancel before any answer ends the stream quietly).
    private func stream(_ body: @escaping @Sendable (isolated ChatSession, AsyncStream<ChatEvent>.Continuation) throws -> Void)
        -> AsyncStream<ChatEvent> {
        let (s, c) = AsyncStream<ChatEvent>.makeStream()
        cancelFlag.reset()
        Task { self.execute(body, c) }      // inherits the actor: runs on it, after this returns
        return s
    }

    private func execute(_ body: @Sendable (isolated ChatSession, AsyncStream<ChatEvent>.Continuation) throws -> Void,
                         _ c: AsyncStream<ChatEvent>.Continuation) {
        do { try body(self, c) } catch {
            if !(error is CancellationError) {
                c.yield(.failed((error as? LocalizedError)?.errorDescription ?? "\(error)"))
            }
        }
        c.finish()
    }

    /// The prompt of the whole conversation plus `question`, the question as placed in it and
    /// the images it shows, in slot order.
    func buildPrompt(question: String, imageIDs: [Int], placed: Bool) throws -> (prompt: Prompt, question: String, images: [EncodedImage]) {
        for id in imageIDs where images[id] == nil { throw ChatError.invalidParameters("image \(id) is not attached") }
        // Placeholders for this turn's images go into this question, so that later turns keep
        // each image where it was asked about.
        let q = placed ? question : ImagePrompt.withPlaceholders(question: question, history: [], imageCount: imageIDs.count)
        let all = (turns.flatMap(\.imageIDs) + imageIDs).map { images[$0]! }
        let prompt = try engine.promptBuilder.build(template: engine.template.with(systemMessage: systemMessage),
                                                    history: turns.map { ($0.question, $0.answer) }, question: q,
                                                    images: all.map { PromptImage(key: $0.key, tiles: $0.info.tiles) })
        return (prompt, q, all)
    }

    func runTurn(question: String, typed: String, imageIDs: [Int], parameters: SamplingParameters,
                 events: AsyncStream<ChatEvent>.Continuation, placed: Bool = false) throws {
        if let p = parameters.problem { throw ChatError.invalidParameters(p) }
        let start = Date()
        let (prompt, q, all) = try budgetChecked(imageIDs) { try buildPrompt(question: question, imageIDs: imageIDs, placed: placed) }
        var stats = TurnStats()
        let shownBefore = Set(turns.flatMap(\.imageIDs))
        stats.visionSeconds = Set(imageIDs).subtracting(shownBefore).compactMap { images[$0]?.seconds }.reduce(0, +)
        stats.promptTokens = prompt.count
        stats.promptTokenIDs = prompt.ids

        // Reuse the longest cached prefix (at least one position is prefilled, for logits), then
        // prefill the rest.
        let t0 = Date()
        let (reuse, prefillLogits) = prefill(prompt, images: all, upTo: prompt.count,
                                             maxReuse: engine.prefillsWhole(promptLength: prompt.count) ? 0 : prompt.count - 1,
                                             logits: .last) { d, n in
            events.yield(.phase(.prefill(done: d, of: n)))
            if d == 0 && cancelAfterTokens == 0 { cancelFlag.raise() }
        }
        stats.reusedTokens = reuse
        stats.prefilledTokens = prompt.count - reuse
        guard let logits = prefillLogits, !cancelFlag.isRaised else { throw CancellationError() }
        stats.prefillSeconds = Date().timeIntervalSince(t0)

        events.yield(.phase(.generating))
        let t1 = Date()
        let d = engine.decode(after: logits, prompt: prompt.ids, cache: cache, parameters: parameters,
                              shouldStop: { cancelFlag.isRaised },
                              onToken: { n in
                                  if n == 1 { stats.firstTokenSeconds = Date().timeIntervalSince(start) }
                                  if n == cancelAfterTokens { cancelFlag.raise() }
                              },
                              onText: { events.yield(.text($0)) })
        cached += d.tokenIDs.prefix(cache.count - cached.count).map { UInt64(UInt32(bitPattern: $0)) }
        stats.decodeSeconds = Date().timeIntervalSince(t1)
        stats.generatedTokenIDs = d.tokenIDs
        stats.text = d.text
        stats.stoppedAtStopToken = d.stoppedAtStopToken
        stats.interrupted = d.interrupted
        if stats.interrupted && d.tokenIDs.isEmpty {
            throw CancellationError()            // nothing to keep: the question is not recorded
        }
        turns.append(Turn(question: q, typed: typed, answer: stats.text, imageIDs: imageIDs, interrupted: stats.interrupted,
                          record: GenerationRecord(parameters: parameters, model: engine.identity, stats: stats)))
        releaseUnused()
        events.yield(.finished(stats))
    }

    /// Prefills, ahead of the question, the part of the next turn's prompt that attaching
    /// `images` already determines: everything up to the last `</img>` (text after it is
    /// tokenised with the question). Call it while the user types; the turn then prefills only
    /// the question. Returns the positions prefilled; cancel() stops it.
    @discardableResult
    public func prefillAhead(images: [AttachedImage]) -> Int {
        guard !images.isEmpty, let end = engine.tokenizer.tokenID("</img>") else { return 0 }
        cancelFlag.reset()
        guard let (prompt, _, all) = try? buildPrompt(question: "?", imageIDs: images.map(\.id), placed: false),
              let last = prompt.ids.lastIndex(of: end), !engine.prefillsWhole(promptLength: prompt.count) else { return 0 }
        let (reuse, _) = prefill(prompt, images: all, upTo: last + 1, maxReuse: last + 1, logits: .none, progress: { _, _ in })
        return cache.count - reuse
    }

    /// Makes the cache hold positions `0..<upTo` of the prompt: keeps the longest cached prefix
    /// (at most `maxReuse` positions) and prefills the rest in one forward call (the RoPE base
    /// depends on the call's length). `progress(done, of)` starts at 0. Returns the positions
    /// reused and the logits (nil when cancelled, the cache then holding the reused prefix).
    private func prefill(_ prompt: Prompt, images all: [EncodedImage], upTo: Int, maxReuse: Int, logits wanted: LogitsWanted,
                         progress: (Int, Int) -> Void) -> (Int, UnsafeBufferPointer<Float>?) {
        let reuse = min(zip(cached, prompt.signatures).prefix { $0 == $1 }.count, maxReuse)
        let n = upTo - reuse
        guard n > 0 else { return (reuse, UnsafeBufferPointer(start: nil, count: 0)) }      // already cached: nothing is dropped
        cache.truncate(to: reuse)
        cached = Array(cached.prefix(reuse))
        progress(0, n)
        let logits = engine.prefill(prompt, images: all.map(\.tokens), upTo: upTo, cache: cache, logits: wanted,
                                    shouldStop: { cancelFlag.isRaised }, progress: { progress($0, n) })
        cached = Array(prompt.signatures.prefix(cache.count))
        return (reuse, logits)
    }

    /// Vision tokens and tile counts of attached images, in the given order.
    public func tokens(of ids: [Int]) -> [Float] { ids.flatMap { images[$0]?.tokens ?? [] } }
    public func tiles(of ids: [Int]) -> [Int] { ids.map { images[$0]?.info.tiles ?? 0 } }

    /// Runs `build`, turning a too-long prompt into the precise budget message, which names
    /// every image of the conversation, this turn's `imageIDs` included, with its cost.
    private func budgetChecked<T>(_ imageIDs: [Int], _ build: () throws -> T) throws -> T {
        do { return try build() } catch ChatError.promptTooLong(let tokens, let context) {
            let costs = (turns.flatMap(\.imageIDs) + imageIDs).compactMap { images[$0]?.info }
            throw ChatError.contextBudget(tokens: tokens, context: context,
                                          images: costs.map { "\(TerminalText.line($0.name)): \(counted($0.tokenCost, "token")) (\(counted($0.tiles, "tile")))" })
        }
    }
}

/// FNV-1a, 64 bits: a content key for the image cache (not a security hash).
func fnv1a(_ bytes: [UInt8], seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
    var h = seed
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}
