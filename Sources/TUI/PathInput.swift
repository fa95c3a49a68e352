import FileInput
import Foundation
import Imaging

/// Paths typed, pasted or dropped into the input: unquoting, splitting a paste into paths, and
/// Tab completion.
public enum PathInput {
    /// The paths in pasted text, or nil when it does not read as paths: each separated by
    /// whitespace or newlines, optionally quoted ('...' or "..."), spaces escaped with a
    /// backslash, or `file://` URLs (percent-decoded), `~` expanded.
    public static func split(_ text: String) -> [String]? {
        var out: [String] = []
        var cur = "", quote: Character?, escaped = false, any = false
        func flush() { if any { out.append(cur) }; cur = ""; any = false }
        for ch in text.trimmingCharacters(in: .whitespacesAndNewlines) {
            if escaped { cur.append(ch); escaped = false; any = true; continue }
            if let q = quote { if ch == q { quote = nil } else { cur.append(ch) }; any = true; continue }
            switch ch {
            case "\\": escaped = true
            case "'", "\"": quote = ch; any = true
            case " ", "\t", "\n", "\r": flush()
            default: cur.append(ch); any = true
            }
        }
        if quote != nil { return nil }
        flush()
        let paths = out.map(normalise)
        guard !paths.isEmpty, paths.allSatisfy({ $0.hasPrefix("/") || $0.hasPrefix("./") || $0.hasPrefix("../") }) else { return nil }
        return paths
    }

    /// Whether a pasted path is offered for attaching: a regular file that is an image by its
    /// first bytes (the formats /attach decodes, whatever the extension says) or a video by its
    /// extension (as /attach tells them apart). A folder, a text or source file, a device or a
    /// path that does not exist is not.
    public static func isAttachable(_ path: String) -> Bool {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              attributes[.type] as? FileAttributeType == .typeRegular else { return false }
        if VideoFiles.isVideo(path) { return true }
        guard let file = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? file.close() }
        let head = (try? file.read(upToCount: 12)) ?? nil
        return ImageDecoder.format(of: [UInt8](head ?? Data())) != nil
    }

    static func normalise(_ p: String) -> String {
        FileInput.expandingTilde(fromFileURL(p))
    }

    /// `file:///a%20b` (or `file://host/a%20b`) as `/a b`; anything else as it is.
    static func fromFileURL(_ p: String) -> String {
        guard p.hasPrefix("file://") else { return p }
        var t = String(p.dropFirst(7))
        if !t.hasPrefix("/"), let slash = t.firstIndex(of: "/") { t = String(t[slash...]) }   // file://host/path
        return t.removingPercentEncoding ?? t
    }

    /// Tab completion of the path after `/attach ` (or `/load `): the new input and a hint listing
    /// the choices when there are several; nil when there is nothing to complete.
    /// The longest start all of `names` share (`names` not empty).
    static func commonPrefix(_ names: [String]) -> String {
        var c = names[0]
        for n in names.dropFirst() { while !n.hasPrefix(c) { c.removeLast() } }
        return c
    }

    public static func complete(_ input: String, fileManager: FileManager = .default) -> (input: String, hint: String?)? {
        guard let cmd = ["/attach "].first(where: { input.hasPrefix($0) }) else { return nil }
        let typed = String(input.dropFirst(cmd.count))
        let expanded = FileInput.expandingTilde(typed)
        let dir: String, stem: String
        if typed.isEmpty || typed.hasSuffix("/") { dir = typed.isEmpty ? "." : expanded; stem = "" }
        else { dir = (expanded as NSString).deletingLastPathComponent.isEmpty ? "." : (expanded as NSString).deletingLastPathComponent
               stem = (expanded as NSString).lastPathComponent }
        guard let names = try? fileManager.contentsOfDirectory(atPath: dir) else { return nil }
        // A name that is not UTF-8 comes back with U+FFFD in it, naming no file; one with a control
        // character (a newline) cannot be one line of input. Neither is offered.
        func typable(_ n: String) -> Bool {
            if n.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) { return false }
            return !n.unicodeScalars.contains("\u{FFFD}") || fileManager.fileExists(atPath: (dir as NSString).appendingPathComponent(n))
        }
        let matches = names.filter { $0.hasPrefix(stem) && (stem.hasPrefix(".") || !$0.hasPrefix(".")) && typable($0) }.sorted()
        guard !matches.isEmpty else { return (input, "no match") }
        func isDir(_ n: String) -> Bool {
            var d: ObjCBool = false
            return fileManager.fileExists(atPath: (dir as NSString).appendingPathComponent(n), isDirectory: &d) && d.boolValue
        }
        let common = commonPrefix(matches)
        let typedDir = typed.isEmpty ? "" : (typed.hasSuffix("/") ? typed : String(typed.dropLast(stem.count)))
        var completed = typedDir + common
        if matches.count == 1 && isDir(common) { completed += "/" }
        let hint = matches.count > 1 ? matches.prefix(12).map { isDir($0) ? $0 + "/" : $0 }.joined(separator: "  ")
            + (matches.count > 12 ? "  … (\(matches.count))" : "") : nil
        return (cmd + completed, hint)
    }
}
