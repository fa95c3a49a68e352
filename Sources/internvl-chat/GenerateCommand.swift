import ArgumentParser
import Chat
import ChatAPI
import Conversations
import FileInput
import Foundation
import Imaging
import Video

/// Shared by `generate` and `chat`.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Stop after this many new tokens.") var maxNewTokens = 1024
    @Option(help: "Take no stop token before this many new tokens (0: none; as vLLM's min_tokens).") var minNewTokens = 0
    @Option(help: "Sampling temperature; 0 is greedy decoding.") var temperature: Float = 0
    @Option(help: "Keep only the K most likely tokens (0: all).") var topK = 0
    @Option(help: "Keep the smallest set of tokens whose probability reaches P (1: all).") var topP: Float = 1
    @Option(help: "Penalise tokens already present (1: off).") var repetitionPenalty: Float = 1
    @Option(help: "Seed of the sampler's random generator (default: 0 for one answer; a fresh draw for each answer of the app and of --turns).")
    var seed: UInt64?
    @Option(help: "Context size in tokens, prompt and answer together.") var context = 8192

    var parameters: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty,
                           seed: seed ?? 0, maxNewTokens: maxNewTokens, minNewTokens: minNewTokens)
    }

    /// Parameters for one answer of several: the seed given, else a fresh one (so that a
    /// regenerated answer is a new draw; the seed used is reported with it).
    func parametersForAnswer() -> SamplingParameters {
        var p = parameters
        if seed == nil { p.seed = UInt64.random(in: 0...UInt64(UInt32.max)) }
        return p
    }

    func validate() throws {
        if let p = parameters.problem { throw ValidationError(p) }
        let most = SamplingParameters.highestTemperature
        if temperature > most { throw ValidationError("--temperature must be a number from 0 to \(Int(most)) (as /set temperature)") }
        if context < 16 { throw ValidationError("--context must be at least 16 tokens") }
    }
}

/// Images for a prompt.
struct ImageOptions: ParsableArguments {
    @Option(help: "An image for the prompt (repeatable, in <image> placeholder order; without placeholders the images go before the question).")
    var image: [String] = []
    @Option(help: "Most tiles per image (default: max_dynamic_patch of config.json).") var maxTiles: Int?

    func validate() throws {
        if let problem = DynamicTiling.checkMaxTiles(maxTiles, option: "--max-tiles") { throw ValidationError(problem) }
    }
}

/// A video for the prompt, sampled as the model card's load_video.
struct VideoOptions: ParsableArguments {
    @Option(name: .customLong("video"),
            help: "A video for the prompt (one): frames at the middle of equal segments (the model card's load_video), each tiled with --max-tiles (default 1).")
    var videos: [String] = []
    @Option(help: "With --video: how many frames to sample (default: 8).") var segments: Int?

    var video: String? { videos.first }
    var segmentCount: Int { segments ?? 8 }

    func validate() throws {
        if videos.count > 1 { throw ValidationError("one --video at a time (the model card's prompt has one clip); \(videos.count) were given") }
        if let s = segments {
            if videos.isEmpty { throw ValidationError("--segments goes with --video") }
            if s < 1 || s > 64 { throw ValidationError("--segments must be between 1 and 64") }
        }
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Answer one prompt and exit (streams the answer, or prints JSON with --json).")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var weightOptions: WeightOptions
    @OptionGroup var remote: RemoteOptions
    @Option(help: "System message (default: the model's own).") var system: String?
    @Option(help: "JSON file: an array of [question, answer] pairs, as the official chat(history=...).")
    var history: String?
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var videoOptions: VideoOptions
    @Flag(help: "Print one JSON object: text, token_ids, prompt_token_ids, tiles, timings (and frames with --video).") var json = false
    @Argument(help: "The question; - (or none, with a pipe on standard input) reads it from standard input.") var prompt: String?

    @Option(help: "JSON file of turns to run over one session (format: docs/cli.md); replaces PROMPT.") var turns: String?
    @Option(help: "JSONL file of independent questions, one per line: {\"question\": ..., \"images\": [...], \"max_tiles\": N}; prints one JSON line per question, in order, as the official batch_chat answers them.")
    var batch: String?
    @Option(help: "A folder of images: the same question (--question or PROMPT) about each, one JSON line per image.")
    var batchImages: String?
    @Option(help: "With --batch-images: the question asked about every image.") var question: String?
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "With --turns: start from this saved conversation (name or id).") var resume: String?
    @Option(help: "With --turns: save the conversation under this name afterwards (replacing one of that name).") var save: String?

