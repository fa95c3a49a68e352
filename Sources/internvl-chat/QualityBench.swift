import Chat
import Foundation
import Kernels
import Model

/// `bench --quality`: int8 and q4 against bf16 on the same inputs. For varied prompts (prose,
/// Chinese, code, numbers, a chat template), teacher-forced over every position: the relative
/// error of the last layer's hidden states (||h_q - h|| / ||h||, all positions together) and how
/// often the greedy next token (argmax of the logits) is the same.
enum QualityBench {
    static let texts = [
        "The quick brown fox jumps over the lazy dog. A picture of a cat sleeping on a red sofa, next to a window with the curtains drawn, in the late afternoon light.",
        "这张图片里有一只猫在红色的沙发上睡觉。窗外下着雨，房间里很安静。请描述图片中的细节，包括颜色、形状和位置。",
        "func fibonacci(_ n: Int) -> Int {\n    if n < 2 { return n }\n    return fibonacci(n - 1) + fibonacci(n - 2)\n}\nprint((0..<20).map(fibonacci))",
        "Invoice 2026-11-27: 3 x 12.50 EUR = 37.50 EUR; VAT 19% = 7.13 EUR; total 44.63 EUR. Due in 30 days. Account DE89 3704 0044 0532 0130 00.",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat text is written on the sign in this image?<|im_end|>\n<|im_start|>assistant\nThe sign says \"OPEN 24 HOURS\".",
        "Les images satellites montrent une forte croissance urbaine le long de la côte; die Bevölkerung hat sich verdoppelt; 人口增长了一倍。",
    ]

    static func run(folder: URL, weights: WeightOptions, minPositions: Int = 1000, log: (String) -> Void) throws -> [String: Any] {
        let base = try ChatEngine(folder: folder, contextLength: 8192)
        // Prompts: the texts tokenized, repeated with different openings until there are enough positions.
        var prompts: [[Int32]] = [], total = 0, round = 0
        while total < minPositions {
            for t in texts where total < minPositions {
                let ids = base.tokenizer.encode((round == 0 ? "" : "(\(round)) ") + t)
                prompts.append(ids); total += ids.count
            }
            round += 1
        }
        log("quality: bf16 reference over \(total) positions in \(prompts.count) prompts…")
        let reference = prompts.map { base.model.hiddenAndLogits($0) }
        var out: [String: Any] = ["positions": total, "prompts": prompts.count]
        var errs: [String: Double] = [:], agree: [String: Double] = [:]
        for q in [Quantization.q8, .q4] {
            log("quality: \(q.rawValue)…")
            let engine = try ChatEngine(folder: folder, contextLength: 8192, weights: q,
                                        cache: weights.noWeightCache ? nil : QuantCache(directory: QuantCache.defaultDirectory()))
            var num = 0.0, den = 0.0, same = 0
            for (p, ref) in zip(prompts, reference) {
                let got = engine.model.hiddenAndLogits(p)
                for i in ref.hidden.indices { let d = Double(got.hidden[i] - ref.hidden[i]); num += d * d; den += Double(ref.hidden[i]) * Double(ref.hidden[i]) }
                let v = engine.model.vocabSize
                for pos in 0..<p.count where argmax(got.logits, pos * v, v) == argmax(ref.logits, pos * v, v) { same += 1 }
            }
            errs[q.rawValue] = (num / den).squareRoot()
            agree[q.rawValue] = Double(same) / Double(total)
        }
        out["hidden_rel_error"] = errs
        out["top1_agreement"] = agree
        return out
    }

    static func argmax(_ a: [Float], _ start: Int, _ n: Int) -> Int {
        var best = start
        for i in start..<(start + n) where a[i] > a[best] { best = i }
        return best - start
    }
}
