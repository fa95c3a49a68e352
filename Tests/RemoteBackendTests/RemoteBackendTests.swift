import AsyncHTTPClient
import ChatAPI
import Foundation
import Imaging
@testable import RemoteBackend
import Testing
import TestSupport

/// The Python test server (openai_test_server.py) on loopback, for one test: it checks the
/// shape of each request and stops by itself after a bounded number of requests or seconds.
final class TestServer {
    let process = Process()
    let port: Int
    var endpoint: String { "http://127.0.0.1:\(port)" }

    init(model: String = "test-model", apiKey: String? = nil) throws {
        let script = TestData.packageRoot.appendingPathComponent("Tests/RemoteBackendTests/openai_test_server.py")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, "--model", model, "--max-requests", "100", "--lifetime", "60"]
            + (apiKey.map { ["--api-key", $0] } ?? [])
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = Data()
        while !line.contains(0x0A) {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            line += d
        }
        guard let p = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw Refusal("the test server did not start")
        }
        port = p
    }

    deinit { stop() }

    /// Kills the server (SIGKILL: a test runner may have SIGTERM blocked for its children).
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// The summaries of the completion requests the server got.
    func requests() async throws -> [[String: Any]] {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: endpoint + "/debug/requests"), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 16 << 20)
        return try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [[String: Any]])
    }
}

/// What a turn's events add up to.
struct Collected {
    var text = ""
    var chunks = 0
    var stats: TurnStats?
    var failure: String?
    var attached: AttachedImage?
    var restored: [AttachedImage]?
}

func collect(_ s: AsyncStream<ChatEvent>, onText: (Int) -> Void = { _ in }) async -> Collected {
    var c = Collected()
    for await e in s {
        switch e {
        case .text(let t): c.text += t; c.chunks += 1; onText(c.chunks)
        case .finished(let st): c.stats = st
        case .failed(let m): c.failure = m
        case .attached(let a): c.attached = a
        case .restored(let r): c.restored = r
        case .phase: break
        }
    }
    return c
}

@Suite(.serialized) struct RemoteBackendTests {
    let params = SamplingParameters(maxNewTokens: 64)

    func backend(_ server: TestServer, model: String? = "test-model", key: String? = nil, system: String = "",
                 costing: ImageCosting? = nil) throws -> RemoteChatBackend {
        var c = RemoteConfiguration(endpoint: server.endpoint, apiKey: key, model: model, systemMessage: system, imageCosting: costing)
        c.readTimeoutSeconds = 2
        return try RemoteChatBackend(c)
    }

    @Test func endpointsAreNormalised() {
        #expect(RemoteConfiguration.apiRoot("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1")
        #expect(RemoteConfiguration.apiRoot("http://h:1/v1/") == "http://h:1/v1")
        #expect(RemoteConfiguration.apiRoot("https://h/v1/chat/completions") == "https://h/v1")
        #expect(RemoteConfiguration.apiRoot("ftp://h") == nil)
        #expect(RemoteConfiguration.apiRoot("localhost:8000") == nil)
    }

    @Test func streamsAndResendsTheConversation() async throws {
        let server = try TestServer()
        let b = try backend(server, system: "Be brief.")
        let first = await collect(await b.send("hello", images: [], parameters: params))
        #expect(first.failure == nil)
        #expect(first.text == "echo: hello | images=0 | messages=system,user")
        #expect(first.chunks > 3)
        let st = try #require(first.stats)
        #expect(st.text == first.text && !st.interrupted && st.stoppedAtStopToken)
        #expect(st.promptTokens == 42 && st.countedTokens == first.chunks)
        #expect(st.generatedTokenIDs == (0..<Int32(first.chunks)).map { $0 })      // as our serve adds them

        let second = await collect(await b.send("again", images: [], parameters: params))
        #expect(second.text == "echo: again | images=0 | messages=system,user,assistant,user")
        let r = try await server.requests()
        #expect(r.count == 2)
        let msgs = try #require(r[1]["messages"] as? [[String: Any]])
        #expect(msgs.map { $0["text"] as? String } == ["Be brief.", "hello", first.text, "again"])
        #expect(r[1]["max_tokens"] as? Int == 64 && r[1]["temperature"] as? Double == 0)
        #expect(await b.turns.map(\.answer) == [first.text, second.text])
        // Options outside OpenAI's go only when set: vLLM's min_tokens.
        #expect(r[1]["min_tokens"] == nil)
        var least = params
        least.minNewTokens = 5
        _ = await collect(await b.send("more", images: [], parameters: least))
        #expect(try await server.requests().last?["min_tokens"] as? Int == 5)
    }