    func validate() throws {
        if turns == nil && batch == nil && batchImages == nil && prompt == nil && isatty(0) != 0 {
            throw ValidationError("missing PROMPT (or --turns FILE, --batch FILE, or the question on standard input)")
        }
        if turns != nil && (prompt != nil || history != nil || !imageOptions.image.isEmpty) {
            throw ValidationError("--turns FILE carries its own questions and images: drop PROMPT, --history and --image")
        }
        if videoOptions.video != nil && (turns != nil || !imageOptions.image.isEmpty) {
            throw ValidationError("--video goes alone: drop --image and --turns")
        }
        if turns == nil && (resume != nil || save != nil) { throw ValidationError("--resume and --save go with --turns FILE") }
        // Before the turns run, not after; a name the store has already is replaced, whatever it is.
        if let name = save, let problem = ConversationStore.problem(withNewName: name),
           !storeOptions.store.list().contains(where: { $0.name == name }) {
            let shown = TerminalText.line(name)
            let said: ConversationError = if case .optionLikeName = problem { .optionLikeName(shown) } else { .badName(shown) }
            throw ValidationError(said.errorDescription ?? "--save \(shown) is no valid name")
        }
        if batch != nil || batchImages != nil {
            if batch != nil && batchImages != nil { throw ValidationError("--batch and --batch-images go one at a time") }
            if turns != nil || history != nil || videoOptions.video != nil || !imageOptions.image.isEmpty {
                throw ValidationError("--batch and --batch-images carry their own questions and images: drop --turns, --history, --video and --image")
            }
            if batch != nil && (prompt != nil || question != nil) { throw ValidationError("--batch FILE carries its questions: drop PROMPT and --question") }
            if batchImages != nil && (prompt == nil) == (question == nil) { throw ValidationError("--batch-images needs the question, as --question Q or PROMPT (one of them)") }
        } else if question != nil {
            throw ValidationError("--question goes with --batch-images")
        }
        if remote.isRemote && (turns != nil || batch != nil || batchImages != nil || videoOptions.video != nil) {
            throw ValidationError("--turns, --batch, --batch-images and --video run on the local model only; drop --endpoint")
        }
    }

