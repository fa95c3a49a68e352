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

/// All weights of a checkpoint folder, memory-mapped, with known dtypes and a consistent shard
/// index. `check(expected:)` compares them with the tensors a model needs (the model families
/// derive those from config.json): every one present with its exact shape, nothing unexpected.
public final class CheckpointWeights: @unchecked Sendable {
    public let files: [SafeTensorsFile]
    private var index: [String: (file: SafeTensorsFile, info: TensorInfo)] = [:]

    /// Tensors a checkpoint may carry that the engine does not use (rotary caches some exporters keep).
    public static func isIgnorable(_ name: String) -> Bool { name.hasSuffix("rotary_emb.inv_freq") }

    private let folder: URL
    private let fileOf: [String: String]?
    private let fileNames: [String]

    public init(folder: URL) throws {
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
                let shard = folder.appendingPathComponent(n).path
                throw Self.absent(shard, otherwise: .missingShard(shard, index: indexURL.path))
            }
        } else if fm.fileExists(atPath: single.path) {
            names = ["model.safetensors"]
        } else {
            throw Self.absent(single.path, otherwise: .fileMissing(single.path, what: "model.safetensors (or model.safetensors.index.json with its shards)"))
        }
        self.folder = folder
        self.fileOf = fileOf
        fileNames = names
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
    }

    /// What to say about a weights file that is not there: a link whose target is missing (what an
    /// interrupted Hugging Face download leaves in a snapshot) is named as one, a loop of links as one.
    static func absent(_ path: String, otherwise: CheckpointError) -> CheckpointError {
        if case .unreadable(let reason)? = FileInput.kind(path) { return .unreadable(path, reason: reason) }
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) else { return otherwise }
        return .brokenLink(path, target: target)
    }

    /// Throws unless the checkpoint holds exactly `expected` (name -> shape), ignorable extras aside.
    public func check(expected: [String: [Int]]) throws {
        let where_ = fileNames.count == 1 ? folder.appendingPathComponent(fileNames[0]).path : folder.path
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
