// A test helper for the crash-safety tests (Tests/ConversationsTests): saves a conversation
// through the real store code, over and over, so that a test can SIGKILL it at any point of a
// save, or fill the disk under it, and then check what is left.
//
//   conversation-writer loop STORE IMAGES KB    save versions 0, 1, 2, ... forever ("saved K" after each)
//   conversation-writer save STORE IMAGES KB FROM TO   save versions FROM...TO
//   conversation-writer fill STORE KB           save version 0 (one image), then version 1 (two new images): report the error
//   conversation-writer verify STORE            print "version K" of the saved conversation, or the error (status 1)
import ChatAPI
import Conversations
import Foundation
import Imaging

/// One line on stdout, unbuffered: the test reads it while this process runs.
func say(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }
let args = CommandLine.arguments
guard args.count >= 3 else { say("usage: conversation-writer loop|fill|verify STORE ..."); exit(2) }
let store = ConversationStore(root: URL(fileURLWithPath: args[2]))
let model = ModelIdentity(name: "test", configSHA256: String(repeating: "ab", count: 32), weightFormat: "bf16")

/// Version `k`: one turn whose answer names k, with `count` images; the images change every
/// second version (so some saves write new image files and some do not).
func version(_ k: Int, images count: Int, kb: Int) -> SessionSnapshot {
    var images: [SessionSnapshot.Image] = []
    for i in 0..<count {
        var rng = SplitMix(seed: UInt64((k / 2) * 1000 + i))
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47]
        for _ in 0..<(kb * 1024 - 4) { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
        let info = AttachedImage(id: i + 1, name: "img\(i).png", width: 10, height: 10, tiles: 1, tokenCost: 258,
                                 grid: TileGrid(cols: 1, rows: 1), tiling: TilingOptions(maxTiles: 6), tokensPerTile: 256,
                                 sha256: ContentHash.sha256(bytes))
        images.append(.init(info: info, bytes: bytes, tokens: [Float](repeating: Float(k / 2), count: 64)))
    }
    let turn = ChatTurn(question: "question", typed: "question", answer: "version \(k)", imageIDs: images.map(\.info.id), interrupted: false)
    return SessionSnapshot(systemMessage: "system", turns: [turn], images: images, model: model)
}

struct SplitMix { var s: UInt64; init(seed: UInt64) { s = seed }
    mutating func next() -> UInt64 { s &+= 0x9E37_79B9_7F4A_7C15; var z = s; z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9; z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB; return z ^ (z >> 31) } }

func handle() throws -> ConversationStore.Handle {
    if let s = store.list().first(where: { $0.name == "crash" }) { return try store.open(s.id).0 }
    let h = try store.create()
    try store.rename(h, to: "crash")
    return h
}

func verify() -> Int32 {
    do {
        let id = try store.resolve("crash")
        let f = try store.read(id)
        let loaded = store.load(f, model: model)
        guard loaded.problems.isEmpty else { say("problems: \(loaded.problems)"); return 1 }
        guard let answer = f.turns.first?.answer, answer.hasPrefix("version ") else { say("bad answer"); return 1 }
        let k = Int(answer.dropFirst(8))!
        guard loaded.snapshot.images.map(\.bytes) == version(k, images: f.images.count, kb: f.images.first.map { $0.bytes / 1024 } ?? 1).images.map(\.bytes)
        else { say("images differ from version \(k)"); return 1 }
        guard loaded.cachedVision == f.images.count, loaded.snapshot.images.allSatisfy({ $0.tokens == [Float](repeating: Float(k / 2), count: 64) })
        else { say("vision tokens differ from version \(k)"); return 1 }
        say("version \(k)")
        return 0
    } catch {
        say("error: \((error as? LocalizedError)?.errorDescription ?? "\(error)")")
        return 1
    }
}

switch args[1] {
case "loop":
    let count = Int(args[3])!, kb = Int(args[4])!
    let h = try handle()
    var k = 0
    while true {
        try store.save(version(k, images: count, kb: kb), to: h)
        say("saved \(k)")
        k += 1
    }
case "save":
    let count = Int(args[3])!, kb = Int(args[4])!, from = Int(args[5])!, to = Int(args[6])!
    let h = try handle()
    for k in from...to {
        try store.save(version(k, images: count, kb: kb), to: h)
        say("saved \(k)")
    }
case "fill":
    let kb = Int(args[3])!
    let h = try handle()
    try store.save(version(0, images: 1, kb: kb), to: h)
    say("saved 0")
    do {
        try store.save(version(2, images: 2, kb: kb), to: h)
        say("saved 2 (the disk did not fill)")
    } catch {
        say("error: \((error as? LocalizedError)?.errorDescription ?? "\(error)")")
    }
    h.close()
    exit(verify())
case "verify":
    exit(verify())
default:
    say("unknown mode \(args[1])"); exit(2)
}
