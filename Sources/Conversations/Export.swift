import ChatAPI
import FileInput
import Foundation

/// Export to Markdown (a file plus its images beside it) or to one self-contained JSON file,
/// and import of that JSON.
extension ConversationStore {
    /// The single-file export: the conversation and its images, base64.
    public struct Export: Codable, Sendable {
        public var conversation: ConversationFile
        /// sha256 -> base64 bytes.
        public var images: [String: String]
    }

    /// Writes `<out>/<base>.md` and `<out>/<base>-images/` (when an image is left to show); returns
    /// the Markdown file's path. An existing `<base>.md` is replaced only with `overwrite`
    /// (nothing is written otherwise).
    public func exportMarkdown(_ id: String, to out: URL, overwrite: Bool = false) throws -> URL {
        let f = try read(id)
        let base = f.name ?? f.id
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: out.path, isDirectory: &isFolder)
        if exists, !isFolder.boolValue {
            throw ConversationError.exportFailed(out.path, reason: "it is a file; Markdown is written into a folder (NAME.md and NAME-images/)")
        }
        try OutputFile.refuseExisting(out.appendingPathComponent("\(base).md"), overwrite: overwrite)
        // The images the turns show (not those of an unsent question); one the conversation lost
        // (deleted by hand, a copy without its images folder) is named in the text instead.
        let stored = folder(id).appendingPathComponent("images")
        let present = Set(f.turns.flatMap(\.images).map { "\(f.images[$0].sha256).\(f.images[$0].format)" })
            .filter { FileInput.kind(stored.appendingPathComponent($0).path) == nil }
        let imagesDir = out.appendingPathComponent("\(base)-images")
        if !exists {
            // The folder is made, but not its parents: a mistyped path is an error, not a tree of folders.
            let parent = out.deletingLastPathComponent().path
            switch FileInput.kind(parent) {
            case .directory?: break
            case .missing?, .danglingLink?: throw ConversationError.exportFailed(out.path, reason: "its folder \(parent) does not exist")
            case .unreadable(let why)?: throw ConversationError.exportFailed(out.path, reason: "its folder \(parent): \(why)")
            default: throw ConversationError.exportFailed(out.path, reason: "\(parent) is a file, not a folder")
            }
            try OutputFile.writing(out.path) { try FileManager.default.createDirectory(at: out, withIntermediateDirectories: false) }
        }
        if !present.isEmpty {
            try OutputFile.writing(imagesDir.path) { try FileManager.default.createDirectory(at: imagesDir, withIntermediateDirectories: true) }
        }
        for file in present.sorted() {                // one at a time: a conversation's images can be large
            try OutputFile.write(try Self.readFile(stored.appendingPathComponent(file), limit: Limits.imageBytes), to: imagesDir.appendingPathComponent(file))
        }
        let df = ISO8601DateFormatter()
        var md = "# \(Self.markdownText(f.title))\n\n"
        md += "_Saved by internvl-chat \(df.string(from: f.updated)) · model \(Self.markdownLine(f.model.name)) (\(Self.markdownLine(f.model.weightFormat))) · \(f.turns.count) turns_\n\n"
        if !f.system.isEmpty { md += "> **System:** \(Self.markdownText(f.system).replacingOccurrences(of: "\n", with: "\n> "))\n\n" }
        for (k, t) in f.turns.enumerated() {
            md += "## \(k + 1). You\n\n"
            for i in t.images {
                let e = f.images[i]
                let alt = Self.markdownText(e.name).replacingOccurrences(of: "]", with: "\\]")
                guard present.contains("\(e.sha256).\(e.format)") else {
                    md += "_(image \(alt): missing from the saved conversation)_\n\n"
                    continue
                }
                let link = "\(base)-images/\(e.sha256).\(e.format)".addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? ""
                md += "![\(alt)](\(link))\n\n_\(e.width)x\(e.height), \(e.tiles) tiles, \(e.tokenCost) tokens_\n\n"
            }
            md += Self.markdownText(t.typed) + "\n\n### InternVL\n\n" + Self.markdownText(t.answer) + "\n\n"
            if t.interrupted { md += "_(interrupted)_\n\n" }
            if let r = t.record {
                md += String(format: "<sub>temperature %g, top-p %g, top-k %d, seed %llu · %d prompt tokens · %d tokens in %.1f s</sub>\n\n",
                             Double(r.parameters.temperature), Double(r.parameters.topP), r.parameters.topK, r.parameters.seed,
                             r.promptTokens, r.generatedTokens, r.decodeSeconds)
            }
        }
        let url = out.appendingPathComponent("\(base).md")
        try OutputFile.write(Data(md.utf8), to: url)
        return url
    }

    /// Text as it goes into Markdown: control characters dropped (no escape sequence survives);
    /// outside fenced code blocks `&`, `<` and `>` become entities (no raw HTML) and every line
    /// break is kept as a hard break (two spaces), as the chat showed it; code blocks stay as
    /// written (their text is never HTML).
    static func markdownText(_ s: String) -> String {
        let clean = String(String.UnicodeScalarView(s.unicodeScalars.filter {
            $0 == "\n" || $0 == "\t" || ($0.value >= 0x20 && !(0x7F...0x9F).contains($0.value))
        }))
        let lines = clean.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var out: [String] = [], inCode = false
        for (i, line) in lines.enumerated() {
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("```") { inCode.toggle(); out.append(line); continue }
            if inCode { out.append(line); continue }
            var t = line.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
            let next = i + 1 < lines.count ? lines[i + 1] : ""
            if !t.trimmingCharacters(in: .whitespaces).isEmpty && !next.trimmingCharacters(in: .whitespaces).isEmpty
                && !next.trimmingCharacters(in: .whitespaces).hasPrefix("```") { t += "  " }
            out.append(t)
        }
        return out.joined(separator: "\n")
    }

    /// `markdownText` of text that must stay on its line (a field of the header).
    static func markdownLine(_ s: String) -> String {
        markdownText(s.replacingOccurrences(of: "\n", with: " "))
    }

    /// Writes the single-file export to `url`; an existing file is replaced only with `overwrite`.
    public func exportJSON(_ id: String, to url: URL, overwrite: Bool = false) throws {
        try OutputFile.refuseExisting(url, overwrite: overwrite)
        let f = try read(id)
        var images: [String: String] = [:]
        for e in f.images where images[e.sha256] == nil {
            let src = folder(id).appendingPathComponent("images/\(e.sha256).\(e.format)")
            guard let data = try? Self.readFile(src, limit: Limits.imageBytes) else {
                throw ConversationError.unreadable(src.path, reason: "the image is missing from the conversation or not a readable file")
            }
            images[e.sha256] = data.base64EncodedString()
        }
        let data = try Self.encoder.encode(Export(conversation: f, images: images))
        let parent = url.deletingLastPathComponent().path
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isFolder) else {
            throw ConversationError.exportFailed(url.path, reason: "its folder \(parent) does not exist")
        }
        guard isFolder.boolValue else { throw ConversationError.exportFailed(url.path, reason: "\(parent) is a file, not a folder") }
        try OutputFile.write(data, to: url)
    }

    /// A JSON export's conversation, validated, and its images' bytes by SHA-256.
    public static func parseExport(_ data: Data, path: String) throws -> (ConversationFile, [String: Data]) {
        let export = try decodeExplained(Export.self, from: data, with: decoder, path: path, notJSON: "not an export at all")
        let f = export.conversation
        try f.validate(path: path)
        var bytes: [String: Data] = [:]
        for e in f.images {
            guard let b64 = export.images[e.sha256], let d = Data(base64Encoded: b64) else {
                throw ConversationError.invalid(path, reason: "image \(e.name) has no data")
            }
            guard d.count == e.bytes, ContentHash.sha256(d) == e.sha256 else {
                throw ConversationError.invalid(path, reason: "image \(e.name) does not match its SHA-256")
            }
            guard Self.hasHeader([UInt8](d.prefix(12)), of: e.format) else {
                throw ConversationError.invalid(path, reason: "image \(e.name) is not the \(e.format) image its entry says (no JPEG, PNG or WebP header of that kind)")
            }
            bytes[e.sha256] = d
        }
        return (f, bytes)
    }

    /// Reads a JSON export into the store as a new conversation; returns its id.
    public func importJSON(_ url: URL, name: String? = nil, now: Date = Date()) throws -> String {
        let data = try Self.readFile(url, limit: 4 * Limits.conversationFileBytes + 2 * Limits.imageBytes)
        var (f, bytes) = try Self.parseExport(data, path: url.path)
        let h = try create(now: now)
        defer { h.close() }
        if let n = name ?? f.name { try rename(h, to: n) }
        f.id = h.id; f.name = h.name
        let dir = folder(h.id)
        do {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("images"), withIntermediateDirectories: true)
            for e in f.images { try AtomicFile.write(bytes[e.sha256]!, to: dir.appendingPathComponent("images/\(e.sha256).\(e.format)")) }
            try claimingName(f.name, for: h.id) { try AtomicFile.write(try Self.encoder.encode(f), to: fileURL(h.id)) }
        } catch {
            try? FileManager.default.removeItem(at: dir)       // nothing half-imported stays behind
            throw error as? ConversationError ?? .saveFailed(fileURL(h.id).path, reason: AtomicFile.reason(error))
        }
        return h.id
    }
}
