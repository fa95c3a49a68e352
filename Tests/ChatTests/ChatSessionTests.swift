import Foundation
import Testing
import TestSupport
@testable import Chat
import ChatAPI

/// The session's answers with prefix reuse equal a recomputation of the whole conversation from
/// scratch (greedy ids), turn after turn: images in the first and a later turn, a text follow-up,
/// regenerate, edit, and a turn after a cancel.
struct ChatSessionTests {
    struct Outcome { var text = ""; var stats: TurnStats?; var failure: String?; var phases: [ChatPhase] = [] }

    static func collect(_ s: AsyncStream<ChatEvent>) async -> Outcome {
        var o = Outcome()
        for await e in s {
            switch e {
            case .text(let t):
                o.text += t
            case .finished(let st): o.stats = st
            case .failed(let m): o.failure = m
            case .phase(let p): o.phases.append(p)
            case .attached, .restored: break
            }
        }
        return o
    }

    /// The same turn computed from nothing: template, tokens, a fresh cache.
    static func recompute(_ engine: ChatEngine, _ session: ChatSession, question: String, images: [AttachedImage],
                          placed: Bool = false, dropLast: Bool = false) async throws -> [Int32] {
        var turns = await session.turns
        if dropLast { turns.removeLast() }
        let all = turns.flatMap(\.imageIDs) + images.map(\.id)
        let tokens = try await session.tokens(of: all)
        let q = placed ? question : ImagePrompt.withPlaceholders(question: question, history: [], imageCount: images.count)
        let ids = try engine.promptIDs(template: ChatTemplate.internLM2Chat, history: turns.map { ($0.question, $0.answer) }, question: q,
                                       tileCounts: try await session.tiles(of: all))
        return try engine.generate(prompt: ids, imageTokens: tokens, parameters: SamplingParameters(maxNewTokens: 12)).tokenIDs
    }

    @Test(arguments: ["tiny-b", "tiny-a"])
    func reuseEqualsRecompute(model: String) async throws {
        let engine = try ChatEngine(folder: TestData.url(model))
        let session = ChatSession(engine: engine)
        let p = SamplingParameters(maxNewTokens: 12)
        let cat = try await session.attach(path: TestData.url("images/photo-chelsea.png").path, maxTiles: nil)
        let again = try await session.attach(path: TestData.url("images/photo-chelsea.png").path, maxTiles: nil)
        #expect(again == cat, "the same image is found by content, not encoded twice")

        var want = try await Self.recompute(engine, session, question: "Describe.", images: [cat])
        var o = await Self.collect(await session.send("Describe.", images: [cat], parameters: p))
        #expect(o.failure == nil)
        #expect(o.stats?.generatedTokenIDs == want)
        #expect(o.text == o.stats?.text)

        want = try await Self.recompute(engine, session, question: "And then?", images: [])
        o = await Self.collect(await session.send("And then?", images: [], parameters: p))
        #expect(o.stats?.generatedTokenIDs == want, "text follow-up")
        let reused = o.stats?.reusedTokens ?? 0, prompt = o.stats?.promptTokens ?? 0
        if prompt <= engine.configuration.llmConfig.maxPositionEmbeddings {
            #expect(reused > prompt / 2, "follow-up reused \(reused) of \(prompt)")
        }

        let camera = try await session.attach(path: TestData.url("images/photo-camera.png").path, maxTiles: 4)
        want = try await Self.recompute(engine, session, question: "Compare.", images: [camera])
        o = await Self.collect(await session.send("Compare.", images: [camera], parameters: p))
        #expect(o.stats?.generatedTokenIDs == want, "image in a later turn")
        let firstAnswer = o.stats?.generatedTokenIDs

        // Regenerate: the same question again over the truncated cache.
        let lastQ = await session.turns.last!.question
        want = try await Self.recompute(engine, session, question: lastQ, images: [camera], placed: true, dropLast: true)
        o = await Self.collect(await session.regenerate(parameters: p))
        #expect(o.stats?.generatedTokenIDs == want && want == firstAnswer, "regenerate")
        if (o.stats?.promptTokens ?? 0) <= engine.configuration.llmConfig.maxPositionEmbeddings {
            #expect((o.stats?.reusedTokens ?? 0) > 0)
        }

        // Edit the last question.
        want = try await Self.recompute(engine, session, question: "Compare them now.", images: [camera], dropLast: true)
        o = await Self.collect(await session.editLast("Compare them now.", parameters: p))
        #expect(o.stats?.generatedTokenIDs == want, "edit")

        // Cancel before the answer starts (during prefill): nothing is recorded.
        let before = await session.turns
        await session.setCancelAfterTokens(0)
        o = await Self.collect(await session.send("Never mind.", images: [], parameters: p))
        await session.setCancelAfterTokens(nil)
        #expect(o.stats == nil && o.failure == nil)
        #expect(o.phases.contains(.prefill(done: 0, of: o.phases.compactMap { if case .prefill(_, let n) = $0 { n } else { nil } }.first ?? -1)))
        #expect(await session.turns == before)

        // Cancel while answering: the partial answer is kept, marked interrupted.
        await session.setCancelAfterTokens(3)
        o = await Self.collect(await session.send("Tell me more.", images: [], parameters: SamplingParameters(maxNewTokens: 200)))
        await session.setCancelAfterTokens(nil)
        let last = await session.turns.last!
        #expect(o.stats?.interrupted == true && last.interrupted && last.question == "Tell me more.")
        #expect(o.stats?.generatedTokenIDs.count == 3)
        want = try await Self.recompute(engine, session, question: "Go on.", images: [])
        o = await Self.collect(await session.send("Go on.", images: [], parameters: p))
        #expect(o.stats?.generatedTokenIDs == want, "after a cancel")
    }

