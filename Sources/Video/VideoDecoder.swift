internal import CFFmpeg
import FileInput
import Foundation
import Imaging

/// What a video holds, read from its container without decoding a frame.
public struct VideoInfo: Sendable, Equatable {
    /// The frames' size as shown (after `rotation`).
    public var width: Int
    public var height: Int
    /// Clockwise degrees (0, 90, 180 or 270) the stored frames are turned by to be upright, from
    /// the stream's `rotate` tag or display matrix (phone videos), as decord turns them.
    public var rotation: Int
    /// Frames of the video stream, counted from its packets (as decord's `len(VideoReader)`).
    public var frameCount: Int
    /// The stream's average frame rate (decord's `get_avg_fps()`); 0 when the container has none.
    public var averageFPS: Double
    public var codec: String
}

/// Reads a video file with FFmpeg's libraries: the container's facts, then chosen frames as RGB,
/// one frame in memory at a time (the file is streamed, never read whole).
///
/// Frames are numbered in presentation order from 0, and converted to 8-bit RGB by swscale with
/// the frame's own colour matrix and range, as decord's reader does (the matrix of the frame's
/// colour space, BT.601 when unspecified; limited range unless the frame says full).
public struct VideoDecoder: Sendable {
    /// The most pixels a frame may have (16K x 8K): a header claiming more is refused before
    /// anything is decoded.
    public static let maxPixels = 16_384 * 8_192
    /// Containers read; others (playlists, concat lists, anything that opens further files or
    /// URLs) are refused. Audio formats are here so that an audio file gets the audio-only message.
    static let formats = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf,nut,ivf,gif,h264,hevc,m4v,mjpeg,wav,mp3,flac,aac"

    public let path: String
    public let info: VideoInfo
    let maxPixels: Int

    public init(path: String, maxPixels: Int = VideoDecoder.maxPixels) throws {
        self.path = path
        self.maxPixels = maxPixels
        let input = try Input(path: path)
        let st = input.stream
        let par = st.pointee.codecpar.pointee
        let w = Int(par.width), h = Int(par.height)
        guard w > 0, h > 0 else { throw VideoError.corrupt(path, reason: "its video stream has no frame size") }
        if w.multipliedReportingOverflow(by: h).partialValue > maxPixels || w > 65_536 || h > 65_536 {
            throw VideoError.tooLarge(path, width: w, height: h, limit: maxPixels)
        }
        let codecName = Self.codecName(par)
        guard avcodec_find_decoder(par.codec_id) != nil else { throw VideoError.missingCodec(path, codec: codecName) }
        var count = 0
        try input.forEachPacket { _ in count += 1; return true }
        guard count > 0 else { throw VideoError.noFrames(path) }
        // An MP4 whose index comes first and whose data was cut off reads as a shorter video
        // without any error: its index still places frames past the end of the file.
        let fileBytes = avio_size(input.context.pointee.pb)
        if fileBytes > 0, let listed = Self.indexedEnd(st), listed > fileBytes {
            throw VideoError.cutShort(path, fileBytes: fileBytes, indexedBytes: listed)
        }
        let rate = st.pointee.avg_frame_rate
        let fps = rate.num > 0 && rate.den > 0 ? Double(rate.num) / Double(rate.den) : 0
        let rotation = Self.rotation(st)
        let turned = rotation == 90 || rotation == 270
        info = VideoInfo(width: turned ? h : w, height: turned ? w : h, rotation: rotation, frameCount: count, averageFPS: fps,
                         codec: codecName)
    }

    /// The byte just past the last packet the stream's index places in the file, if it has one.
    static func indexedEnd(_ stream: UnsafeMutablePointer<AVStream>) -> Int64? {
        var end: Int64? = nil
        for i in 0..<avformat_index_get_entries_count(stream) {
            guard let e = avformat_index_get_entry(stream, i), e.pointee.pos >= 0 else { continue }
            end = max(end ?? 0, e.pointee.pos + Int64(e.pointee.size))
        }
        return end
    }

