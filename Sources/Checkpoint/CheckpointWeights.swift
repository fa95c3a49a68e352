import FileInput
import Foundation
import Kernels

/// A tensor view into a mapped checkpoint file.
public struct Tensor: @unchecked Sendable {
    public let info: TensorInfo
    public let pointer: UnsafeRawPointer
    public var shape: [Int] { info.shape }
    public var dtype: DType { info.dtype }

    /// As a `[rows, cols]` matrix: the last dimension is `cols`, the others fold into rows.
    public var matrix: WeightMatrix {
        let cols = info.shape.last ?? 1
        return WeightMatrix(base: pointer, dtype: info.dtype, rows: info.count / max(cols, 1), cols: cols)
    }

    /// All values as Float (for small tensors: norms, biases).
    public func floats() -> [Float] { matrix.toFloats() }
}

/// All weights of a checkpoint folder, memory-mapped and checked against config.json:
/// every expected tensor present with its exact shape, nothing unexpected, known dtypes.
public final class CheckpointWeights: @unchecked Sendable {
    public let files: [SafeTensorsFile]
    private var index: [String: (file: SafeTensorsFile, info: TensorInfo)] = [:]

    /// Tensors a checkpoint may carry that the engine does not use (rotary caches some exporters keep).
    public static func isIgnorable(_ name: String) -> Bool { name.hasSuffix("rotary_emb.inv_freq") }

    public init(folder: URL, config: ModelConfiguration) throws {
        let fm = FileManager.default
        let indexURL = folder.appendingPathComponent("model.safetensors.index.json")
        let single = folder.appendingPathComponent("model.safetensors")
        var fileOf: [String: String]? = nil
        var names: [String]
        if fm.fileExists(atPath: indexURL.path) {
            let data: [UInt8]
            do { data = try FileInput.read(indexURL.path, limit: 64 << 20) } catch {
                throw CheckpointError.unreadable(indexURL.path, reason: error.reason)
            }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any],
                  let map = obj["weight_map"] as? [String: String] else {
                throw CheckpointError.malformedConfig(indexURL.path, reason: "no weight_map object of tensor name -> file")
            }
            for f in Set(map.values) where f.contains("/") || f.hasPrefix(".") {
                throw CheckpointError.malformedConfig(indexURL.path, reason: "shard name \(f) is not a plain file name")
            }
            fileOf = map
            names = Array(Set(map.values)).sorted()
            for n in names where !fm.fileExists(atPath: folder.appendingPathComponent(n).path) {
                throw CheckpointError.missingShard(folder.appendingPathComponent(n).path, index: indexURL.path)
            }
        } else if fm.fileExists(atPath: single.path) {
            names = ["model.safetensors"]
        } else {
            throw CheckpointError.fileMissing(single.path, what: "model.safetensors (or model.safetensors.index.json with its shards)")
        }
        files = try names.map { try SafeTensorsFile(path: folder.appendingPathComponent($0).path) }
        for f in files {
            let fname = URL(fileURLWithPath: f.file.path).lastPathComponent
            for (name, info) in f.tensors {
                if let map = fileOf, map[name] != fname, !Self.isIgnorable(name) {
                    throw CheckpointError.badHeader(f.file.path, reason: "tensor \(name) is not listed for this shard in model.safetensors.index.json")
                }
                if index[name] != nil { throw CheckpointError.badHeader(f.file.path, reason: "tensor \(name) appears twice") }
                index[name] = (f, info)
            }
        }
        let expected = ExpectedTensors.shapes(config)
        let where_ = names.count == 1 ? folder.appendingPathComponent(names[0]).path : folder.path
        for (name, shape) in expected.sorted(by: { $0.key < $1.key }) {
            guard let (f, info) = index[name] else { throw CheckpointError.missingTensor(name, file: fileOf?[name].map { folder.appendingPathComponent($0).path } ?? where_) }
            if info.shape != shape {
                throw CheckpointError.wrongShape(name, file: f.file.path, expected: shape, found: info.shape)
            }
        }
        for (name, (f, _)) in index where expected[name] == nil && !Self.isIgnorable(name) {
            throw CheckpointError.unexpectedTensor(name, file: f.file.path)
        }
    }

    public func tensor(_ name: String) -> Tensor? {
        guard let (f, info) = index[name] else { return nil }
        return Tensor(info: info, pointer: f.pointer(info))
    }

    /// Bytes of all tensors whose name starts with `prefix`.
    public func bytes(prefix: String) -> Int {
        index.filter { $0.key.hasPrefix(prefix) }.reduce(0) { $0 + $1.value.info.end - $1.value.info.start }
    }
}

/// The tensor names and shapes a checkpoint must have for its config (../shared/MODEL.md).
public enum ExpectedTensors {
    public static func shapes(_ c: ModelConfiguration) -> [String: [Int]] {
        let v = c.visionConfig, l = c.llmConfig
        let vh = v.hiddenSize, p = v.patchSize, grid = v.imageSize / v.patchSize
        var s: [String: [Int]] = [
            "vision_model.embeddings.class_embedding": [1, 1, vh],
            "vision_model.embeddings.patch_embedding.weight": [vh, v.numChannels ?? 3, p, p],
            "vision_model.embeddings.patch_embedding.bias": [vh],
            "vision_model.embeddings.position_embedding": [1, grid * grid + 1, vh],
        ]
        for i in 0..<v.numHiddenLayers {
            let b = "vision_model.encoder.layers.\(i)."
            for n in ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "ls1", "ls2", "attn.proj.bias", "mlp.fc2.bias"] {
                s[b + n] = [vh]
            }
            s[b + "attn.qkv.weight"] = [3 * vh, vh]
            if v.qkvBias { s[b + "attn.qkv.bias"] = [3 * vh] }
            s[b + "attn.proj.weight"] = [vh, vh]
            s[b + "mlp.fc1.weight"] = [v.intermediateSize, vh]
            s[b + "mlp.fc1.bias"] = [v.intermediateSize]
            s[b + "mlp.fc2.weight"] = [vh, v.intermediateSize]
            if v.qkNormalization {
                s[b + "attn.q_norm.weight"] = [vh]
                s[b + "attn.k_norm.weight"] = [vh]
            }
        }
        let scale = Int((1 / c.downsampleRatio).rounded())
        let ps = scale * scale * vh, lh = l.hiddenSize
        s["mlp1.0.weight"] = [ps]; s["mlp1.0.bias"] = [ps]
        s["mlp1.1.weight"] = [lh, ps]; s["mlp1.1.bias"] = [lh]
        s["mlp1.3.weight"] = [lh, lh]; s["mlp1.3.bias"] = [lh]
        let hd = l.headDim, kv = l.numKeyValueHeads, h = l.numAttentionHeads
        s["language_model.model.tok_embeddings.weight"] = [l.vocabSize, lh]
        for i in 0..<l.numHiddenLayers {
            let b = "language_model.model.layers.\(i)."
            s[b + "attention_norm.weight"] = [lh]
            s[b + "attention.wqkv.weight"] = [(h + 2 * kv) * hd, lh]
            s[b + "attention.wo.weight"] = [lh, h * hd]
            s[b + "ffn_norm.weight"] = [lh]
            s[b + "feed_forward.w1.weight"] = [l.intermediateSize, lh]
            s[b + "feed_forward.w3.weight"] = [l.intermediateSize, lh]
            s[b + "feed_forward.w2.weight"] = [lh, l.intermediateSize]
        }
        s["language_model.model.norm.weight"] = [lh]
        if l.tieWordEmbeddings != true { s["language_model.output.weight"] = [l.vocabSize, lh] }
        return s
    }
}
