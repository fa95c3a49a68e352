import Foundation
import Kernels
import Testing
import TestSupport
@testable import Chat
import ChatAPI

/// Image chats end to end on the tiny models against the reference: single image, two numbered
/// images, an image in the history then a follow-up, a Chinese question, an empty system message.
struct ImageChatTests {
    static func cases(_ model: String) throws -> [[String: Any]] {
        try TestData.json(TestData.url(model + "/golden-images.json"))["cases"] as! [[String: Any]]
    }

    @Test(arguments: TestData.tinyModels + ["tiny-qwen2", "tiny-phi3"])
    func greedyImageAnswersMatchReference(model: String) throws {
        let engine = try ChatEngine(folder: TestData.url(model))
        var encoded: [String: (tiles: Int, tokens: [Float])] = [:]
        for (k, c) in try Self.cases(model).enumerated() {
            let images = c["images"] as! [String]
            for i in images where encoded[i] == nil {
                let p = try engine.prepareImage(path: TestData.url("images/" + i).path)
                encoded[i] = (p.tiles, engine.encodeImage(p))
            }
            let history = (c["history"] as! [[String]]).map { ($0[0], $0[1]) }
            let template = try ChatTemplate.named(engine.configuration.template)
            let ids = try engine.promptIDs(template: template.with(systemMessage: c["system"] as! String), history: history,
                                           question: c["question"] as! String, tileCounts: images.map { encoded[$0]!.tiles })
            #expect(images.map { encoded[$0]!.tiles } == (c["tiles"] as! [Int]))
            #expect(ids == TestData.ints(c["prompt_ids"]), "\(model): prompt ids differ for \(images)")
            let tokens = images.flatMap { encoded[$0]!.tokens }
            let embeddings = try engine.promptEmbeddings(ids, imageTokens: tokens)
            let want = try TestData.logits(TestData.url(model + "/golden-images-logits.f64"), index: k,
                                           vocab: engine.model.vocabSize)
            // The model's arithmetic within 1e-4 with a float32 KV cache; the default float16 cache
            // rounds every key and value once (relative 2^-11), measured up to 2e-4 here.
            for (precision, bound) in [(KVPrecision.float32, 1e-4), (.float16, 5e-4)] {
                let input = FloatBuffer(count: ids.count * engine.model.hidden)
                input.data.update(from: embeddings.data, count: ids.count * engine.model.hidden)
                let logits = engine.model.forward(embeddings: input.data, count: ids.count,
                                                  cache: engine.model.makeCache(precision: precision))
                let num = zip(logits, want).map { abs(Double($0) - $1) }.max()!, den = want.map(abs).max()!
                #expect(num / den < bound, "\(model) \(images) \(precision) KV: logits relative error \(num / den)")
            }
            let r = try engine.generate(prompt: ids, imageTokens: tokens, parameters: SamplingParameters(maxNewTokens: 32))
            #expect(r.tokenIDs == TestData.ints(c["greedy_ids"]), "\(model) \(images): greedy answer differs")
            #expect(r.text == c["response"] as! String)
        }
    }

    /// Without placeholders, images go before the question as the official chat and the model
    /// card's multi-image form put them.
    @Test func placeholdersAreAddedAsTheOfficialChatDoes() throws {
        #expect(ImagePrompt.withPlaceholders(question: "Describe.", history: [], imageCount: 1) == "<image>\nDescribe.")
        #expect(ImagePrompt.withPlaceholders(question: "Q", history: [], imageCount: 2) == "Image-1: <image>\nImage-2: <image>\nQ")
        #expect(ImagePrompt.withPlaceholders(question: "Q", history: [("<image>\nA", "B")], imageCount: 1) == "Q")
        let e = try ImagePrompt.expand("a<image>b<image>c", tileCounts: [2], tokensPerTile: 1)
        #expect(e == "a<img><IMG_CONTEXT><IMG_CONTEXT></img>b<image>c")
        #expect(throws: ChatError.imagePlaceholders(images: 2, placeholders: 1)) {
            try ImagePrompt.expand("<image>", tileCounts: [1, 1], tokensPerTile: 4)
        }
        let engine = try ChatEngine(folder: TestData.url("tiny-a"))
        let c = try Self.cases("tiny-a")
        let auto = try engine.promptIDs(template: ChatTemplate.internLM2Chat, history: [], question: "What differs?", tileCounts: c[1]["tiles"] as! [Int])
        #expect(auto == TestData.ints(c[1]["prompt_ids"]))
        // The image features' token typed into the text is refused as such (it read as a count
        // of image rows and placeholders that did not add up).
        for q in ["What is <IMG_CONTEXT>?", "<image> and <IMG_CONTEXT>"] {
            #expect(throws: ChatError.imageTokenInText) {
                try engine.promptIDs(template: ChatTemplate.internLM2Chat, history: [], question: q, tileCounts: q.contains("<image>") ? [1] : [])
            }
        }
    }
}