    /// decord's `GetRotation`: the `rotate` tag when it is set and not "0", else minus the display
    /// matrix's angle; in [0, 360), truncated to whole degrees. Only 90, 180 and 270 turn frames.
    static func rotation(_ stream: UnsafeMutablePointer<AVStream>) -> Int {
        var theta = 0.0
        if let tag = av_dict_get(stream.pointee.metadata, "rotate", nil, 0), let value = tag.pointee.value,
           value.pointee != 0, strcmp(value, "0") != 0 {
            theta = atof(value)
        }
        if theta == 0, let matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, nil) {
            theta = matrix.withMemoryRebound(to: Int32.self, capacity: 9) { -av_display_rotation_get($0) }
        }
        guard theta.isFinite else { return 0 }
        theta = fmod(theta, 360)
        if theta < 0 { theta += 360 }
        let degrees = Int(theta)
        return [90, 180, 270].contains(degrees) ? degrees : 0
    }

    /// The codec's name, or for one FFmpeg does not know, the stream's four-character tag.
    static func codecName(_ par: AVCodecParameters) -> String {
        guard par.codec_id == AV_CODEC_ID_NONE else { return String(cString: avcodec_get_name(par.codec_id)) }
        let tag = (0..<4).map { UInt8(truncatingIfNeeded: par.codec_tag >> (8 * $0)) }
        guard tag.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return "an unknown codec" }
        return "an unknown codec (tag \(String(decoding: tag, as: UTF8.self)))"
    }

    /// The model card's sampling over the whole video (`get_index` with no bound; a stream with no
    /// average frame rate, such as a raw elementary stream, is sampled over all its frames).
    public func sampledIndices(segments: Int) -> [Int] {
        FrameSampling.indices(maxFrame: info.frameCount - 1, fps: info.averageFPS, segments: segments)
    }

    /// The frames at `indices` (0-based, presentation order), in the order asked; an index may repeat.
    /// Decodes from the start up to the last one asked for, keeping only those.
    public func frames(at indices: [Int]) throws -> [RGBImage] {
        guard let last = indices.max() else { return [] }
        precondition(indices.allSatisfy { $0 >= 0 }, "frame indices are 0-based")
        let wanted = Set(indices)
        var found: [Int: RGBImage] = [:]
        let input = try Input(path: path)
        let decoder = try Decoder(input: input, path: path)
        let converter = Converter()
        var next = 0
        let take: (UnsafeMutablePointer<AVFrame>) throws -> Bool = { frame in
            defer { next += 1 }
            if wanted.contains(next) {
                found[next] = try converter.rgb(frame, path: path, maxPixels: maxPixels).turned(clockwise: info.rotation)
            }
            return next < last
        }
        var more = true
        try input.forEachPacket { packet in
            more = try decoder.send(packet, take)
            return more
        }
        if more { try decoder.drain(take) }
        guard found.count == wanted.count else { throw VideoError.truncated(path, decoded: next, wanted: last) }
        return indices.map { found[$0]! }
    }
}

/// An opened container and its chosen video stream.
final class Input {
    let context: UnsafeMutablePointer<AVFormatContext>
    let stream: UnsafeMutablePointer<AVStream>
    let path: String

