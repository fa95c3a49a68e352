import Foundation
import Imaging
import Testing
import TestSupport
@testable import Video

/// Frame sampling and decoding against the model card's get_index and decord
/// (fixtures from Tests/reference/make_videos.py).
struct VideoTests {
    static var videos: URL { TestData.url("videos") }

    @Test func samplingEqualsGetIndex() throws {
        let data = try Data(contentsOf: Self.videos.appendingPathComponent("index-cases.json"))
        let cases = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
        #expect(cases.count > 1000)
        var bounded = 0
        for c in cases {
            let maxFrame = c["max_frame"] as! Int, fps = c["fps"] as! Double, segments = c["segments"] as! Int
            var bound: (Double, Double)? = nil
            if let b = c["bound"] as? [Double] { bound = (b[0], b[1]); bounded += 1 }
            let got = FrameSampling.indices(maxFrame: maxFrame, fps: fps, segments: segments, bound: bound)
            #expect(got == c["indices"] as! [Int], "max_frame \(maxFrame) fps \(fps) segments \(segments) bound \(String(describing: bound))")
        }
        #expect(bounded > 0)
    }

    @Test func containerFactsAndSampledFramesEqualDecord() throws {
        let data = try Data(contentsOf: Self.videos.appendingPathComponent("cases.json"))
        let cases = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
        #expect(cases.count >= 12)
        for c in cases {
            let name = c["file"] as! String
            let video = try VideoDecoder(path: Self.videos.appendingPathComponent(name).path)
            #expect(video.info.frameCount == c["frames"] as! Int, "\(name): frame count")
            #expect(video.info.averageFPS == c["fps"] as! Double, "\(name): average fps")
            #expect(video.info.width == c["width"] as! Int && video.info.height == c["height"] as! Int, "\(name): size")
            for (segments, want) in c["indices"] as! [String: [Int]] {
                #expect(video.sampledIndices(segments: Int(segments)!) == want, "\(name): \(segments) segments")
            }
            let indices = c["decoded"] as! [Int]
            let frames = try video.frames(at: indices)
            for (i, frame) in zip(indices, frames) {
                let want = [UInt8](try Data(contentsOf: Self.videos.appendingPathComponent("\(name)-\(i).rgb")))
                #expect(frame.width == video.info.width && frame.height == video.info.height)
                let differ = zip(frame.pixels, want).filter { $0 != $1 }.count
                let worst = zip(frame.pixels, want).map { abs(Int($0) - Int($1)) }.max() ?? 0
                #expect(frame.pixels == want, "\(name) frame \(i): \(differ) of \(want.count) values differ (at most by \(worst))")
            }
        }
    }

    /// Phone videos: the track's display matrix turns the frames upright (decord's frames are
    /// compared above; here the angle read and the size reported).
    @Test func rotatedVideosReportTheirTurnAndUprightSize() throws {
        for (name, degrees) in [("rot90.mp4", 90), ("rot180.mp4", 180), ("rot270.mp4", 270), ("mpeg4-25fps.mp4", 0)] {
            let video = try VideoDecoder(path: Self.videos.appendingPathComponent(name).path)
            #expect(video.info.rotation == degrees, "\(name)")
        }
        let upright = try VideoDecoder(path: Self.videos.appendingPathComponent("rot180.mp4").path)
        let turned = try VideoDecoder(path: Self.videos.appendingPathComponent("rot90.mp4").path)
        #expect(turned.info.width == upright.info.height && turned.info.height == upright.info.width)
        let a = try upright.frames(at: [3])[0], b = try turned.frames(at: [3])[0]
        #expect(a.turned(clockwise: 270) == b, "180 then 270 more is 90")
    }

    /// A raw elementary stream has no container frame rate: the sampling still spans the video
    /// (get_index with a rate of 0 would put every frame at 0).
    @Test func aStreamWithoutAFrameRateIsSampledOverAllItsFrames() throws {
        #expect(FrameSampling.indices(maxFrame: 19, fps: 0, segments: 4) == [2, 7, 12, 16])
        let data = try Data(contentsOf: Self.videos.appendingPathComponent("raw-stream.json"))
        let c = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let video = try VideoDecoder(path: Self.videos.appendingPathComponent(c["file"] as! String).path)
        #expect(video.info.frameCount == c["frames"] as! Int)
        for (segments, want) in c["indices"] as! [String: [Int]] {
            #expect(video.sampledIndices(segments: Int(segments)!) == want, "\(segments) segments")
        }
        let frames = try video.frames(at: video.sampledIndices(segments: 8))
        #expect(frames.count == 8 && frames[0] != frames[7])
    }

