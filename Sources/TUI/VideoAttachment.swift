import ChatAPI
import Foundation
import Imaging
import Video

/// A video attached to the next message: its sampled frames are pending images, shown in the
/// side panel as one filmstrip.
public struct PendingVideo: Sendable, Equatable {
    public var path: String
    /// The sampled 0-based frame indices, in order.
    public var frames: [Int]
    /// The attached frames' image ids, in frame order.
    public var imageIDs: [Int]
    /// The panel's entry: the frames' thumbnails side by side, with the frames' total cost.
    public var strip: AttachedImage

    public init(path: String, frames: [Int], images: [AttachedImage]) {
        self.path = path; self.frames = frames; imageIDs = images.map(\.id)
        strip = Filmstrip.entry(name: path, frames: images)
    }

    /// The video of a saved turn: the images its question asks as `FrameK: <image>` (the other
    /// images are `<image>` alone, in attach order, as `framedQuestion` writes them), named after
    /// the frames' files (`clip-frame12.png`: clip, frame 12). Nil when it asked no frames.
    static func sent(question: String, images: [AttachedImage]) -> PendingVideo? {
        var frames: [AttachedImage] = []
        for (k, marker) in ChatTurn.leadingImageMarkers(question).enumerated() {
            guard k < images.count else { break }
            if let n = marker {
                guard n == frames.count + 1 else { break }
                frames.append(images[k])
            }
        }
        guard !frames.isEmpty else { return nil }
        let stems = frames.map { img -> (String, Int?) in
            let name = ((img.name as NSString).lastPathComponent as NSString).deletingPathExtension
            guard let r = name.range(of: "-frame", options: .backwards), let n = Int(name[r.upperBound...]) else { return (name, nil) }
            return (String(name[..<r.lowerBound]), n)
        }
        let name = Set(stems.map(\.0)).count == 1 ? stems[0].0 : "video"
        return PendingVideo(path: name, frames: stems.enumerated().map { $1.1 ?? $0 }, images: frames)
    }

    /// `images` as they are shown: its frames as its one filmstrip entry, in the place of the first.
    func shown(in images: [AttachedImage]) -> [AttachedImage] {
        let frames = Set(imageIDs)
        var out: [AttachedImage] = [], placed = false
        for img in images {
            if frames.contains(img.id) {
                if !placed { out.append(strip); placed = true }
            } else {
                out.append(img)
            }
        }
        return out
    }

    /// Whether its frames are all still among `pending`.
    func isPending(in pending: [AttachedImage]) -> Bool {
        let ids = Set(pending.map(\.id))
        return !imageIDs.isEmpty && imageIDs.allSatisfy(ids.contains)
    }
}

public enum VideoFiles {
    /// Video containers (camcorder MPEG-TS, Windows Media, DVD, animated GIF too), and audio ones:
    /// FFmpeg opens those too and says they have no video stream.
    public static let extensions: Set<String> = ["mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "mts", "m2ts", "vob",
                                                 "ogv", "flv", "3gp", "3g2", "wmv", "asf", "gif",
                                                 "wav", "mp3", "m4a", "aac", "ogg", "opus", "flac"]

    public static func isVideo(_ path: String) -> Bool {
        extensions.contains((path as NSString).pathExtension.lowercased())
    }

    /// Samples `segments` frames of `path` as the model card's load_video does and writes each as a
    /// lossless PNG into `folder` (so it is attached, saved and reloaded as any image).
    public static func sampleFrames(_ path: String, segments: Int, into folder: URL) throws -> [(index: Int, file: String)] {
        let video = try VideoDecoder(path: path)
        let indices = video.sampledIndices(segments: segments)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        return try zip(indices, try video.frames(at: indices)).map { index, frame in
            guard let png = PNGEncoder.encode(frame) else { throw VideoError.corrupt(path, reason: "frame \(index) could not be kept as PNG") }
            let file = folder.appendingPathComponent("\(stem)-frame\(index).png").path
            try Data(png).write(to: URL(fileURLWithPath: file))
            return (index, file)
        }
    }
}

/// A saved turn on the screen: the text typed, its video's frames as one filmstrip. (Turns saved
/// before the typed text was kept apart from a video's question begin with its marker lines.)
func userMessage(_ turn: ChatTurn, images: [AttachedImage]) -> AppState.Message {
    let video = PendingVideo.sent(question: turn.question, images: images)
    let text = video == nil ? turn.typed : ChatTurn.withoutVideoMarkers(turn.typed) ?? turn.typed
    return .init(kind: .user, text: text, images: images, video: video)
}

/// The question for a message whose pending images hold a video's frames: `FrameK: <image>` for
/// each frame (as generate --video), `<image>` for the other images, in attach order.
func framedQuestion(_ question: String, pending: [AttachedImage], video: PendingVideo) -> String {
    var k = 0
    let prefix = pending.map { img -> String in
        guard video.imageIDs.contains(img.id) else { return "<image>\n" }
        k += 1
        return "Frame\(k): <image>\n"
    }.joined()
    return prefix + question
}

extension AttachedImage {
    /// Whether this is a pending video's panel entry (`Filmstrip.entry`: the only negative ids).
    var isFilmstrip: Bool { id < 0 }
}

enum Filmstrip {
    static let frameHeight = 64

    /// One panel entry standing for the frames: their thumbnails side by side (each scaled to
    /// `frameHeight` rows), the frames' tiles and token cost summed.
    static func entry(name: String, frames: [AttachedImage]) -> AttachedImage {
        let thumbs = frames.compactMap(\.thumbnail)
        let strip = thumbs.count == frames.count && !thumbs.isEmpty ? join(thumbs) : nil
        let tiles = frames.reduce(0) { $0 + $1.tiles }
        return AttachedImage(id: -1 - (frames.first?.id ?? 0), name: name,
                             width: strip?.width ?? frames.first?.width ?? 1, height: strip?.height ?? frames.first?.height ?? 1,
                             tiles: tiles, tokenCost: frames.reduce(0) { $0 + $1.tokenCost },
                             grid: TileGrid(cols: frames.count, rows: 1),
                             tiling: frames.first?.tiling ?? TilingOptions(), tokensPerTile: frames.first?.tokensPerTile ?? 256,
                             thumbnail: strip)
    }

    /// The images side by side, each resized (nearest pixel) to `frameHeight` rows, one dark column between.
    static func join(_ images: [RGBImage]) -> RGBImage {
        let h = frameHeight
        let widths = images.map { max(1, ($0.width * h + $0.height / 2) / max($0.height, 1)) }
        let total = widths.reduce(0, +) + images.count - 1
        var px = [UInt8](repeating: 16, count: total * h * 3)
        var x0 = 0
        for (img, w) in zip(images, widths) {
            for y in 0..<h {
                let sy = min(img.height - 1, y * img.height / h)
                for x in 0..<w {
                    let sx = min(img.width - 1, x * img.width / w)
                    let s = (sy * img.width + sx) * 3, d = (y * total + x0 + x) * 3
                    px[d] = img.pixels[s]; px[d + 1] = img.pixels[s + 1]; px[d + 2] = img.pixels[s + 2]
                }
            }
            x0 += w + 1
        }
        return RGBImage(width: total, height: h, pixels: px)
    }
}

/// The pending images as the panel shows them: a pending video's frames as its one filmstrip entry.
func shownPending(_ s: AppState) -> [AttachedImage] {
    guard let v = s.video, v.isPending(in: s.pending) else { return s.pending }
    return v.shown(in: s.pending)
}
