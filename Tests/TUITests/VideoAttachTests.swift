import ChatAPI
import Foundation
import Imaging
import Testing
import TestSupport
@testable import TUI

/// One colour over the whole frame.
func plain(_ r: UInt8, _ g: UInt8, _ b: UInt8, width: Int = 160, height: Int = 120) -> RGBImage {
    RGBImage(width: width, height: height, pixels: (0..<(width * height)).flatMap { _ in [r, g, b] })
}

let frames = [plain(230, 20, 20), plain(20, 230, 20), plain(20, 20, 230)].enumerated().map { i, t in
    AttachedImage(id: 10 + i, name: "/tmp/f/clip-frame\(i * 5).png", width: 320, height: 240, tiles: 1, tokenCost: 258,
                  grid: TileGrid(cols: 1, rows: 1), tiling: TilingOptions(maxTiles: 1), tokensPerTile: 256, thumbnail: t)
}

struct VideoAttachTests {
    @Test func attachingAVideoSamplesItsFramesWithOneTileEach() {
        var s = AppState()
        s.maxTiles = 6
        _ = reduce(&s, .type("/attach /clips/clip.MP4"))
        #expect(reduce(&s, .enter) == [.attachVideo(path: "/clips/clip.MP4", segments: 8, maxTiles: 1)])
        #expect(s.messages.last?.text == "Sampling 8 frames of clip.MP4…")
        #expect(reduce(&s, .attachPaths(["/a/b.webm", "/a/c.jpg"])) == [.attachVideo(path: "/a/b.webm", segments: 8, maxTiles: 1),
                                                                        .attach(path: "/a/c.jpg", maxTiles: 6)])
        // Camcorder (MPEG-TS), Windows Media and animated GIF files are videos FFmpeg reads, not images.
        for name in ["/cam/00001.MTS", "/cam/clip.m2ts", "/w/talk.wmv", "/w/talk.asf", "/g/loop.gif", "/d/VTS_01_1.VOB"] {
            #expect(reduce(&s, .attachPaths([name])) == [.attachVideo(path: name, segments: 8, maxTiles: 1)], "\(name)")
        }
    }

    @Test func framesArePendingAsOneFilmstripWithTheirCostAndAskedAsFrameK() {
        var s = AppState()
        _ = reduce(&s, .videoAttached(path: "/v/clip.mp4", frames: [0, 5, 10], images: frames))
        #expect(s.pending.map(\.id) == [10, 11, 12])
        let note = s.messages.last?.text ?? ""
        #expect(note.contains("clip.mp4: 3 frames (0, 5, 10), 3 x 1 tile x 256 = 774 tokens"), "\(note)")
        let panel = render(s, width: 120, height: 30).text
        #expect(panel.contains("1. clip.mp4"), "\(panel)")
        #expect(panel.contains("3 frames x 1 tile x 256") && panel.contains("= 774 tokens"), "\(panel)")
        #expect(!panel.contains("clip-frame5.png"))                    // one entry, not three
        #expect(panel.contains("▀") || panel.contains("▄"))             // the strip drawn in half-blocks
        _ = reduce(&s, .type("What happens?"))
        #expect(reduce(&s, .enter) == [.send(question: "Frame1: <image>\nFrame2: <image>\nFrame3: <image>\nWhat happens?", typed: "What happens?",
                                             images: frames)])
        #expect(s.video == nil && s.pending.isEmpty)
    }

    @Test func stripShowsEachFrameInOrder() {
        let strip = Filmstrip.join(frames.compactMap(\.thumbnail))
        #expect(strip.height == Filmstrip.frameHeight)
        let w = (160 * 64 + 60) / 120
        #expect(strip.width == 3 * w + 2)
        func px(_ x: Int) -> [UInt8] { let o = (10 * strip.width + x) * 3; return Array(strip.pixels[o..<(o + 3)]) }
        #expect(px(w / 2) == [230, 20, 20] && px(w + 1 + w / 2) == [20, 230, 20] && px(2 * w + 2 + w / 2) == [20, 20, 230])
    }

    @Test func sixelPlacesTheStripWiderThanTall() {
        var s = AppState()
        s.graphics = .sixel
        _ = reduce(&s, .videoAttached(path: "/v/clip.mp4", frames: [0, 5, 10], images: frames))
        let g = render(s, width: 120, height: 30)
        #expect(g.placements.count == 1)
        #expect(g.placements.first?.imageID == s.video?.strip.id && (g.placements.first?.rect.width ?? 0) > 3 * (g.placements.first?.rect.height ?? 9))
    }

    @Test func framesResamplesThePendingVideo() {
        var s = AppState()
        _ = reduce(&s, .videoAttached(path: "/v/clip.mp4", frames: [0, 5, 10], images: frames))
        _ = reduce(&s, .type("/frames 2"))
        #expect(reduce(&s, .enter) == [.attachVideo(path: "/v/clip.mp4", segments: 2, maxTiles: 1)])
        let two = [frames[2], frames[0]].enumerated().map { i, f in
            AttachedImage(id: 20 + i, name: f.name, width: f.width, height: f.height, tiles: 1, tokenCost: 258, thumbnail: f.thumbnail)
        }
        _ = reduce(&s, .videoAttached(path: "/v/clip.mp4", frames: [3, 8], images: two))
        #expect(s.pending.map(\.id) == [20, 21] && s.video?.frames == [3, 8])
        _ = reduce(&s, .type("/frames 0")); _ = reduce(&s, .enter)
        #expect(s.messages.last?.kind == .error && s.segments == 2)
        #expect(!s.messages.contains { $0.text.contains("replaces") }, "sampling the same clip again replaces nothing")
    }

    /// A second video replaces the first (one clip a message) and says so; its frames leave.
    @Test func aSecondVideoSaysItReplacesTheFirst() {
        var s = AppState()
        _ = reduce(&s, .videoAttached(path: "/v/first.mp4", frames: [0, 5, 10], images: frames))
        let other = frames.map { f in
            AttachedImage(id: f.id + 10, name: f.name, width: f.width, height: f.height, tiles: 1, tokenCost: 258, thumbnail: f.thumbnail)
        }
        _ = reduce(&s, .videoAttached(path: "/v/second.mkv", frames: [1, 2, 3], images: other))
        #expect(s.pending.map(\.id) == other.map(\.id) && s.video?.path == "/v/second.mkv")
        #expect(s.messages.contains { $0.text.hasPrefix("second.mkv replaces first.mp4: one video a message") }, "\(s.messages.map(\.text))")
    }

    @Test func aBadVideoIsOneErrorAndKeepsTheTypedText() throws {
        var s = AppState()
        _ = reduce(&s, .type("/attach \(TestData.url("videos/bad-audio-only.wav").path)"))
        _ = reduce(&s, .enter)
        _ = reduce(&s, .type("what is said?"))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("frames-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        for bad in ["bad-audio-only.wav", "bad-truncated.mp4", "bad-garbage.mp4"] {
            let path = TestData.url("videos/\(bad)").path
            #expect(throws: (any Error).self) { try VideoFiles.sampleFrames(path, segments: 8, into: folder) }
            do { _ = try VideoFiles.sampleFrames(path, segments: 8, into: folder) } catch { _ = reduce(&s, .attachFailed(error.localizedDescription)) }
        }
        #expect(s.messages.filter { $0.kind == .error }.count == 3)
        #expect(s.messages.contains { $0.text.contains("bad-audio-only.wav has no video stream") })
        #expect(s.input == "what is said?" && s.pending.isEmpty && s.video == nil)
    }

    @Test func sampledFramesAreLosslessPNGsOfTheModelCardsIndices() throws {
        let path = TestData.url("videos/mpeg4-25fps.mp4").path
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("frames-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let sampled = try VideoFiles.sampleFrames(path, segments: 8, into: folder)
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: TestData.url("videos/cases.json"))) as! [[String: Any]]
        let mpeg4 = try #require(cases.first { $0["file"] as? String == "mpeg4-25fps.mp4" })
        let want = try #require((mpeg4["indices"] as? [String: [Int]])?["8"])
        #expect(sampled.map(\.index) == want)            // decord's get_index for 8 segments
        for f in sampled {
            let decoded = try ImageDecoder.decode(path: f.file)
            let want = try Data(contentsOf: TestData.url("videos/mpeg4-25fps.mp4-\(f.index).rgb"))
            #expect(decoded.pixels == [UInt8](want), "frame \(f.index)")
        }
    }

    @Test func detachAndTilesNumberThePanelsEntries() {
        var s = AppState()
        let photo = AttachedImage(id: 30, name: "/p/cat.jpg", width: 900, height: 600, tiles: 7, tokenCost: 1794,
                                  grid: TileGrid(cols: 3, rows: 2), tiling: TilingOptions(maxTiles: 6), tokensPerTile: 256)
        _ = reduce(&s, .attached(photo))
        _ = reduce(&s, .videoAttached(path: "/v/clip.mp4", frames: [0, 5, 10], images: frames))
        #expect(shownPending(s).map(\.id) == [30, s.video!.strip.id])
        _ = reduce(&s, .type("/tiles 2 4")); #expect(reduce(&s, .enter).isEmpty)
        #expect(s.messages.last?.kind == .error && s.messages.last?.text.contains("one tile each") == true)
        _ = reduce(&s, .type("/tiles 2"))
        #expect(reduce(&s, .enter) == [.retile(oldID: 30, path: "/p/cat.jpg", maxTiles: 2)])    // the frames stay at one tile
        _ = reduce(&s, .type("/detach 3")); _ = reduce(&s, .enter)
        #expect(s.messages.last?.text == "Usage: /detach N, with N from 1 to 2")
        _ = reduce(&s, .type("/detach 2")); _ = reduce(&s, .enter)
        #expect(s.pending.map(\.id) == [30] && s.video == nil)                // the whole video, not its second frame
        _ = reduce(&s, .videoAttached(path: "/v/clip.mp4", frames: [0, 5, 10], images: frames))
        _ = reduce(&s, .type("/detach 1")); _ = reduce(&s, .enter)
        #expect(s.pending.map(\.id) == [10, 11, 12] && s.video != nil && s.retiling.isEmpty)
        let recut = AttachedImage(id: 31, name: "/p/cat.jpg", width: 900, height: 600, tiles: 3, tokenCost: 770,
                                  grid: TileGrid(cols: 2, rows: 1), tiling: TilingOptions(maxTiles: 2), tokensPerTile: 256)
        _ = reduce(&s, .retiled(oldID: 30, recut))                           // the re-cut of the detached photo arrives late
        #expect(s.pending.map(\.id) == [10, 11, 12])
        _ = reduce(&s, .type("Go"))
        let sent = reduce(&s, .enter).map { e -> String in
            if case .send(let q, _, let images) = e { return "\(q) \(images.map(\.id))" }
            return String(describing: e).prefix(60) + "…"
        }
        #expect(sent == ["Frame1: <image>\nFrame2: <image>\nFrame3: <image>\nGo [10, 11, 12]"])
    }

    /// Sent, the video stays one entry: in its turn of the conversation and in the panel's "In
    /// this conversation", the filmstrip with the frames' count and cost, not a thumbnail per frame.
    @Test func aSentVideoIsOneFilmstripInTheConversation() {
        var s = AppState()
        let photo = AttachedImage(id: 30, name: "/p/cat.jpg", width: 900, height: 600, tiles: 7, tokenCost: 1794,
                                  grid: TileGrid(cols: 3, rows: 2), tiling: TilingOptions(maxTiles: 6), tokensPerTile: 256,
                                  thumbnail: plain(200, 200, 200))
        _ = reduce(&s, .attached(photo))
        _ = reduce(&s, .videoAttached(path: "/v/clip.mp4", frames: [0, 5, 10], images: frames))
        let strip = s.video!.strip
        _ = reduce(&s, .type("What happens?")); _ = reduce(&s, .enter)
        let sent = s.messages.last { $0.kind == .user }!
        #expect(sent.images.map(\.id) == [30, 10, 11, 12] && sent.shownImages.map(\.id) == [30, strip.id])
        #expect(s.conversationImages.map(\.id) == [30, strip.id])
        for graphics in [GraphicsMode.blocks, .none] {
            s.graphics = graphics
            let screen = render(s, width: 120, height: 60).text
            #expect(!screen.contains("clip-frame"), "\(graphics): \(screen)")
            #expect(screen.contains("3 frames, 3 tiles, 774 tokens"), "\(graphics): \(screen)")
        }
        s.graphics = .sixel
        let g = render(s, width: 120, height: 60)
        #expect(g.placements.filter { $0.imageID == strip.id }.count == 2)      // the turn's strip and the panel's
        #expect(!g.placements.contains { [10, 11, 12].contains($0.imageID) })
    }

    /// `/edit` of a video's turn asks the new question with the frames' markers, and shows it as typed.
    @Test func editingAVideosQuestionKeepsItsFrames() {
        var s = AppState()
        _ = reduce(&s, .videoAttached(path: "/v/clip.mp4", frames: [0, 5, 10], images: frames))
        _ = reduce(&s, .type("What happens?")); _ = reduce(&s, .enter)
        var st = TurnStats(); st.text = "A ball rolls."
        _ = reduce(&s, .event(.finished(st))); _ = reduce(&s, .answerEnded)
        _ = reduce(&s, .type("/edit Who is in it?"))
        #expect(reduce(&s, .enter) == [.edit("Frame1: <image>\nFrame2: <image>\nFrame3: <image>\nWho is in it?", typed: "Who is in it?")])
        #expect(s.messages.last { $0.kind == .user }?.text == "Who is in it?")
    }

    /// A saved turn's frames are found again from its question (`FrameK: <image>`, other images
    /// `<image>`), named after their files; a turn without frames has no video.
    @Test func aReloadedTurnFindsItsVideoInItsQuestion() throws {
        let photo = AttachedImage(id: 30, name: "/p/cat.jpg", width: 900, height: 600, tiles: 7, tokenCost: 1794)
        let v = try #require(PendingVideo.sent(question: "<image>\nFrame1: <image>\nFrame2: <image>\nFrame3: <image>\nWhat happens?",
                                               images: [photo] + frames))
        #expect(v.imageIDs == [10, 11, 12] && v.frames == [0, 5, 10] && v.path == "clip")
        #expect(v.strip.tokenCost == 774 && v.strip.grid.cols == 3)
        #expect(PendingVideo.sent(question: "What is this?", images: [photo]) == nil)
        #expect(PendingVideo.sent(question: "Frame1: <image>\nFrame3: <image>\nx", images: frames)?.imageIDs == [10])   // numbered in order only
        let framed = "<image>\nFrame1: <image>\nFrame2: <image>\nFrame3: <image>\nWhat happens?"
        for typed in ["What happens?", framed] {          // kept apart, or (older saves) the question itself
            let m = userMessage(ChatTurn(question: framed, typed: typed, answer: "", imageIDs: [30, 10, 11, 12], interrupted: false),
                                images: [photo] + frames)
            #expect(m.text == "What happens?" && m.video?.imageIDs == [10, 11, 12], "\(typed)")
        }
    }
}
