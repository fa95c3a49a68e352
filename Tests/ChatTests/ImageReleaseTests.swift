import Foundation
import Testing
import TestSupport
@testable import Chat
import ChatAPI

/// Encoded images live as long as a turn shows them or a next message may (never shown yet):
/// a new conversation releases the images its turns showed and keeps the pending ones, and
/// image ids are never given twice.
struct ImageReleaseTests {
    static let p = SamplingParameters(maxNewTokens: 2)

    @Test func imagesNoTurnShowsAreReleased() async throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"))
        let session = ChatSession(engine: engine)
        func attach(_ name: String, _ tiles: Int? = nil) async throws -> AttachedImage {
            try await session.attach(path: TestData.url("images/" + name).path, maxTiles: tiles)
        }
        func send(_ q: String, _ images: [AttachedImage]) async -> String? {
            await ChatSessionTests.collect(await session.send(q, images: images, parameters: Self.p)).failure
        }
        let cat = try await attach("photo-chelsea.png")
        let rocket = try await attach("photo-rocket.jpg")            // for a later message
        #expect(await send("Describe.", [cat]) == nil)
        #expect(await send("More.", []) == nil)
        #expect(await send("And this?", [rocket]) == nil)
        #expect(await session.heldImageCount == 2)
        #expect(await ChatSessionTests.collect(await session.regenerate(parameters: Self.p)).failure == nil)
        #expect(await session.heldImageCount == 2)

        let camera = try await attach("photo-camera.png")            // pending across /new
        await session.newConversation()
        #expect(await session.heldImageCount == 1)
        #expect(await send("Describe.", [cat]) != nil, "a released image is not attached any more")
        #expect(await send("Describe.", [camera]) == nil)
        await session.newConversation()
        #expect(await session.heldImageCount == 0)

        let again = try await attach("photo-chelsea.png")
        #expect(Set([cat.id, rocket.id, camera.id, again.id]).count == 4, "ids are not reused")
        #expect(await send("Describe.", [again]) == nil)
    }

    @Test func aSnapshotCarriesTheImagesNotSentYetAndARestoreBringsThemBack() async throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"))
        let session = ChatSession(engine: engine)
        let cat = try await session.attach(path: TestData.url("images/photo-chelsea.png").path, maxTiles: nil)
        #expect(await ChatSessionTests.collect(await session.send("Describe.", images: [cat], parameters: Self.p)).failure == nil)
        let rocket = try await session.attach(path: TestData.url("images/photo-rocket.jpg").path, maxTiles: 2)
        let snap = await session.snapshot()
        #expect(snap.images.map(\.info.id) == [cat.id, rocket.id] && snap.pendingImageIDs == [rocket.id])
        let other = ChatSession(engine: engine)
        var restored: [AttachedImage] = []
        for await ev in await other.restore(snap) { if case .restored(let r) = ev { restored = r } }
        #expect(restored.count == 2 && restored[1].tiles == rocket.tiles && restored[1].name == rocket.name)
        #expect(await other.heldImageCount == 2, "the image for the next question stays attached")
        #expect(await ChatSessionTests.collect(await other.send("And this?", images: [restored[1]], parameters: Self.p)).failure == nil)
    }
}

/// Detaching an image before it is sent gives back its file bytes and vision tokens; images a
/// turn shows are kept whatever the front end asks.
struct DetachReleaseTests {
    @Test func detachedImagesAreReleasedAndShownOnesStay() async throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"))
        let session = ChatSession(engine: engine)
        let empty = await session.heldImageBytes
        #expect(empty == 0)
        let cat = try await session.attach(path: TestData.url("images/photo-chelsea.png").path, maxTiles: nil)
        let rocket = try await session.attach(path: TestData.url("images/photo-rocket.jpg").path, maxTiles: 2)
        #expect(await session.heldImageCount == 2)
        #expect(await session.heldImageBytes > 0)
        await session.release(imageIDs: [rocket.id])
        #expect(await session.heldImageCount == 1)
        #expect(await ChatSessionTests.collect(await session.send("Describe.", images: [rocket], parameters: ImageReleaseTests.p)).failure != nil,
                "a detached image is not attached any more")
        #expect(await ChatSessionTests.collect(await session.send("Describe.", images: [cat], parameters: ImageReleaseTests.p)).failure == nil)
        let shown = await session.heldImageBytes
        await session.release(imageIDs: [cat.id])
        #expect(await session.heldImageCount == 1)
        #expect(await session.heldImageBytes == shown, "a turn shows it")

        for _ in 0..<5 {
            let again = try await session.attach(path: TestData.url("images/photo-rocket.jpg").path, maxTiles: 2)
            await session.release(imageIDs: [again.id])
        }
        #expect(await session.heldImageCount == 1)
        #expect(await session.heldImageBytes == shown, "attach/detach cycles hold nothing")
        await session.newConversation()
        #expect(await session.heldImageCount == 0)
        #expect(await session.heldImageBytes == 0)
    }
}
