import Foundation

/// A temporary copy of a fixture folder that tests may break; removed by `remove()`.
public struct ScratchFolder {
    public let url: URL

    public init(copying source: URL) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("internvl-test-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: source, to: url)
    }

    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    public func editJSON(_ name: String, _ edit: (inout [String: Any]) -> Void) throws {
        var obj = try TestData.json(file(name))
        edit(&obj)
        try JSONSerialization.data(withJSONObject: obj).write(to: file(name))
    }

    public func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Writes safetensors files byte by byte, so tests can produce every kind of broken file.
public enum SafeTensorsWriter {
    public struct Entry {
        public var name: String, dtype: String, shape: [Int], data: Data
        public var offsets: (Int, Int)? = nil       // override data_offsets
        public init(name: String, dtype: String, shape: [Int], data: Data) {
            self.name = name; self.dtype = dtype; self.shape = shape; self.data = data
        }
    }

    public static func write(_ entries: [Entry], to url: URL, headerOverride: Data? = nil) throws {
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var offset = 0
        for e in entries {
            let off = e.offsets ?? (offset, offset + e.data.count)
            header[e.name] = ["dtype": e.dtype, "shape": e.shape, "data_offsets": [off.0, off.1]]
            offset += e.data.count
        }
        var h = try headerOverride ?? JSONSerialization.data(withJSONObject: header)
        while h.count % 8 != 0 { h.append(0x20) }
        var out = Data()
        var n = UInt64(h.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(h)
        for e in entries { out.append(e.data) }
        try out.write(to: url)
    }

    /// The entries of an existing file (our own minimal reader, independent of the product's).
    public static func read(_ url: URL) throws -> [Entry] {
        let d = try Data(contentsOf: url)
        let n = Int(d.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: d.subdata(in: 8..<(8 + n))) as! [String: Any]
        return header.compactMap { name, v -> Entry? in
            guard name != "__metadata__", let e = v as? [String: Any] else { return nil }
            let off = e["data_offsets"] as! [Int]
            return Entry(name: name, dtype: e["dtype"] as! String, shape: e["shape"] as! [Int],
                         data: d.subdata(in: (8 + n + off[0])..<(8 + n + off[1])))
        }.sorted { $0.name < $1.name }
    }
}