    @Test func modelNameComesFromTheServerWhenNotGiven() async throws {
        let server = try TestServer(model: "OpenGVLab/Mini-InternVL-Chat-2B-V1-5")
        let b = try backend(server, model: nil)
        #expect(try await b.modelName() == "OpenGVLab/Mini-InternVL-Chat-2B-V1-5")
        let a = try await b.attach(path: TestData.url("images/photo-rocket.jpg").path, maxTiles: nil)
        #expect(a.tokensPerTile == 256 && a.tiles > 1 && a.tokenCost == 2 + 256 * a.tiles)
        let c = await collect(await b.send("x", images: [a], parameters: params))
        #expect(c.text == "echo: x | images=1 | messages=user")
    }

    @Test func imagesGoAsDataURLsOfTheFileBytes() async throws {
        let server = try TestServer()
        let b = try backend(server, costing: .miniInternVL2B)
        let path = TestData.url("images/photo-rocket.jpg").path
        let bytes = try ImageDecoder.readFile(path: path)
        let a = try await b.attach(path: path, maxTiles: nil)
        let plan = TilePlan(width: a.width, height: a.height, tiling: ImageCosting.miniInternVL2B.tiling, maxTiles: 12,
                            tokensPerTile: 256)
        #expect(a.tiles == plan.tiles && a.tokenCost == plan.tokenCost && a.thumbnail != nil)
        let again = try await b.attach(path: path, maxTiles: nil)
        #expect(again.id == a.id)
        let six = try await b.attach(path: path, maxTiles: 6)
        #expect(six.id != a.id && six.tiles <= 7)
        let c = await collect(await b.send("what is it", images: [a], parameters: params))
        #expect(c.failure == nil && c.text.hasPrefix("echo: what is it | images=1"))
        _ = await collect(await b.send("and now", images: [six], parameters: params))
        let r = try await server.requests()
        let msgs = try #require(r.last?["messages"] as? [[String: Any]])
        let sha = ContentHash.sha256(bytes)
        #expect((msgs[0]["images"] as? [[String: Any]])?.first?["sha256"] as? String == sha)
        #expect((msgs[0]["images"] as? [[String: Any]])?.first?["max_dynamic_patch"] is NSNull)
        #expect((msgs[2]["images"] as? [[String: Any]])?.first?["max_dynamic_patch"] as? Int == 6)
    }

    @Test func unknownModelHidesImageCosts() async throws {
        let server = try TestServer()
        let b = try backend(server)
        let a = try await b.attach(path: TestData.url("images/photo-rocket.jpg").path, maxTiles: nil)
        #expect(a.tokensPerTile == 0 && a.tiles == 0 && a.tokenCost == 0 && a.width > 0)
        await #expect(throws: (any Error).self) { try await b.attach(path: "/nonexistent.png", maxTiles: nil) }
    }

    @Test func serverErrorsAreSanitisedAndLoseNothing() async throws {
        let server = try TestServer()
        let b = try backend(server)
        let ok = await collect(await b.send("first", images: [], parameters: params))
        let bad = await collect(await b.send("#status500", images: [], parameters: params))
        let m = try #require(bad.failure)
        #expect(m.contains("500") && m.contains("engine exploded"))
        #expect(!m.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || (0x80...0x9F).contains($0.value) })
        let notFound = await collect(await b.send("#status404", images: [], parameters: params))
        #expect(notFound.failure?.contains("404") == true && notFound.failure?.contains("\u{1B}") == false)
        #expect(await b.turns.map(\.answer) == [ok.text])
    }

    @Test func wrongKeyIsShownAndRightKeyWorks() async throws {
        let server = try TestServer(apiKey: "sesame")
        let wrong = await collect(await (try backend(server, key: "nope")).send("hi", images: [], parameters: params))
        #expect(wrong.failure?.contains("401") == true && wrong.failure?.contains("Incorrect API key") == true)
        let right = await collect(await (try backend(server, key: "sesame")).send("hi", images: [], parameters: params))
        #expect(right.failure == nil && right.text.hasPrefix("echo: hi"))
    }

    @Test func droppedStreamKeepsWhatWasAnswered() async throws {
        let server = try TestServer()
        let b = try backend(server)
        let c = await collect(await b.send("#drop", images: [], parameters: params))
        #expect(c.text == "echo: #dro")
        #expect(c.stats?.interrupted == true)
        #expect(c.failure?.contains("closed before the answer was complete") == true)
        #expect(await b.turns.map(\.answer) == [c.text])
        let early = await collect(await b.send("#dropearly", images: [], parameters: params))
        #expect(early.stats == nil && early.failure?.contains("closed before") == true)
        #expect(await b.turns.count == 1)
    }

