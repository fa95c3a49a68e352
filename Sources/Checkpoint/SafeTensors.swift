import FileInput
import Foundation
import Kernels
#if canImport(Glibc)
import Glibc
#endif

/// A file mapped read-only into memory; unmapped when the last reference goes.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let size: Int

    public init(path: String) throws {
        self.path = path
        // A FIFO would block open(2) and a device has no end: only regular files are mapped.
        if let problem = FileInput.kind(path), problem != .missing {
            throw CheckpointError.unreadable(path, reason: problem.reason)
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CheckpointError.unreadable(path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CheckpointError.unreadable(path, reason: String(cString: strerror(errno))) }
        size = Int(st.st_size)
        guard size > 0 else { throw CheckpointError.badHeader(path, reason: "the file is empty") }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw CheckpointError.unreadable(path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
        mapping = (p, size)
    }

    /// The file read into memory of its own, placed so that byte `offset` of it falls on a 64-byte
    /// boundary: a safetensors file whose data section starts where its element types are not
    /// aligned (a header not padded to 8 bytes, as some writers leave it) is used from this copy.
    public init(copyOf path: String, aligning offset: Int) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointError.unreadable(path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CheckpointError.unreadable(path, reason: String(cString: strerror(errno))) }
        size = Int(st.st_size)
        let shift = (64 - offset % 64) % 64, total = size + shift
        guard let p = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw CheckpointError.unreadable(path, reason: "no memory for an aligned copy of \(size) bytes")
        }
        mapping = (p, total)
        var done = 0
        while done < size {
            let n = read(fd, p + shift + done, min(size - done, 1 << 30))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                munmap(p, total)
                throw CheckpointError.unreadable(path, reason: n < 0 ? String(cString: strerror(errno)) : "it ended while being read")
            }
            done += n
        }
        base = UnsafeRawPointer(p + shift)
    }

    private let mapping: (UnsafeMutableRawPointer, Int)

    deinit { munmap(mapping.0, mapping.1) }
}

/// One tensor of a safetensors file: where its bytes are and what they are.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range relative to the start of the data section.
    public let start: Int
    public let end: Int
    public var count: Int { shape.reduce(1, *) }
}

/// A parsed and validated safetensors file (https://github.com/huggingface/safetensors format):
/// 8-byte little-endian header length, a JSON header, then the data section.
public final class SafeTensorsFile: @unchecked Sendable {
    /// Headers larger than this are refused (the real checkpoint's is about 60 KB).
    public static let maxHeaderBytes = 100 << 20

    public let file: MappedFile
    public let tensors: [String: TensorInfo]
    public let dataOffset: Int

    public init(path: String) throws {
        var file = try MappedFile(path: path)
        func bad(_ r: String) -> CheckpointError { .badHeader(path, reason: r) }
        guard file.size >= 8 else { throw bad("it is shorter than the 8-byte header length") }
        let claimed = UInt64(littleEndian: file.base.loadUnaligned(as: UInt64.self))
        guard claimed >= 2, claimed <= UInt64(Self.maxHeaderBytes) else {
            throw bad("the header claims \(claimed) bytes (allowed: 2 to \(Self.maxHeaderBytes))")
        }
        let n = Int(claimed)
        guard 8 + n <= file.size else {
            throw bad("the header claims \(n) bytes but the file has only \(file.size - 8) after the length (truncated?)")
        }
        dataOffset = 8 + n
        if dataOffset % 8 != 0 { file = try MappedFile(copyOf: path, aligning: dataOffset) }
        self.file = file
        let dataSize = file.size - dataOffset
        let json = Data(bytes: file.base + 8, count: n)
        guard let obj = try? JSONSerialization.jsonObject(with: json), let dict = obj as? [String: Any] else {
            throw bad("the header is not a JSON object")
        }
        var tensors: [String: TensorInfo] = [:]
        for (name, value) in dict where name != "__metadata__" {
            guard let entry = value as? [String: Any] else { throw bad("entry \(name) is not an object") }
            guard let ds = entry["dtype"] as? String else { throw bad("entry \(name) has no dtype") }
            guard let dtype = DType(rawValue: ds) else { throw CheckpointError.wrongDType(name, file: path, found: ds) }
            guard let shapeAny = entry["shape"] as? [Any], let shape = Self.ints(shapeAny), shape.allSatisfy({ $0 >= 0 }) else {
                throw bad("entry \(name) has no valid shape")
            }
            guard let offAny = entry["data_offsets"] as? [Any], let off = Self.ints(offAny), off.count == 2,
                  off[0] >= 0, off[0] <= off[1] else {
                throw bad("entry \(name) has no valid data_offsets")
            }
            var elems = 1
            for d in shape {
                let (m, o) = elems.multipliedReportingOverflow(by: d)
                guard !o, m <= dataSize else { throw bad("entry \(name): shape \(shape) is larger than the file") }
                elems = m
            }
            guard elems * dtype.size == off[1] - off[0] else {
                throw bad("entry \(name): shape \(shape) x \(ds) is \(elems * dtype.size) bytes but data_offsets span \(off[1] - off[0])")
            }
            guard off[1] <= dataSize else {
                throw bad("entry \(name) ends at byte \(off[1]) of a \(dataSize)-byte data section (truncated file?)")
            }
            guard (Int(bitPattern: file.base) + dataOffset + off[0]) % dtype.size == 0 else {
                throw bad("entry \(name) is not aligned to its \(dtype.size)-byte element size")
            }
            tensors[name] = TensorInfo(name: name, dtype: dtype, shape: shape, start: off[0], end: off[1])
        }
        let sorted = tensors.values.filter { $0.end > $0.start }.sorted { $0.start < $1.start }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.start < a.end {
            throw bad("tensors \(a.name) and \(b.name) overlap")
        }
        self.tensors = tensors
    }

    private static func ints(_ a: [Any]) -> [Int]? {
        var out: [Int] = []
        for x in a {
            guard let n = x as? Int, n >= 0 else { return nil }   // nil for 3.5, "3", -1
            out.append(n)
        }
        return out
    }

    /// Address of a tensor's first byte.
    public func pointer(_ info: TensorInfo) -> UnsafeRawPointer { file.base + dataOffset + info.start }
}
