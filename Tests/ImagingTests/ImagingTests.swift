import Foundation
import Testing
import TestSupport
@testable import Imaging

/// Decoding, resizing and tiling against Pillow and the official dynamic_preprocess
/// (fixtures from Tests/reference/make_images.py and preprocess_ref.py).
struct ImagingTests {
    static var images: URL { TestData.url("images") }

    static func expectedRGB(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: images.appendingPathComponent("expected/\(name).rgb")))
    }

    @Test func decodingMatchesPillowBitForBit() throws {
        let manifest = try TestData.json(Self.images.appendingPathComponent("manifest.json"))
        let files = manifest["files"] as! [[String: Any]]
        #expect(files.filter { $0["ok"] as! Bool }.count >= 45)
        for f in files {
            let name = f["file"] as! String
            let path = Self.images.appendingPathComponent(name).path
            if f["ok"] as! Bool {
                do {
                    let img = try ImageDecoder.decode(path: path)
                    #expect(img.width == f["width"] as! Int && img.height == f["height"] as! Int, "\(name)")
                    let want = try Self.expectedRGB(name)
                    let diff = zip(img.pixels, want).filter { $0 != $1 }.count
                    #expect(img.pixels == want, "\(name) (\(f["mode"]!)): \(diff) of \(want.count) values differ")
                } catch {
                    Issue.record("\(name) should decode: \(error)")
                }
            } else {
                do {
                    _ = try ImageDecoder.decode(path: path)
                    Issue.record("\(name) should be refused")
                } catch let e as ImagingError {
                    let m = e.errorDescription!
                    #expect(m.contains(f["contains"] as! String) && m.contains(name), "\(name): \(m)")
                }
            }
        }
    }

    @Test func unreadableInputsAreClearErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imgerr-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: ImagingError.isDirectory(dir.path)) { try ImageDecoder.decode(path: dir.path) }
        let missing = dir.appendingPathComponent("nope.png").path
        #expect(throws: ImagingError.notFound(missing)) { try ImageDecoder.decode(path: missing) }
        let link = dir.appendingPathComponent("dangling.jpg").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dir.appendingPathComponent("gone").path)
        #expect(throws: ImagingError.self) { try ImageDecoder.decode(path: link) }
        // The pixel limit is checked from the header, before decoding.
        let small = Self.images.appendingPathComponent("png-rgb.png").path
        #expect(throws: ImagingError.tooLarge(small, width: 67, height: 45, limit: 100)) {
            try ImageDecoder.decode(path: small, maxPixels: 100)
        }
        // A PNG header claiming the format's largest size is too large, not corrupt.
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + data
            var crc: UInt32 = 0xFFFF_FFFF
            for b in body { crc ^= UInt32(b); for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 } }
            let be = { (v: UInt32) in [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
            return be(UInt32(data.count)) + body + be(~crc)
        }
        let side: [UInt8] = [0x7F, 0xFF, 0xFF, 0xFF]
        let huge = dir.appendingPathComponent("huge.png")
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", side + side + [8, 2, 0, 0, 0])
                 + chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]) + chunk("IEND", [])).write(to: huge)
        #expect(throws: ImagingError.tooLarge(huge.path, width: Int(Int32.max), height: Int(Int32.max), limit: ImageDecoder.maxPixels)) {
            try ImageDecoder.decode(path: huge.path)
        }
        let beyond: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF]      // past the format's limit, as a hostile file may say
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", beyond + beyond + [8, 2, 0, 0, 0])
                 + chunk("IEND", [])).write(to: huge)
        #expect(throws: ImagingError.tooLarge(huge.path, width: Int(UInt32.max), height: Int(UInt32.max), limit: ImageDecoder.maxPixels)) {
            try ImageDecoder.decode(path: huge.path)
        }
    }

    /// The pattern of make_images.pattern, computed here.
    static func pattern(_ w: Int, _ h: Int) -> RGBImage {
        var p = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w {
            let i = (y * w + x) * 3
            p[i] = UInt8((x * 7 + y * 3) % 256)
            p[i + 1] = UInt8((x * y + 3 * x) % 253)
            p[i + 2] = UInt8(((x / 4) ^ (y / 3)) * 37 % 256)
        } }
        return RGBImage(width: w, height: h, pixels: p)
    }

    @Test func bicubicResizeMatchesPillow() throws {
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: TestData.url("resize-cases.json"))) as! [[String: Any]]
        #expect(cases.count >= 40)
        var sources: [String: RGBImage] = [:]
        var total = 0, differing = 0, worst = 0
        for c in cases {
            let s = c["src"] as! [Int], d = c["dst"] as! [Int]
            let key = "\(s[0])x\(s[1])"
            let src = sources[key] ?? Self.pattern(s[0], s[1])
            sources[key] = src
            let got = PillowResize.resize(src, width: d[0], height: d[1])
            let want = [UInt8](try Data(contentsOf: TestData.url("resize/\(c["id"]!).rgb")))
            #expect(got.pixels.count == want.count)
            for (a, b) in zip(got.pixels, want) where a != b {
                differing += 1
                worst = max(worst, abs(Int(a) - Int(b)))
            }
            total += want.count
            if got.pixels != want { Issue.record("\(key) -> \(d): \(zip(got.pixels, want).filter { $0 != $1 }.count) values differ from Pillow") }
        }
        #expect(differing == 0 && worst == 0, "\(differing) of \(total) values differ, by up to \(worst)")
    }

    @Test func tileGridsMatchTheOfficialCode() throws {
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: TestData.url("tiling-cases.json"))) as! [[String: Any]]
        #expect(cases.count >= 2000)
        var bad: [String] = []
        for c in cases {
            let o = TilingOptions(minTiles: c["min"] as! Int, maxTiles: c["max"] as! Int)
            let g = DynamicTiling.grid(width: c["w"] as! Int, height: c["h"] as! Int, options: o)
            let want = c["grid"] as! [Int]
            if [g.cols, g.rows] != want { bad.append("\(c["w"]!)x\(c["h"]!) max \(o.maxTiles): \(g) vs \(want)") }
        }
        #expect(bad.isEmpty, "\(bad.count) grids differ: \(bad.prefix(5))")
    }

    @Test func tilesAreCutRowByRowWithAThumbnail() {
        let img = Self.pattern(1000, 500)
        let tiles = DynamicTiling.tiles(of: img, options: TilingOptions(tileSize: 448, maxTiles: 12))
        #expect(tiles.count == 2 + 1)          // 2x1 grid plus the thumbnail
        let resized = PillowResize.resize(img, width: 896, height: 448)
        #expect(tiles[1] == resized.crop(x: 448, y: 0, width: 448, height: 448))
        #expect(tiles[2] == PillowResize.resize(img, width: 448, height: 448))
        let single = DynamicTiling.tiles(of: Self.pattern(448, 448), options: TilingOptions())
        #expect(single.count == 1 && single[0] == Self.pattern(448, 448))
    }
}