    /// A video's question is asked with its frames' markers and kept as the user typed it (what a
    /// saved conversation shows, titles and exports), by send and by editLast.
    @Test func aTurnKeepsWhatWasTypedApartFromTheQuestionAsked() async throws {
        let session = ChatSession(engine: try ChatEngine(folder: TestData.url("tiny-b")))
        let p = SamplingParameters(maxNewTokens: 4)
        let frame = try await session.attach(path: TestData.url("images/photo-chelsea.png").path, maxTiles: 1)
        let o = await Self.collect(await session.send("Frame1: <image>\nWhat is it?", typed: "What is it?", images: [frame], parameters: p))
        #expect(o.failure == nil)
        var last = await session.turns.last
        #expect(last?.question == "Frame1: <image>\nWhat is it?" && last?.typed == "What is it?")
        _ = await Self.collect(await session.editLast("Frame1: <image>\nAnd now?", typed: "And now?", parameters: p))
        last = await session.turns.last
        #expect(last?.question == "Frame1: <image>\nAnd now?" && last?.typed == "And now?" && last?.imageIDs == [frame.id])
        #expect(await session.turns.count == 1)
    }

    /// Prefilling ahead while the user types leaves only the question to prefill, and the answer
    /// is the one a recomputation gives.
    @Test func prefillAheadLeavesOnlyTheQuestion() async throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"))
        let session = ChatSession(engine: engine)
        let cat = try await session.attach(path: TestData.url("images/photo-chelsea.png").path, maxTiles: nil)
        let ahead = await session.prefillAhead(images: [cat])
        #expect(ahead > 7 * 4)
        let want = try await Self.recompute(engine, session, question: "What is it?", images: [cat])
        let o = await Self.collect(await session.send("What is it?", images: [cat], parameters: SamplingParameters(maxNewTokens: 12)))
        #expect(o.stats?.generatedTokenIDs == want)
        #expect(o.stats?.reusedTokens == ahead)
        #expect((o.stats?.prefilledTokens ?? 99) < 20, "only the question: \(o.stats?.prefilledTokens ?? -1)")
    }

    @Test func attachingReportsProgress() async throws {
        let session = ChatSession(engine: try ChatEngine(folder: TestData.url("tiny-c")))
        var phases: [ChatPhase] = [], attached: AttachedImage?, failure: String?
        for await e in await session.attachStreaming(path: TestData.url("images/photo-chelsea.png").path, maxTiles: nil) {
            switch e {
            case .phase(let p): phases.append(p)
            case .attached(let a): attached = a
            case .failed(let m): failure = m
            default: break
            }
        }
        #expect(failure == nil && attached?.tiles == 7)
        // tiny-c runs 2 of its 3 vision layers (select_layer -2): 7 tiles x 2 layer steps.
        let encoding = phases.compactMap { if case .encodingImage(let k, let n) = $0 { (k, n) } else { nil } }
        #expect(encoding.count == 14 && encoding.last! == (14, 14))
        for await e in await session.attachStreaming(path: TestData.url("images/empty.png").path, maxTiles: nil) {
            if case .failed(let m) = e { failure = m }
        }
        #expect(failure?.contains("empty.png is empty") == true)
    }

    @Test func overlongTurnIsRefusedAndTheSessionGoesOn() async throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"), contextLength: 200)
        let session = ChatSession(engine: engine)
        let cat = try await session.attach(path: TestData.url("images/photo-chelsea.png").path, maxTiles: nil)
        let o = await Self.collect(await session.send(String(repeating: "very long ", count: 60), images: [cat],
                                                      parameters: SamplingParameters(maxNewTokens: 4)))
        #expect(o.failure?.contains("but the context holds 200") == true, "\(o.failure ?? "no failure")")
        #expect(o.failure?.contains("photo-chelsea.png: \(cat.tokenCost) tokens (7 tiles)") == true, "the turn's own image is costed")
        #expect(await session.turns.isEmpty)
        let ok = await Self.collect(await session.send("Hi", images: [cat], parameters: SamplingParameters(maxNewTokens: 4)))
        #expect(ok.failure == nil && ok.stats != nil)
    }

    /// The refusal names each image on one line of its own: a line break or an escape in a file
    /// name is shown, not sent; counts in the right number.
    @Test func theBudgetRefusalShowsImageNamesInert() async throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"), contextLength: 200)
        let session = ChatSession(engine: engine)
        let bytes = try [UInt8](Data(contentsOf: TestData.url("images/photo-chelsea.png")))
        let one = try await session.attach(imageBytes: bytes, name: "a\nb\u{1b}[31m.png", maxTiles: 1)
        let o = await Self.collect(await session.send(String(repeating: "very long ", count: 80), images: [one],
                                                      parameters: SamplingParameters(maxNewTokens: 4)))
        let failure = o.failure ?? ""
        #expect(failure.contains("a␤b␛[31m.png: \(one.tokenCost) tokens (1 tile)"), "\(failure)")
        #expect(!failure.contains("\n") && !failure.contains("\u{1b}") && failure.contains("(--context)"), "\(failure)")
    }
}