    /// The question: PROMPT, or all of standard input for `-` or no PROMPT.
    func readQuestion() throws -> String {
        if let prompt, prompt != "-" { return prompt }
        let data = FileHandle.standardInput.readDataToEndOfFile()
        guard let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("standard input is not UTF-8 text")
        }
        return text.trimmingCharacters(in: .newlines)
    }

    func run() throws {
        try reportingErrors {
            if remote.isRemote { return try runRemote() }
            let engine = try weightOptions.engine(try modelOptions.locate(), context: sampling.context)
            if batch != nil || batchImages != nil {
                let lines = try batch.map { try BatchRun.read(jsonl: $0, defaultMaxTiles: imageOptions.maxTiles) }
                    ?? BatchRun.read(folder: batchImages!, question: (question ?? prompt)!, maxTiles: imageOptions.maxTiles)
                let template = system.map { engine.template.with(systemMessage: $0) } ?? engine.template
                try BatchRun(engine: engine, template: template, parameters: sampling.parameters).run(lines, progress: isatty(2) != 0)
                return
            }
            let session = ChatSession(engine: engine, systemMessage: system)
            if let turns {
                let conversations = ConversationService(store: storeOptions.store, backend: session)
                defer { conversations.close() }
                if let resume {
                    let resumed = try blocking { try await conversations.resume(resume) }
                    for p in resumed.problems { writeStderr("warning: \(TerminalText.sanitize(p))\n") }
                }
                try runTurns(session, try TurnScript.read(turns))
                if let save {
                    let snapshot = try blocking { await session.snapshot() }
                    _ = try conversations.save(snapshot, .replace(save))
                }
                return
            }
            var asked = try readQuestion()
            let pairs = try history.map(Self.readHistory) ?? []
            let v0 = Date()
            let maxTiles = imageOptions.maxTiles
            var attached = try imageOptions.image.map { path in try blocking { try await session.attach(path: path, maxTiles: maxTiles) } }
            var frames: [Int]? = nil
            if let path = videoOptions.video {
                let (indices, images) = try Self.attachVideo(path, segments: videoOptions.segmentCount, maxTiles: maxTiles ?? 1, to: session)
                frames = indices
                attached = images
                let inHistory = pairs.reduce(0) { $0 + ImagePrompt.count(in: $1.0) }
                if inHistory > 0 && inHistory != indices.count && ImagePrompt.count(in: asked) == 0 {
                    throw ValidationError("the --history has \(inHistory) <image> placeholders but --video was sampled to \(indices.count) frames: "
                                          + "a follow-up on the same clip needs the --segments of the answer it follows (\(inHistory))")
                }
                if ImagePrompt.count(in: asked) == 0 && inHistory == 0 {
                    asked = FramePrompt.prefix(frames: indices.count) + asked
                }
            }
            let visionSeconds = Date().timeIntervalSince(v0)
            // Images fill the placeholders of the history first, in order; the rest belong to the
            // question (placed before it when it has none).
            var rest = attached[...]
            var assigned: [[Int]] = []
            for (q, _) in pairs {
                let n = min(ImagePrompt.count(in: q), rest.count)
                assigned.append(rest.prefix(n).map(\.id)); rest = rest.dropFirst(n)
            }
            let perTurn = assigned, current = Array(rest), question = asked, params = sampling.parameters, quiet = json
            let outcome = try blocking {
                await session.setHistory(pairs, imageIDs: perTurn)
                return await Self.consume(await session.send(question, images: current, parameters: params), stream: !quiet)
            }
            guard let stats = outcome.stats else { throw TurnFailed(outcome.failure) }
            if json {
                Output.write(try Self.encode(stats, engine: engine, tiles: attached.map(\.tiles), frames: frames,
                                             visionSeconds: visionSeconds) + "\n")
            } else {
                Output.write("\n")
            }
        }
    }

    /// Samples `path`'s frames as the model card does and attaches each (a lossless PNG of the
    /// decoded RGB, so that it is tiled and encoded, and saved, as any image).
    static func attachVideo(_ path: String, segments: Int, maxTiles: Int, to session: ChatSession) throws -> ([Int], [AttachedImage]) {
        let video = try VideoDecoder(path: path)
        let indices = video.sampledIndices(segments: segments)
        let images = try zip(indices, try video.frames(at: indices)).map { index, frame in
            guard let png = PNGEncoder.encode(frame) else { throw VideoError.corrupt(path, reason: "frame \(index) could not be kept as PNG") }
            return try blocking { try await session.attach(imageBytes: png, name: "\(path) frame \(index)", maxTiles: maxTiles) }
        }
        return (indices, images)
    }

    /// Runs a turn script, printing one JSON object per step.
    func runTurns(_ session: ChatSession, _ steps: [TurnScript.Step]) throws {
        var byPath: [String: AttachedImage] = [:]
        for (k, step) in steps.enumerated() {
            let v0 = Date()
            var attached: [AttachedImage] = [], added: [String] = []
            do {
                for path in step.images {
                    if let a = byPath[path] { attached.append(a); continue }
                    let tiles = step.maxTiles ?? imageOptions.maxTiles
                    let a = try blocking { try await session.attach(path: path, maxTiles: tiles) }
                    byPath[path] = a; added.append(path)
                    attached.append(a)
                }
            } catch {
                // A step whose image cannot be read fails as a step does: the script goes on (and
                // --save keeps what was answered); the images this step attached are let go.
                let ids = added.compactMap { byPath.removeValue(forKey: $0)?.id }
                try blocking { await session.release(imageIDs: ids) }
                try Self.writeLine(["turn": k, "action": step.action.rawValue,
                                    "error": (error as? LocalizedError)?.errorDescription ?? "\(error)"])
                continue
            }
            let images = attached, visionSeconds = Date().timeIntervalSince(v0)
            var p = sampling.parametersForAnswer()
            if let n = step.maxNewTokens { p.maxNewTokens = n; p.minNewTokens = min(p.minNewTokens, n) }
            let params = p
            let outcome = try blocking { () async -> Outcome in
                await session.setCancelAfterTokens(step.cancelAfterTokens)
                let o: Outcome
                switch step.action {
                case .ask: o = await Self.consume(await session.send(step.question ?? "", images: images, parameters: params), stream: false)
                case .regenerate: o = await Self.consume(await session.regenerate(parameters: params), stream: false)
                case .edit: o = await Self.consume(await session.editLast(step.question ?? "", parameters: params), stream: false)
                case .new: await session.newConversation(); o = Outcome()
                }
                await session.setCancelAfterTokens(nil)
                return o
            }
            if step.action == .new { byPath = [:] }    // the images its turns showed are released
            var obj: [String: Any] = ["turn": k, "action": step.action.rawValue]
            if step.action != .new { obj["seed"] = params.seed }
            if let f = outcome.failure { obj["error"] = f }
            if let st = outcome.stats {
                obj["text"] = st.text
                obj["token_ids"] = st.generatedTokenIDs.map(Int.init)
                obj["interrupted"] = st.interrupted
                obj["prompt_tokens"] = st.promptTokens
                obj["reused_tokens"] = st.reusedTokens
                obj["prefilled_tokens"] = st.prefilledTokens
                obj["tiles"] = images.map(\.tiles)
                obj["timings"] = ["vision_s": visionSeconds, "prefill_s": st.prefillSeconds, "decode_s": st.decodeSeconds,
                                  "first_token_s": st.firstTokenSeconds, "decode_tok_s": st.decodeTokensPerSecond]
            } else if step.action != .new && outcome.failure == nil {
                obj["cancelled"] = true
            }
            try Self.writeLine(obj)
        }
    }

    /// One step's JSON object as one line on stdout.
    static func writeLine(_ obj: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
        Output.write(String(decoding: data, as: UTF8.self) + "\n")
    }

    struct Outcome: Sendable { var stats: TurnStats?; var failure: String? }

    /// A turn that ended without an answer: the session's own message, as it is.
    struct TurnFailed: LocalizedError {
        let message: String?
        init(_ message: String?) { self.message = message }
        var errorDescription: String? { message ?? "The turn was cancelled before any answer." }
    }

    /// Reads a turn's events: text to stdout when `stream`, the stats or the failure at the end.
    static func consume(_ events: AsyncStream<ChatEvent>, stream: Bool) async -> Outcome {
        var o = Outcome()
        for await e in events {
            switch e {
            case .text(let t): if stream { Output.write(t) }
            case .finished(let s): o.stats = s
            case .failed(let m): o.failure = m
            case .phase, .attached, .restored: break
            }
        }
        return o
    }

    static func readHistory(_ path: String) throws -> [(String, String)] {
        let data: Data
        do { data = Data(try FileInput.read(path, limit: 64 << 20)) } catch {
            throw ChatError.badHistory(path, reason: "the file cannot be read: \(error.reason)")
        }
        guard let arr = try? JSONSerialization.jsonObject(with: data) as? [Any] else {
            throw ChatError.badHistory(path, reason: "expected a JSON array of [question, answer] pairs")
        }
        return try arr.enumerated().map { i, e in
            guard let pair = e as? [Any], pair.count == 2, let q = pair[0] as? String, let a = pair[1] as? String else {
                throw ChatError.badHistory(path, reason: "entry \(i) is not a [question, answer] pair of strings")
            }
            return (q, a)
        }
    }

    struct JSONResult: Encodable {
        struct Timings: Encodable {
            var load_s, vision_s, prefill_s, decode_s, prefill_tok_s, decode_tok_s: Double
            var prompt_tokens, generated_tokens: Int
        }
        var text: String
        var token_ids: [Int32]
        var prompt_token_ids: [Int32]
        var tiles: [Int]
        var frames: [Int]?
        var stopped_at_stop_token: Bool
        var timings: Timings
    }

    static func encode(_ st: TurnStats, engine: ChatEngine, tiles: [Int], frames: [Int]? = nil, visionSeconds: Double) throws -> String {
        let j = JSONResult(text: st.text, token_ids: st.generatedTokenIDs, prompt_token_ids: st.promptTokenIDs, tiles: tiles, frames: frames,
                           stopped_at_stop_token: st.stoppedAtStopToken,
                           timings: .init(load_s: engine.loadSeconds, vision_s: visionSeconds, prefill_s: st.prefillSeconds,
                                          decode_s: st.decodeSeconds,
                                          prefill_tok_s: st.prefillSeconds > 0 ? Double(st.prefilledTokens) / st.prefillSeconds : 0,
                                          decode_tok_s: st.decodeTokensPerSecond,
                                          prompt_tokens: st.promptTokens, generated_tokens: st.generatedTokenIDs.count))
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try enc.encode(j), as: UTF8.self)
    }
}