    @Test func silenceTimesOut() async throws {
        let server = try TestServer()
        let b = try backend(server)
        let t0 = Date()
        let c = await collect(await b.send("#stall", images: [], parameters: params))
        #expect(c.failure?.contains("sent nothing for 2 s") == true)
        // The server holds the stream silent for 30 s: ending well before that is the 2 s read
        // timeout, however long this task then waited for a thread of a busy pool.
        #expect(Date().timeIntervalSince(t0) < 15)
        #expect(await b.turns.isEmpty)
    }

    @Test func unreachableServerIsAMessage() async throws {
        // A port nothing listens on: bound and closed by the test server's own start-up is not
        // guaranteed, so use a server stopped before the request.
        let server = try TestServer()
        let endpoint = server.endpoint
        server.stop()
        let b = try RemoteChatBackend(RemoteConfiguration(endpoint: endpoint, model: "m"))
        let c = await collect(await b.send("hi", images: [], parameters: params))
        #expect(c.failure?.hasPrefix("Cannot reach the server at \(endpoint)/v1") == true)
        #expect(throws: RemoteError.self) { try RemoteChatBackend(RemoteConfiguration(endpoint: "nowhere")) }
    }

    @Test func cancelAbortsTheRequestAtOnce() async throws {
        let server = try TestServer()
        let b = try backend(server)
        let c = await collect(await b.send("#slow", images: [], parameters: params)) { n in if n == 5 { b.cancel() } }
        let st = try #require(c.stats)
        // Chunks already handed on before the cancel are still read: with this task kept waiting
        // for a thread of a busy pool, a few seconds' worth (the stream runs 60 s, 600 chunks).
        #expect(st.interrupted && c.failure == nil && c.chunks >= 5 && c.chunks < 50, "\(c.chunks) chunks")
        let last = await b.turns.last
        #expect(last?.interrupted == true && last?.answer == c.text)
        // The server saw the connection go: it stopped writing well before its 60 s.
        var gone: Double?
        for _ in 0..<50 where gone == nil {
            gone = try await server.requests().last?["client_went_away_after_s"] as? Double
            if gone == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect((try #require(gone)) < 10)
        // A cancel before any text: nothing is recorded.
        let quiet = await b.send("#stall", images: [], parameters: params)
        b.cancel()
        let q = await collect(quiet)
        #expect(q.stats == nil && q.failure == nil && q.text.isEmpty)
        #expect(await b.turns.count == 1)
    }

    @Test func regenerateEditAndNewFollowTheLocalContract() async throws {
        let server = try TestServer()
        let b = try backend(server)
        _ = await collect(await b.send("one", images: [], parameters: params))
        _ = await collect(await b.send("two", images: [], parameters: params))
        var p = params
        p.seed = 7
        let re = await collect(await b.regenerate(parameters: p))
        #expect(re.text == "echo: two | images=0 | messages=user,assistant,user")
        #expect(try await server.requests().last?["seed"] as? Int == 7)
        let ed = await collect(await b.editLast("zwei", parameters: params))
        #expect(ed.text.hasPrefix("echo: zwei"))
        #expect(await b.turns.map(\.typed) == ["one", "zwei"])
        let failedEdit = await collect(await b.editLast("#status500", parameters: params))
        #expect(failedEdit.failure != nil)
        #expect(await b.turns.map(\.typed) == ["one", "zwei"])
        await b.newConversation()
        #expect(await b.turns.isEmpty)
        let empty = await collect(await b.regenerate(parameters: params))
        #expect(empty.failure == "there is no answer to regenerate")
    }

    @Test func snapshotAndRestoreKeepImagesAndTurns() async throws {
        let server = try TestServer()
        let b = try backend(server, system: "S", costing: .miniInternVL2B)
        let a = try await b.attach(path: TestData.url("images/photo-rocket.jpg").path, maxTiles: 4)
        _ = await collect(await b.send("look", images: [a], parameters: params))
        let pending = try await b.attach(path: TestData.url("images/photo-chelsea.png").path, maxTiles: nil)
        let snap = await b.snapshot()
        #expect(snap.images.count == 2 && snap.pendingImageIDs == [pending.id] && snap.systemMessage == "S")
        #expect(snap.model.weightFormat == "remote")

        let other = try backend(server, costing: .miniInternVL2B)
        let r = await collect(await other.restore(snap))
        let restored = try #require(r.restored)
        #expect(restored.map(\.tiles) == [a.tiles, pending.tiles] && restored.map(\.sha256) == [a.sha256, pending.sha256])
        #expect(await other.turns.map(\.answer) == snap.turns.map(\.answer))
        _ = await collect(await other.send("more", images: [], parameters: params))
        let msgs = try #require(try await server.requests().last?["messages"] as? [[String: Any]])
        #expect(msgs.map { $0["text"] as? String } == ["S", "look", snap.turns[0].answer, "more"])
        #expect((msgs[1]["images"] as? [[String: Any]])?.first?["max_dynamic_patch"] as? Int == 4)

        await other.release(imageIDs: restored.map(\.id))
        #expect(await other.heldImageCount == 1)        // the one a turn shows stays
        await other.newConversation()
        #expect(await other.heldImageCount == 0)
    }

    /// A video's turn keeps the text typed apart; the server is sent its question with the frames'
    /// markers again later, and a turn the local engine kept (placeholders of its own) as typed.
    @Test func earlierTurnsAreSentAsAskedWithTheTextTypedKept() async throws {
        let server = try TestServer()
        let b = try backend(server, costing: .miniInternVL2B)
        let a = try await b.attach(path: TestData.url("images/photo-rocket.jpg").path, maxTiles: 1)
        _ = await collect(await b.send("Frame1: <image>\nlook", typed: "look", images: [a], parameters: params))
        let first = try #require(await b.turns.first)
        #expect(first.typed == "look" && first.question == "Frame1: <image>\nlook")
        _ = await collect(await b.send("more", images: [], parameters: params))
        var msgs = try #require(try await server.requests().last?["messages"] as? [[String: Any]])
        #expect(msgs.map { $0["text"] as? String } == ["Frame1: <image>\nlook", first.answer, "more"])
        _ = await collect(await b.regenerate(parameters: params))
        #expect(await b.turns.map(\.typed) == ["look", "more"])

        var snap = await b.snapshot()
        snap.turns = [ChatTurn(question: "<image>\nlook", typed: "look", answer: "A rocket.", imageIDs: snap.turns[0].imageIDs, interrupted: false)]
        let other = try backend(server, costing: .miniInternVL2B)
        _ = await collect(await other.restore(snap))
        _ = await collect(await other.send("and?", images: [], parameters: params))
        msgs = try #require(try await server.requests().last?["messages"] as? [[String: Any]])
        #expect(msgs.map { $0["text"] as? String } == ["look", "A rocket.", "and?"])
    }

    /// The decode time is the time over which the text came: none for text that came at once,
    /// so no rate (the status bar had shown 70,000 tok/s), the real span when it was streamed.
    @Test func textThatCameAtOnceHasNoDecodeRate() async throws {
        let server = try TestServer()
        let b = try backend(server)
        let burst = try #require(await collect(await b.send("#burst at once", images: [], parameters: params)).stats)
        #expect(burst.text.hasPrefix("echo: #burst") && burst.generatedTokens > 5)
        #expect(burst.decodeSeconds == 0 && burst.decodeTokensPerSecond == 0, "\(burst.decodeSeconds) s")
        let paced = try #require(await collect(await b.send("#paced please", images: [], parameters: params)).stats)
        // The pieces come 0.1 s apart; the span is measured where they are read, so a first piece
        // read late (this task waiting for a thread of a busy pool) shortens it: half the spacing.
        let pieces = Double(paced.generatedTokens)
        #expect(paced.decodeSeconds >= 0.05 * (pieces - 1) && paced.decodeSeconds < 10, "\(paced.decodeSeconds) s for \(pieces)")
        #expect(paced.decodeTokensPerSecond > 1 && paced.decodeTokensPerSecond <= 1 / 0.05)
    }

    @Test func nonStreamedAnswerIsAccepted() async throws {
        let server = try TestServer()
        let b = try backend(server)
        let c = await collect(await b.send("#json", images: [], parameters: params))
        #expect(c.failure == nil && c.text.hasPrefix("echo: #json") && c.stats?.promptTokens == 11)
    }
}

struct SSEParserTests {
    @Test func eventsSplitAcrossReadsAndLineEndings() throws {
        var p = SSEParser()
        var got: [String] = []
        let stream = ": comment\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata: one\ndata: two\n\ndata:[DONE]\n\n"
        for b in Array(stream.utf8) { got += try p.feed([b]).map { String(decoding: $0, as: UTF8.self) } }
        #expect(got == ["{\"a\":1}", "one\ntwo", "[DONE]"])
    }
}