    init(path: String) throws {
        Quiet.once
        self.path = path
        if let problem = FileInput.kind(path) { throw VideoError.unreadable(path, reason: problem.reason) }
        var st = stat()
        if stat(FileInput.fileSystemPath(path), &st) == 0, st.st_size == 0 { throw VideoError.empty(path) }
        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        var options: OpaquePointer? = nil
        av_dict_set(&options, "protocol_whitelist", "file", 0)
        av_dict_set(&options, "format_whitelist", VideoDecoder.formats, 0)
        defer { av_dict_free(&options) }
        let url = "file:" + String(decoding: FileInput.fileSystemPath(path).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let opened = avformat_open_input(&ctx, url, nil, &options)
        guard opened >= 0, let ctx else {
            throw VideoError.notAVideo(path, reason: Self.refusedFormat(path) ?? ffmpegMessage(opened))
        }
        context = ctx
        var ok = false
        defer { if !ok { var c: UnsafeMutablePointer<AVFormatContext>? = ctx; avformat_close_input(&c) } }
        let info = avformat_find_stream_info(ctx, nil)
        guard info >= 0 else { throw VideoError.corrupt(path, reason: ffmpegMessage(info)) }
        var chosen: UnsafeMutablePointer<AVStream>? = nil
        let n = Int(ctx.pointee.nb_streams)
        for i in 0..<n {
            guard let s = ctx.pointee.streams[i] else { continue }
            guard s.pointee.codecpar.pointee.codec_type == AVMEDIA_TYPE_VIDEO,
                  s.pointee.disposition & AV_DISPOSITION_ATTACHED_PIC == 0 else { continue }
            chosen = s
            break
        }
        guard let chosen else { throw VideoError.audioOnly(path) }
        stream = chosen
        ok = true
    }

    deinit {
        var c: UnsafeMutablePointer<AVFormatContext>? = context
        avformat_close_input(&c)
    }

    /// When FFmpeg recognises the file's first bytes as a format outside `VideoDecoder.formats`
    /// (a playlist, a still-image format), says which: FFmpeg itself only says "invalid argument".
    static func refusedFormat(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 4096)) ?? Data())
        guard !head.isEmpty else { return nil }
        var buffer = head + [UInt8](repeating: 0, count: Int(AVPROBE_PADDING_SIZE))
        let found = buffer.withUnsafeMutableBufferPointer { buf in
            path.withCString { name -> UnsafePointer<AVInputFormat>? in
                var probe = AVProbeData()
                probe.filename = name
                probe.buf = buf.baseAddress
                probe.buf_size = Int32(head.count)
                return av_probe_input_format(&probe, 1)
            }
        }
        guard let format = found else { return nil }
        let names = String(cString: format.pointee.name).split(separator: ",")
        let allowed = Set(VideoDecoder.formats.split(separator: ","))
        guard !names.contains(where: allowed.contains) else { return nil }
        let long = format.pointee.long_name.map { String(cString: $0) } ?? String(names.first ?? "")
        return "its format, \(long), is not one this program reads"
    }

    /// Calls `body` with each packet of the video stream in file order until it returns false or
    /// the file ends; a read error other than the end is the file's corruption.
    func forEachPacket(_ body: (UnsafeMutablePointer<AVPacket>) throws -> Bool) throws {
        guard let packet = av_packet_alloc() else { throw VideoError.unreadable(path, reason: "out of memory") }
        defer { var p: UnsafeMutablePointer<AVPacket>? = packet; av_packet_free(&p) }
        let index = stream.pointee.index
        while true {
            let r = av_read_frame(context, packet)
            if r == cffmpeg_error_eof() { return }
            if r < 0 { throw VideoError.corrupt(path, reason: ffmpegMessage(r)) }
            defer { av_packet_unref(packet) }
            if packet.pointee.stream_index == index {
                if try !body(packet) { return }
            }
        }
    }
}

/// The video stream's decoder.
final class Decoder {
    let context: UnsafeMutablePointer<AVCodecContext>
    let frame: UnsafeMutablePointer<AVFrame>
    let path: String

    init(input: Input, path: String) throws {
        self.path = path
        let par = input.stream.pointee.codecpar!
        let name = VideoDecoder.codecName(par.pointee)
        guard let codec = avcodec_find_decoder(par.pointee.codec_id) else { throw VideoError.missingCodec(path, codec: name) }
        guard let ctx = avcodec_alloc_context3(codec), let frame = av_frame_alloc() else {
            throw VideoError.unreadable(path, reason: "out of memory")
        }
        context = ctx
        self.frame = frame
        var r = avcodec_parameters_to_context(ctx, par)
        if r >= 0 { r = avcodec_open2(ctx, codec, nil) }
        if r < 0 { throw VideoError.corrupt(path, reason: "the \(name) decoder refused the stream: \(ffmpegMessage(r))") }
    }

    deinit {
        var c: UnsafeMutablePointer<AVCodecContext>? = context
        avcodec_free_context(&c)
        var f: UnsafeMutablePointer<AVFrame>? = frame
        av_frame_free(&f)
    }

    /// Sends one packet (a damaged packet is skipped, as FFmpeg's tools do; nil ends the stream)
    /// and hands each frame it completes to `take`; false when `take` wants no more.
    func send(_ packet: UnsafeMutablePointer<AVPacket>?, _ take: (UnsafeMutablePointer<AVFrame>) throws -> Bool) throws -> Bool {
        let r = avcodec_send_packet(context, packet)
        if r < 0 && packet != nil { return true }
        return try receive(take)
    }

    private func receive(_ take: (UnsafeMutablePointer<AVFrame>) throws -> Bool) throws -> Bool {
        while true {
            let r = avcodec_receive_frame(context, frame)
            if r == cffmpeg_error_again() || r == cffmpeg_error_eof() { return true }
            if r < 0 { throw VideoError.corrupt(path, reason: ffmpegMessage(r)) }
            defer { av_frame_unref(frame) }
            if try !take(frame) { return false }
        }
    }

    /// The frames the decoder still holds at the end of the file.
    func drain(_ take: (UnsafeMutablePointer<AVFrame>) throws -> Bool) throws {
        _ = try send(nil, take)
    }
}