    @Test func framesComeInTheOrderAskedWithRepeats() throws {
        let video = try VideoDecoder(path: Self.videos.appendingPathComponent("mpeg4-25fps.mp4").path)
        let a = try video.frames(at: [20, 3, 20, 0])
        let b = try video.frames(at: [0, 3, 20])
        #expect(a.count == 4)
        #expect(a[0] == b[2] && a[1] == b[1] && a[2] == b[2] && a[3] == b[0])
        #expect(a[0] != a[1])
    }

    @Test func aFrameBeyondTheEndIsAClearError() throws {
        let video = try VideoDecoder(path: Self.videos.appendingPathComponent("mjpeg.avi").path)
        #expect(throws: VideoError.truncated(video.path, decoded: 9, wanted: 9)) { try video.frames(at: [2, 9]) }
    }

    @Test func badInputIsRefusedWithOneClearError() throws {
        let data = try Data(contentsOf: Self.videos.appendingPathComponent("bad.json"))
        let bad = try JSONSerialization.jsonObject(with: data) as! [String: String]
        let expected: [String: String] = [
            "audio-only": "has no video stream (audio only)",
            "truncated": "is not a video FFmpeg can read",
            "garbage": "is not a video FFmpeg can read",
            "text": "is not a video FFmpeg can read",
            "empty": "is empty (0 bytes)",
            "codec": "encoded with an unknown codec (tag QZQZ), which this FFmpeg cannot decode",
            "no-frames": "has a video stream with no frames",
            "cut-index": "is cut short: it has",
        ]
        #expect(Set(bad.keys) == Set(expected.keys))
        for (kind, file) in bad {
            let path = Self.videos.appendingPathComponent(file).path
            do {
                let v = try VideoDecoder(path: path)
                _ = try v.frames(at: v.sampledIndices(segments: 8))
                Issue.record("\(file) should be refused")
            } catch let e as VideoError {
                let m = e.errorDescription!
                #expect(m.contains(expected[kind]!) && m.contains(path), "\(kind): \(m)")
                #expect(!m.contains("\n"), "\(kind): one line")
            }
        }
    }

    /// A playlist would open further files or URLs, so its format is not read; the message names it.
    @Test func aFormatWeDoNotReadIsNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("video-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let playlist = dir.appendingPathComponent("clip.m3u8")
        try Data("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.ts\n#EXT-X-ENDLIST\n".utf8).write(to: playlist)
        do {
            _ = try VideoDecoder(path: playlist.path)
            Issue.record("a playlist should be refused")
        } catch let e as VideoError {
            #expect(e.errorDescription!.contains("its format, Apple HTTP Live Streaming, is not one this program reads"), "\(e.errorDescription!)")
        }
    }

    @Test func aFolderAFifoAndAMissingFileAreRefusedBeforeFFmpegOpensThem() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("video-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("pipe.mp4").path
        #expect(mkfifo(fifo, 0o600) == 0)
        for (path, words) in [(dir.path, "folder"), (fifo, "not a regular file"), (dir.appendingPathComponent("none.mp4").path, "does not exist")] {
            #expect(throws: VideoError.self) { try VideoDecoder(path: path) }
            do { _ = try VideoDecoder(path: path) } catch let e as VideoError {
                #expect(e.errorDescription!.contains(words), "\(e.errorDescription!)")
            }
        }
    }

    @Test func framesAboveThePixelLimitAreRefusedFromTheHeader() throws {
        let path = Self.videos.appendingPathComponent("mpeg4-25fps.mp4").path
        #expect(throws: VideoError.tooLarge(path, width: 66, height: 38, limit: 2000)) {
            try VideoDecoder(path: path, maxPixels: 2000)
        }
        #expect(VideoDecoder.maxPixels >= 7680 * 4320)
    }
}
