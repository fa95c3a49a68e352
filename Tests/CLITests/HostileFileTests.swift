import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Files that are not what they claim: pipes, devices, huge or sparse files, names that are not
/// UTF-8. Each is refused (or read) quickly, in little memory, with one line saying what it is.
struct HostileFileTests {
    static func expectCleanError(_ r: BoundedRun, _ message: String, _ what: String) {
        #expect(!r.killed && r.status == 1, "\(what): status \(r.status), killed \(r.killed): \(r.err)")
        #expect(r.err.hasPrefix("error: ") && r.err.split(separator: "\n").count == 1 && r.err.contains(message), "\(what): \(r.err)")
        #expect(!r.err.contains("NSCocoaErrorDomain") && !r.err.contains("Error Domain") && !r.err.contains("\u{1b}"), "\(what): \(r.err)")
        #expect(r.seconds < 10 && r.maxRSSBytes > 0 && r.maxRSSBytes < 1 << 30, "\(what): \(r.seconds) s, \(r.maxRSSBytes) bytes (0: never sampled after the exec)")
    }

    static func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A sparse file of `size` bytes that starts with the PNG signature.
    static func sparsePNG(_ path: String, size: Int) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        let sig: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        _ = sig.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        #expect(ftruncate(fd, off_t(size)) == 0)
        close(fd)
    }

    @Test func imagePathsThatAreNotImageFiles() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("pipe.png").path
        #expect(mkfifo(fifo, 0o644) == 0)
        let big = dir.appendingPathComponent("big.png").path, huge = dir.appendingPathComponent("huge.png").path
        try Self.sparsePNG(big, size: 3 << 30)
        try Self.sparsePNG(huge, size: 20 << 30)
        let cases: [(String, String)] = [
            (fifo, "is a FIFO (named pipe), not a regular file"),
            ("/dev/zero", "is a character device, not a regular file"),
            ("/dev/urandom", "is a character device, not a regular file"),
            (big, "is 3.0 GB, more than the 256 MB allowed"),
            (huge, "is 20.0 GB, more than the 256 MB allowed"),
            ("/proc/self/mem", "Cannot read /proc/self/mem"),
            (dir.path, "is a folder, not an image"),
        ]
        let model = TestData.url("tiny-b").path
        for (path, message) in cases {
            let r = try BoundedRun.run(CLITests.binary, ["generate", "--model", model, "--image", path, "--max-new-tokens", "1", "x"])
            Self.expectCleanError(r, message, path)
        }
    }

    @Test func modelFilesThatAreNotFiles() throws {
        let fm = FileManager.default
        for name in ["config.json", "tokenizer.model", "tokenizer_config.json", "model.safetensors.index.json",
                     "model-00001-of-00003.safetensors"] {
            let dir = try Self.scratch()
            defer { try? fm.removeItem(at: dir) }
            let src = TestData.url("tiny-b")
            for f in try fm.contentsOfDirectory(atPath: src.path) where f != name {
                try fm.createSymbolicLink(at: dir.appendingPathComponent(f), withDestinationURL: src.appendingPathComponent(f))
            }
            #expect(mkfifo(dir.appendingPathComponent(name).path, 0o644) == 0)
            let r = try BoundedRun.run(CLITests.binary, ["generate", "--model", dir.path, "--max-new-tokens", "1", "x"])
            Self.expectCleanError(r, "is a FIFO (named pipe), not a regular file", name)
        }
    }

    /// A file that is a loop of links is named as one, not as missing (weights: not as a
    /// download that did not finish).
    @Test func loopsOfLinksAreNamedAsSuch() throws {
        let fm = FileManager.default
        let loop = "Too many levels of symbolic links"
        for (base, name) in [("tiny-a", "model.safetensors"), ("tiny-b", "model-00001-of-00003.safetensors"), ("tiny-a", "tokenizer_config.json")] {
            let dir = try Self.scratch()
            defer { try? fm.removeItem(at: dir) }
            let src = TestData.url(base)
            for f in try fm.contentsOfDirectory(atPath: src.path) where f != name {
                try fm.createSymbolicLink(at: dir.appendingPathComponent(f), withDestinationURL: src.appendingPathComponent(f))
            }
            #expect(symlink(name, dir.appendingPathComponent(name).path) == 0)
            let r = try BoundedRun.run(CLITests.binary, ["generate", "--model", dir.path, "--max-new-tokens", "1", "x"])
            Self.expectCleanError(r, loop, name)
            #expect(!r.err.contains("download") && !r.err.contains("missing"), "\(name): \(r.err)")
        }
        let dir = try Self.scratch()
        defer { try? fm.removeItem(at: dir) }
        let clip = dir.appendingPathComponent("clip.mp4").path
        #expect(symlink("clip.mp4", clip) == 0)
        let v = try BoundedRun.run(CLITests.binary, ["generate", "--model", TestData.url("tiny-a").path, "--video", clip, "--max-new-tokens", "1", "x"])
        Self.expectCleanError(v, loop, "video")
        #expect(!v.err.contains("does not exist"), "\(v.err)")
    }

    /// A file whose name is not valid UTF-8 is found and read under its real name.
    @Test func imageNamedInLatin1() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = try Data(contentsOf: TestData.url("images/photo-chelsea.png"))
        let raw = Array(dir.path.utf8) + Array("/caf".utf8) + [0xE9] + Array(".png".utf8)
        let fd = raw.map { CChar(bitPattern: $0) }.withUnsafeBufferPointer { p -> Int32 in
            var z = Array(p); z.append(0)
            return open(z, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        #expect(fd >= 0)
        _ = png.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let args = ["generate", "--model", TestData.url("tiny-b").path, "--image", "IMAGE", "--max-new-tokens", "1", "--json", "x"]
        let r = try BoundedRun.run(CLITests.binary, args, rawArgs: args.map { $0 == "IMAGE" ? raw : Array($0.utf8) })
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("\"tiles\""), "\(r.out)")
        var missing = raw
        missing.insert(0xFF, at: raw.count - 4)
        let m = try BoundedRun.run(CLITests.binary, args, rawArgs: args.map { $0 == "IMAGE" ? missing : Array($0.utf8) })
        Self.expectCleanError(m, "does not exist", "missing non-UTF-8 name")
    }
}