/// swscale from any decoded pixel format to packed RGB24, same size.
final class Converter {
    private var context: OpaquePointer? = nil

    deinit { sws_freeContext(context) }

    func rgb(_ frame: UnsafeMutablePointer<AVFrame>, path: String, maxPixels: Int) throws -> RGBImage {
        let w = Int(frame.pointee.width), h = Int(frame.pointee.height)
        guard w > 0, h > 0 else { throw VideoError.corrupt(path, reason: "a frame has no size") }
        if w > 65_536 || h > 65_536 || w * h > maxPixels { throw VideoError.tooLarge(path, width: w, height: h, limit: maxPixels) }
        let format = AVPixelFormat(rawValue: frame.pointee.format)
        context = sws_getCachedContext(context, Int32(w), Int32(h), format, Int32(w), Int32(h), AV_PIX_FMT_RGB24,
                                       Int32(SWS_BILINEAR), nil, nil, nil)
        guard let context else {
            let name = av_get_pix_fmt_name(format).map { String(cString: $0) } ?? "an unknown pixel format"
            throw VideoError.corrupt(path, reason: "its frames are in \(name), which cannot be converted to RGB")
        }
        // The frame's colour matrix and range, as libavfilter's scale filter (decord's path) sets them.
        var invTable: UnsafeMutablePointer<Int32>? = nil, table: UnsafeMutablePointer<Int32>? = nil
        var srcRange: Int32 = 0, dstRange: Int32 = 0, brightness: Int32 = 0, contrast: Int32 = 0, saturation: Int32 = 0
        if sws_getColorspaceDetails(context, &invTable, &srcRange, &table, &dstRange, &brightness, &contrast, &saturation) >= 0 {
            let coefficients = sws_getCoefficients(Int32(frame.pointee.colorspace.rawValue))
            if frame.pointee.color_range != AVCOL_RANGE_UNSPECIFIED {
                srcRange = frame.pointee.color_range == AVCOL_RANGE_JPEG ? 1 : 0
            }
            _ = sws_setColorspaceDetails(context, coefficients, srcRange, table, dstRange, brightness, contrast, saturation)
        }
        let stride = (w * 3 + 63) & ~63
        var buffer = [UInt8](repeating: 0, count: stride * h + 64)
        let done = buffer.withUnsafeMutableBufferPointer { out -> Int32 in
            var dst: [UnsafeMutablePointer<UInt8>?] = [out.baseAddress, nil, nil, nil]
            var dstStride: [Int32] = [Int32(stride), 0, 0, 0]
            return withUnsafePointer(to: &frame.pointee.data) { data in
                withUnsafePointer(to: &frame.pointee.linesize) { lines in
                    data.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { src in
                        lines.withMemoryRebound(to: Int32.self, capacity: 8) { srcStride in
                            sws_scale(context, src, srcStride, 0, Int32(h), &dst, &dstStride)
                        }
                    }
                }
            }
        }
        guard done == Int32(h) else { throw VideoError.corrupt(path, reason: "a frame could not be converted to RGB") }
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { pixels[(y * w * 3)..<((y + 1) * w * 3)] = buffer[(y * stride)..<(y * stride + w * 3)] }
        return RGBImage(width: w, height: h, pixels: pixels)
    }
}

extension RGBImage {
    /// The image turned clockwise by 90, 180 or 270 degrees (any other value: as it is).
    func turned(clockwise degrees: Int) -> RGBImage {
        guard [90, 180, 270].contains(degrees) else { return self }
        let w = width, h = height
        let (ow, oh) = degrees == 180 ? (w, h) : (h, w)
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<oh {
                    for x in 0..<ow {
                        let (sx, sy): (Int, Int)
                        switch degrees {
                        case 90: (sx, sy) = (y, h - 1 - x)
                        case 270: (sx, sy) = (w - 1 - y, x)
                        default: (sx, sy) = (w - 1 - x, h - 1 - y)
                        }
                        let s = (sy * w + sx) * 3, d = (y * ow + x) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return RGBImage(width: ow, height: oh, pixels: out)
    }
}

/// FFmpeg's log goes nowhere: its lines quote container metadata, which must not reach a terminal raw.
enum Quiet {
    static let once: Void = { av_log_set_level(AV_LOG_QUIET) }()
}

func ffmpegMessage(_ code: Int32) -> String {
    var buf = [CChar](repeating: 0, count: 256)
    av_strerror(code, &buf, buf.count)
    let text = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return text.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: ". "))
}
