import Chat
import Foundation
import Kernels
import Model
import Testing
import TestSupport

/// Batched decoding (`LanguageModel.forwardBatch`): several sequences of different lengths, one
/// new token each per step, give every sequence the logits it gets decoded alone, bit for bit, in
/// every weight format; and the caches end as the lone runs' caches (the next steps agree too).
struct BatchedDecodeTests {
    @Test(arguments: [Quantization?.none, .q8, .q4])
    func eachSequenceGetsItsOwnLogits(q: Quantization?) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("batch-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let e = try ChatEngine(folder: TestData.url("tiny-b"), weights: q, cache: q == nil ? nil : QuantCache(directory: dir))
        let m = e.model
        let prompts: [[Int32]] = [[1, 300, 301, 302, 303], [1, 410, 420, 430, 440, 450, 460, 470, 480], [1, 999], [1, 512, 513]]
        let batched = prompts.map { p -> KVCache in let c = m.makeCache(); _ = m.forward(p, cache: c, logits: .none); return c }
        let alone = prompts.map { p -> KVCache in let c = m.makeCache(); _ = m.forward(p, cache: c, logits: .none); return c }
        var next: [Int32] = [7, 8, 9, 10]
        for step in 0..<4 {
            let x = FloatBuffer(count: next.count * m.hidden)
            m.embed(next, into: x.data)
            let together = Array(m.forwardBatch(embeddings: x.data, caches: batched))
            #expect(together.count == next.count * m.vocabSize)
            for (k, id) in next.enumerated() {
                let own = m.forward([id], cache: alone[k], logits: .last)
                let row = Array(together[(k * m.vocabSize)..<((k + 1) * m.vocabSize)])
                let differing = zip(row, own).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(q.map { "\($0)" } ?? "bf16") step \(step), sequence \(k): \(differing) logits differ")
                next[k] = Int32(own.indices.max { own[$0] < own[$1] }!)
            }
            #expect(batched.map(\.count) == alone.map(\.count))
        }
    }
}
