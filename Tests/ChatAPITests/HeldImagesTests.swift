import Testing
@testable import ChatAPI

/// The images a backend holds: found again by key, pending until shown, released once no turn
/// shows them (or when let go before), ids never reused.
struct HeldImagesTests {
    @Test func attachShowReleaseAndSnapshotOrder() {
        var held = HeldImages<String, String>()
        let a = held.add(key: "ka") { "a\($0)" }, b = held.add(key: "kb") { "b\($0)" }, c = held.add(key: "kc") { "c\($0)" }
        #expect([a, b, c] == ["a1", "b2", "c3"] && held.find("kb") == "b2" && held.count == 3)

        // Turn 1 shows 2 then 1; 3 is pending.
        held.releaseUnshown(shown: [1, 2])
        #expect(held.snapshotOrder(turnImageIDs: [2, 1, 2]) == ([2, 1, 3], [3]))
        // Letting go of a shown image does nothing; of the pending one releases it.
        held.release([1, 3], shown: [1, 2])
        #expect(held[1] == "a1" && held[3] == nil && held.find("kc") == nil)
        // A new conversation: the shown images go, ids go on.
        held.releaseUnshown(shown: [])
        #expect(held.count == 0 && held.find("ka") == nil)
        #expect(held.add(key: "ka") { "a\($0)" } == "a4")
        // The same key again finds the held one; removeAll forgets it but keeps counting.
        #expect(held.find("ka") == "a4")
        held.removeAll()
        #expect(held.find("ka") == nil && held.add(key: "ka") { "a\($0)" } == "a5")
    }

    @Test func aFailedBuildTakesNoId() {
        struct Broken: Error {}
        var held = HeldImages<Int, Int>()
        #expect(throws: Broken.self) { try held.add(key: 1) { _ in throw Broken() } }
        #expect(held.count == 0 && held.add(key: 1) { $0 } == 1)
    }
}
