import Checkpoint
import Conversations
import Foundation
import Imaging
import OpenAIAPI
import Tokenizer

/// One parser of untrusted bytes each, as libFuzzer targets (see docs/testing.md, "Fuzzing").
/// A harness returns normally for any input: a thrown error is the parser refusing the input,
/// which is the expected outcome; a trap, a sanitizer report or a hang is a bug.
enum Harness: String, CaseIterable {
    case safetensors, config, tokenizer, bpe, jpeg, png, webp, conversation, export, request

    /// Inputs above this are skipped (libFuzzer's -max_len keeps them smaller anyway).
    static let maxInput = 1 << 20

    /// Whether the parser accepted the input.
    @discardableResult @inline(never)
    func run(_ input: [UInt8]) -> Bool {
        guard input.count <= Self.maxInput else { return false }
        switch self {
        case .safetensors:
            guard let f = try? SafeTensorsFile(path: Scratch.write(input, as: "model.safetensors")) else { return false }
            var sum: UInt8 = 0
            for t in f.tensors.values where t.end > t.start {
                let p = f.pointer(t).assumingMemoryBound(to: UInt8.self)
                sum &+= p[0] &+ p[t.end - t.start - 1]        // the first and last byte of each tensor are mapped
            }
            blackHole(sum)
            return true
        case .config:
            return (try? ModelConfiguration.load(from: URL(fileURLWithPath: Scratch.write(input, as: "config.json")))) != nil
        case .tokenizer:
            guard let model = try? SentencePieceModel(bytes: input),
                  let t = try? InternLM2Tokenizer(model: model, addedTokens: ["<|im_end|>": 2]) else { return false }
            let ids = t.encode("Hello, 世界! <|im_end|> 12345\n\ttabs and  spaces \u{1F600}")
            blackHole(t.decode(ids, skipSpecialTokens: false))
            return true
        case .bpe:
            _ = Scratch.write(input, as: "tokenizer.json")
            guard let t = try? ByteLevelBPETokenizer(folder: URL(fileURLWithPath: Scratch.dir)) else { return false }
            let ids = t.encode("Hello, 世界! <|im_end|> 12345\n\ttabs and  spaces \u{1F600} it's")
            blackHole(t.decode(ids, skipSpecialTokens: false))
            return true
        case .jpeg: return decode(input, signature: [(0, [0xFF, 0xD8, 0xFF])])
        case .png: return decode(input, signature: [(0, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])])
        case .webp: return decode(input, signature: [(0, Array("RIFF".utf8)), (8, Array("WEBP".utf8))])
        case .conversation:
            return (try? ConversationStore.decode(Data(input), path: "conversation.json")) != nil
        case .export:
            return (try? ConversationStore.parseExport(Data(input), path: "export.json")) != nil
        case .request:
            var options = ServerOptions()
            options.allowedFolder = URL(fileURLWithPath: Scratch.dir)
            guard let body = try? ChatCompletionBody.parse(input, options: options) else { return false }
            blackHole(body.request.messages.map { $0.images.map(\.bytes.count) })
            return true
        }
    }

    /// The bytes with the format's signature in place, so each harness stays in its decoder.
    private func decode(_ input: [UInt8], signature: [(Int, [UInt8])]) -> Bool {
        var b = input
        for (at, sig) in signature where b.count >= at + sig.count { b.replaceSubrange(at..<(at + sig.count), with: sig) }
        guard let image = try? ImageDecoder.decode(bytes: b, name: "input", maxPixels: 1 << 22) else { return false }
        blackHole(image.thumbnail(fitting: 64))
        return true
    }
}

/// A per-process folder for harnesses whose parser reads a path.
enum Scratch {
    nonisolated(unsafe) static var dir: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let d = base + "/internvl-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    static func write(_ bytes: [UInt8], as name: String) -> String {
        let p = dir + "/" + name
        _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }

    static func remove() { try? FileManager.default.removeItem(atPath: dir) }
}

/// Keeps a result alive so the optimiser cannot drop the parsing that made it.
@inline(never) @_optimize(none) func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }
