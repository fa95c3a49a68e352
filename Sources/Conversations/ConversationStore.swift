import ChatAPI
import FileInput
import Foundation
import Imaging

/// The folder of saved conversations: one sub-folder per conversation,
///
///     <root>/<id>/conversation.json      the conversation (replaced atomically)
///     <root>/<id>/images/<sha256>.<ext>  each image once, by content
///     <root>/<id>/vision/<sha256>-<tiling>.f32  vision tokens, with the model they belong to
///     <root>/<id>/.lock                  held while an app has it open
///
/// Saving writes new image and vision files first, then a complete new conversation.json to a
/// temporary file, fsyncs it, renames it over the old one and fsyncs the folder: a crash at any
/// point leaves the previous conversation.json, whose files are all still there.
public final class ConversationStore: @unchecked Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    /// `$INTERNVL_CHAT_CONVERSATIONS`, else `$XDG_DATA_HOME/internvl-chat/conversations`
    /// (`~/.local/share/...`).
    public static func defaultRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let p = environment["INTERNVL_CHAT_CONVERSATIONS"], !p.isEmpty { return URL(fileURLWithPath: p) }
        let base = environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".local/share")
        return URL(fileURLWithPath: base).appendingPathComponent("internvl-chat/conversations")
    }

    // MARK: names

    /// Ids look like 20261127-105603-3fa2: sortable by time, unique by the random tail.
    public static func isValidID(_ s: String) -> Bool {
        s.count == 20 && s.allSatisfy { $0.isASCII && ($0.isNumber || $0 == "-" || ("a"..."f").contains($0)) }
    }

    public static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 80 && s.first != "." && s.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || " -_.".unicodeScalars.contains($0)
        } && s.trimmingCharacters(in: .whitespaces) == s
    }

    /// Why `name` cannot be given to a conversation now (nil: it can). Beyond `isValidName`, a
    /// new name may not start with "-": the command line would read it as an option
    /// (`internvl-chat export -x`). Files that carry such a name already stay readable.
    public static func problem(withNewName name: String) -> ConversationError? {
        guard isValidName(name) else { return .badName(name) }
        guard !name.hasPrefix("-") else { return .optionLikeName(name) }
        return nil
    }

    static func newID(_ now: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX"); f.timeZone = TimeZone(identifier: "UTC"); f.dateFormat = "yyyyMMdd-HHmmss"
        return f.string(from: now) + "-" + String(format: "%04x", UInt16.random(in: 0...UInt16.max))
    }

    func folder(_ id: String) -> URL { root.appendingPathComponent(id) }
    func fileURL(_ id: String) -> URL { folder(id).appendingPathComponent("conversation.json") }

    // MARK: listing

    public struct Summary: Sendable, Equatable {
        public var id: String
        public var name: String?
        public var title: String
        public var updated: Date
        public var turns: Int
        public var images: Int
        /// Set when the folder's conversation.json cannot be read (the entry is listed anyway).
        public var problem: String?
        public var label: String { name ?? id }
    }

    /// Every conversation, most recently updated first; unreadable ones last, with their problem.
    public func list() -> [Summary] {
        // A folder with no conversation.json and no images is one being created (or never saved): not listed.
        let ids = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter(Self.isValidID).filter {
            FileManager.default.fileExists(atPath: fileURL($0).path)
                || FileManager.default.fileExists(atPath: folder($0).appendingPathComponent("images").path)
        }
        var good: [(Summary, written: Date)] = [], broken: [Summary] = []
        for id in ids {
            do {
                let f = try read(id)
                good.append((Summary(id: id, name: f.name, title: f.title, updated: f.updated, turns: f.turns.count, images: f.imageCount),
                             written(id) ?? .distantPast))
            } catch {
                broken.append(Summary(id: id, name: nil, title: "", updated: written(id) ?? .distantPast, turns: 0, images: 0,
                                      problem: (error as? LocalizedError)?.errorDescription ?? "\(error)"))
            }
        }
        // `updated` is stored to the second: saves within one second are ordered by when their files were written.
        let recent = good.sorted { ($0.0.updated, $0.written) > ($1.0.updated, $1.written) }.map(\.0)
        return recent + broken.sorted { $0.id > $1.id }
    }

    /// When a conversation's file (else its folder) was last written.
    func written(_ id: String) -> Date? {
        [fileURL(id), folder(id)].lazy.compactMap { try? FileManager.default.attributesOfItem(atPath: $0.path)[.modificationDate] as? Date }.first
    }

    /// Conversations whose title, name, system message, questions or answers contain `text`
    /// (case and diacritics ignored), most recent first.
    public func search(_ text: String) -> [Summary] {
        list().filter { s in
            guard s.problem == nil, let f = try? read(s.id) else { return false }
            let hay = [f.title, f.name ?? "", f.system] + f.turns.flatMap { [$0.typed, $0.answer] }
            return hay.contains { $0.range(of: text, options: [.caseInsensitive, .diacriticInsensitive]) != nil }
        }
    }

    /// Every conversation (`list()`), or those that mention `text` (`search`); nil or "" lists all.
    public func list(matching text: String?) -> [Summary] {
        guard let text, !text.isEmpty else { return list() }
        return search(text)
    }

    /// What `--resume` without a name stands for: the most recent conversation.
    public static let latest = "@latest"

    /// The id for a name, an id, or a unique id prefix; "" or `latest` means the most recent.
    public func resolve(_ target: String) throws -> String {
        let nameOrID = target == Self.latest ? "" : target
        let all = list().filter { $0.problem == nil || $0.id.hasPrefix(nameOrID) }
        if nameOrID.isEmpty {
            guard let first = all.first(where: { $0.problem == nil }) else { throw ConversationError.notFound("(none saved yet)", store: root.path) }
            return first.id
        }
        if let s = all.first(where: { $0.name == nameOrID || $0.id == nameOrID }) { return s.id }
        let prefixed = all.filter { $0.id.hasPrefix(nameOrID) }
        if prefixed.count == 1 { return prefixed[0].id }
        if prefixed.count > 1 { throw ConversationError.ambiguous(nameOrID, matches: prefixed.map(\.id)) }
        let unreadable = list().filter { $0.problem != nil }.count
        if unreadable > 0 { throw ConversationError.notFoundAmongUnreadable(nameOrID, store: root.path, unreadable: unreadable) }
        throw ConversationError.notFound(nameOrID, store: root.path)
    }

    /// Deletes a saved conversation (by name, id or unique id prefix) with its images, unless
    /// another internvl-chat has it open; returns its label.
    @discardableResult
    public func delete(_ target: String) throws -> String {
        guard !target.isEmpty, target != Self.latest else { throw ConversationError.notFound("(no name given)", store: root.path) }
        let id = try resolve(target)
        let label = list().first { $0.id == id }?.label ?? id
        let fd = try lock(id)
        defer { Glibc.close(fd) }
        do { try FileManager.default.removeItem(at: folder(id)) } catch {
            throw ConversationError.saveFailed(folder(id).path, reason: "it could not be deleted (\(AtomicFile.reason(error)))")
        }
        return label
    }

    /// Reads and validates `conversation.json` of `id`.
    public func read(_ id: String) throws -> ConversationFile {
        let url = fileURL(id)
        let f = try Self.decode(Self.readFile(url, limit: Limits.conversationFileBytes), path: url.path)
        guard f.id == id else { throw ConversationError.invalid(url.path, reason: "it says it is \(f.id), but its folder is \(id)") }
        return f
    }

    /// A regular file of at most `limit` bytes, read once.
    static func readFile(_ url: URL, limit: Int) throws -> Data {
        do { return Data(try FileInput.read(url.path, limit: limit)) } catch {
            if case .tooLarge = error { throw ConversationError.invalid(url.path, reason: error.reason) }
            throw ConversationError.unreadable(url.path, reason: error.reason)
        }
    }

    /// Parses and validates a conversation file's bytes; `path` names it in messages.
    public static func decode(_ data: Data, path: String) throws -> ConversationFile {
        // The version first, so that a newer file gets the right message rather than a field error.
        struct Head: Decodable { var format: String?; var version: Int? }
        let head = try decodeExplained(Head.self, from: data, with: JSONDecoder(), path: path, notJSON: "not a conversation file at all")
        if let v = head.version, v > ConversationFile.currentVersion, head.format == ConversationFile.formatName {
            throw ConversationError.futureVersion(path, version: v)
        }
        let f: ConversationFile
        do { f = try decoder.decode(ConversationFile.self, from: data) } catch {
            throw ConversationError.invalid(path, reason: Self.describe(Self.tracedError(ConversationFile.self, data, decoder) ?? error))
        }
        try f.validate(path: path)
        return f
    }

    /// `T` decoded from `data`; a failure as the reason the file at `path` is invalid: text that
    /// is not JSON at all ("cut short, or `notJSON`"), else what is wrong at which field. Whether
    /// the text is JSON is asked only after a failure: a parse into Foundation's objects takes
    /// memory many times the file's size, and a good file would be parsed once more for nothing.
    static func decodeExplained<T: Decodable>(_ type: T.Type, from data: Data, with decoder: JSONDecoder, path: String,
                                              notJSON: String) throws -> T {
        do { return try decoder.decode(T.self, from: data) } catch {
            guard (try? JSONSerialization.jsonObject(with: data)) != nil else {
                throw ConversationError.invalid(path, reason: "it is not complete JSON (cut short, or \(notJSON))")
            }
            throw ConversationError.invalid(path, reason: Self.describe(Self.tracedError(T.self, data, decoder) ?? error))
        }
    }

    /// A failed decode's error again, through `PathTracingDecoder`, which also gives a number out
    /// of its field's range a field. Only after a failure: the wrapper made reading every file
    /// 40% slower (listing 500 conversations of 60 turns: 1.3 s against 0.9).
    static func tracedError<T: Decodable>(_ type: T.Type, _ data: Data, _ decoder: JSONDecoder) -> (any Error)? {
        do { _ = try decoder.decode(PathTraced<T>.self, from: data); return nil } catch { return error }
    }

    /// Dates as `.iso8601` reads them, but a bad one is an error at its field (Foundation's own
    /// strategy names no field).
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            if let date = ISO8601DateFormatter().date(from: try c.decode(String.self)) { return date }
            throw DecodingError.dataCorruptedError(in: c, debugDescription: notADate)
        }
        return d
    }()
    static let notADate = "not an ISO 8601 date"
    static let encoder: JSONEncoder = {
        let e = JSONEncoder(); e.dateEncodingStrategy = .iso8601;
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]; return e
    }()

    static func describe(_ error: Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func at(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "" : " at \(p.hasPrefix(".") ? String(p.dropFirst()) : p)"
        }
        switch e {
        case .keyNotFound(let k, let c): return "the field \(k.stringValue) is missing\(at(c))"
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return "a value has the wrong type\(at(c))"
        case .dataCorrupted(let c) where c.debugDescription == notADate:
            return "the date\(at(c)) is not an ISO 8601 date (such as 2026-12-07T02:29:34Z)"
        case .dataCorrupted(let c) where c.debugDescription.hasPrefix(PathTracingDecoder.outOfRange):
            let number = c.debugDescription.dropFirst(PathTracingDecoder.outOfRange.count)
            return "the number\(number.isEmpty ? "" : " \(number)")\(at(c)) is out of its field's range"
        case .dataCorrupted(let c):
            return "a value\(at(c)) cannot be read as its field's type"
        @unknown default: return "\(e)"
        }
    }

    // MARK: opening, saving

    /// A conversation this process has open for writing (its lock is held until `close`).
    public final class Handle: @unchecked Sendable {
        public let id: String
        public fileprivate(set) var name: String?
        /// The name the conversation's file carries as this process last read or wrote it.
        fileprivate var nameOnDisk: String?
        fileprivate var created: Date?
        fileprivate var lockFD: Int32
        fileprivate let folder: URL
        fileprivate init(id: String, name: String?, created: Date?, lockFD: Int32, folder: URL) {
            self.id = id; self.name = name; self.nameOnDisk = name; self.created = created; self.lockFD = lockFD; self.folder = folder
        }
        public var label: String { name ?? id }
        /// Releases the lock; a conversation never saved leaves no folder behind.
        public func close() {
            guard lockFD >= 0 else { return }
            if created == nil, !FileManager.default.fileExists(atPath: folder.appendingPathComponent("conversation.json").path) {
                try? FileManager.default.removeItem(at: folder)
            }
            Glibc.close(lockFD)
            lockFD = -1
        }
        deinit { close() }
    }

    /// Takes the lock of `id` (creating its folder when new).
    func lock(_ id: String) throws -> Int32 {
        let dir = folder(id)
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw ConversationError.saveFailed(dir.path, reason: AtomicFile.reason(error))
        }
        let path = dir.appendingPathComponent(".lock").path
        let fd = try Self.openLockFile(path)
        // A lock just released can still be held for a moment by a child process this process
        // is starting (between fork and exec it shares the descriptor): try for half a second.
        var held = flock(fd, LOCK_EX | LOCK_NB) == 0
        for _ in 0..<50 where !held && errno == EWOULDBLOCK {
            usleep(10_000)
            held = flock(fd, LOCK_EX | LOCK_NB) == 0
        }
        if !held {
            var buf = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buf, 32, 0)
            Glibc.close(fd)
            let pid = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            throw ConversationError.locked(id, by: "process \(pid)")
        }
        let me = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0); _ = pwrite(fd, me, me.count, 0)
        for sub in ["", "images", "vision"] { AtomicFile.removeTemporaries(in: dir.appendingPathComponent(sub)) }
        return fd
    }

    /// A new, empty conversation (nothing is written until the first save).
    public func create(now: Date = Date()) throws -> Handle {
        let id = Self.newID(now)
        return Handle(id: id, name: nil, created: nil, lockFD: try lock(id), folder: folder(id))
    }

    /// Opens a saved conversation for writing: the lock first, then the file (refused files are
    /// never written to).
    public func open(_ id: String) throws -> (Handle, ConversationFile) {
        let fd = try lock(id)
        do {
            let f = try read(id)
            return (Handle(id: id, name: f.name, created: f.created, lockFD: fd, folder: folder(id)), f)
        } catch { Glibc.close(fd); throw error }
    }

    /// A lock file opened (created when missing) for flock, never through a link (a copied folder
    /// may hold one pointing anywhere): one that is a link is replaced by a file of our own.
    static func openLockFile(_ path: String) throws -> Int32 {
        var fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        if fd < 0 && errno == ELOOP && unlink(path) == 0 {
            fd = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        }
        guard fd >= 0 else { throw ConversationError.saveFailed(path, reason: String(cString: strerror(errno))) }
        return fd
    }

    /// Runs `write` (the write of a conversation file that carries `name` for the first time)
    /// under the store's names lock, after checking again that no other conversation has that
    /// name: two processes saving or importing under one name at once could otherwise both pass
    /// `rename`'s check. With no name, just `write`.
    func claimingName(_ name: String?, for id: String, _ write: () throws -> Void) throws {
        guard let name else { return try write() }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let fd = try Self.openLockFile(root.appendingPathComponent(".names.lock").path)
        defer { Glibc.close(fd) }                     // (closing releases the lock)
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        if let other = list().first(where: { $0.name == name && $0.id != id }) { throw ConversationError.nameTaken(name, id: other.id) }
        try write()
    }

    /// Gives the open conversation a name (unique in the store); the name it has already is kept
    /// whatever it is.
    public func rename(_ h: Handle, to name: String) throws {
        if name != h.name, let problem = Self.problem(withNewName: name) { throw problem }
        if let other = list().first(where: { $0.name == name && $0.id != h.id }) { throw ConversationError.nameTaken(name, id: other.id) }
        h.name = name
    }

    /// Saves `snapshot` as conversation `h`, crash-safely (see the type's comment).
    public func save(_ snapshot: SessionSnapshot, to h: Handle, now: Date = Date()) throws {
        let dir = folder(h.id)
        var entries: [ConversationFile.ImageEntry] = []
        var index: [Int: Int] = [:]
        do {
            for sub in ["images", "vision"] { try Self.ownFolder(dir.appendingPathComponent(sub)) }
            for img in snapshot.images {
                let sha = img.info.sha256.isEmpty ? ContentHash.sha256(img.bytes) : img.info.sha256
                let format = Self.format(of: img.bytes)
                let entry = ConversationFile.ImageEntry(
                    sha256: sha, name: Self.displayName(img.info.name), bytes: img.bytes.count, format: format,
                    width: img.info.width, height: img.info.height, tiling: img.info.tiling, grid: img.info.grid,
                    tiles: img.info.tiles, tokenCost: img.info.tokenCost, tokensPerTile: img.info.tokensPerTile)
                if let same = entries.firstIndex(where: { $0.sha256 == sha && $0.tiling == entry.tiling }) {
                    index[img.info.id] = same; continue
                }
                index[img.info.id] = entries.count
                entries.append(entry)
                let file = dir.appendingPathComponent("images/\(sha).\(format)")
                if (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) != img.bytes.count {
                    try AtomicFile.write(Data(img.bytes), to: file)
                }
                if let tokens = img.tokens {
                    let v = dir.appendingPathComponent("vision/\(Self.visionName(sha, entry.tiling, snapshot.model))")
                    if !FileManager.default.fileExists(atPath: v.path) {
                        try AtomicFile.write(VisionTokens.encode(tokens, model: snapshot.model), to: v)
                    }
                }
            }
            let turns = snapshot.turns.map { t in
                ConversationFile.Turn(question: t.question, typed: t.typed, answer: t.answer,
                                      images: t.imageIDs.compactMap { index[$0] }, interrupted: t.interrupted, record: t.record)
            }
            let title = turns.first.map { Self.titleLine($0.typed) } ?? "(empty)"
            let pending = snapshot.pendingImageIDs.compactMap { index[$0] }
            let file = ConversationFile(format: ConversationFile.formatName, version: ConversationFile.currentVersion,
                                        id: h.id, name: h.name, title: title, created: h.created ?? now, updated: now,
                                        system: snapshot.systemMessage, model: snapshot.model, images: entries, turns: turns,
                                        draft: snapshot.draft.isEmpty ? nil : snapshot.draft, pending: pending.isEmpty ? nil : pending)
            // A name the file already carries was claimed when first written: it is not claimed
            // again (which reads every conversation in the store) at every save.
            try claimingName(h.name == h.nameOnDisk ? nil : h.name, for: h.id) {
                try AtomicFile.write(try Self.encoder.encode(file), to: fileURL(h.id))
            }
            h.nameOnDisk = h.name
            h.created = file.created
            prune(dir, keep: file)
        } catch let e as ConversationError {
            throw e
        } catch {
            throw ConversationError.saveFailed(fileURL(h.id).path, reason: AtomicFile.reason(error))
        }
    }

    /// A folder of the conversation's own: a link there (a copied folder may hold one pointing
    /// anywhere) is replaced by a real folder, so that saving and pruning never reach past it.
    static func ownFolder(_ url: URL) throws {
        var st = stat()
        if lstat(url.path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK { unlink(url.path) }
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Removes image files the saved conversation no longer names, and vision files of other
    /// images or other models (after a successful save): only files named as the store names
    /// them (a content hash first), in folders of its own.
    func prune(_ dir: URL, keep f: ConversationFile) {
        let images = Set(f.images.map { "\($0.sha256).\($0.format)" })
        let vision = Set(f.images.map { Self.visionName($0.sha256, $0.tiling, f.model) })
        for (sub, keep) in [("images", images), ("vision", vision)] {
            let folder = dir.appendingPathComponent(sub)
            var st = stat()
            guard lstat(folder.path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { continue }
            for n in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] where !keep.contains(n) && Self.isStoreFileName(n, in: sub) {
                try? FileManager.default.removeItem(at: folder.appendingPathComponent(n))
            }
        }
    }

    /// Whether `name` is one the store gives files in `sub`: images `<sha256>.<png|jpeg|webp>`,
    /// vision tokens `<sha256>-<tiling>-<model>.f32`.
    static func isStoreFileName(_ name: String, in sub: String) -> Bool {
        let hex = name.prefix(64)
        guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return false }
        let rest = name.dropFirst(64)
        return sub == "images" ? [".png", ".jpeg", ".webp"].contains(String(rest)) : rest.hasPrefix("-") && rest.hasSuffix(".f32")
    }

    // MARK: loading into a session

    public struct Loaded: Sendable {
        public var file: ConversationFile
        /// What the session needs; images that are missing or altered are left out (their turns
        /// keep their text).
        public var snapshot: SessionSnapshot
        /// Problems found, one sentence each (shown to the user; the conversation still loads).
        public var problems: [String]
        /// Images whose stored vision tokens fit the current model.
        public var cachedVision: Int
    }

    /// The session state of a saved conversation, for `model` (stored vision tokens are used
    /// only when they were computed by the same model).
    public func load(_ f: ConversationFile, model: ModelIdentity) -> Loaded {
        let dir = folder(f.id)
        var problems: [String] = [], images: [SessionSnapshot.Image] = [], ok = Set<Int>(), cached = 0
        for (i, e) in f.images.enumerated() {
            let path = dir.appendingPathComponent("images/\(e.sha256).\(e.format)")
            let label = "Image \(i + 1) (\(e.name))"
            guard let data = try? Self.readFile(path, limit: Limits.imageBytes) else {
                problems.append("\(label) is missing from \(path.path) or not a readable file; its turns keep their text only, and the next save drops it (put the file back before you go on to keep it)."); continue
            }
            guard data.count == e.bytes, ContentHash.sha256(data) == e.sha256 else {
                problems.append("\(label) was altered on disk (\(path.path)); its turns keep their text only, and the next save drops it."); continue
            }
            guard Self.hasHeader([UInt8](data.prefix(12)), of: e.format) else {
                problems.append("\(label) is not the \(e.format) image its entry says; its turns keep their text only."); continue
            }
            var tokens: [Float]?
            let v = dir.appendingPathComponent("vision/\(Self.visionName(e.sha256, e.tiling, model))")
            if let (m, t) = try? VisionTokens.decode(Self.readFile(v, limit: Limits.visionFileBytes)), m.sameModel(as: model) { tokens = t; cached += 1 }
            let info = AttachedImage(id: i + 1, name: e.name, width: e.width, height: e.height, tiles: e.tiles, tokenCost: e.tokenCost,
                                     grid: e.grid, tiling: e.tiling, tokensPerTile: e.tokensPerTile, sha256: e.sha256)
            images.append(.init(info: info, bytes: [UInt8](data), tokens: tokens))
            ok.insert(i)
        }
        let turns = f.turns.map { t -> ChatTurn in
            let lost = t.images.contains { !ok.contains($0) }
            // Without its images a turn is asked as typed: a video's markers (older saves keep
            // them in `typed`) would place images it no longer has.
            let text = ChatTurn.withoutVideoMarkers(t.typed) ?? t.typed
            return ChatTurn(question: lost ? text : t.question, typed: t.typed, answer: t.answer,
                            imageIDs: lost ? [] : t.images.map { $0 + 1 }, interrupted: t.interrupted, record: t.record)
        }
        var snapshot = SessionSnapshot(systemMessage: f.system, turns: turns, images: images, model: f.model)
        snapshot.draft = f.draft ?? ""
        snapshot.pendingImageIDs = (f.pending ?? []).filter { ok.contains($0) }.map { $0 + 1 }
        return Loaded(file: f, snapshot: snapshot,
                      problems: problems, cachedVision: cached)
    }

    // MARK: helpers

    /// The format whose signature `b` starts with: png, webp or jpeg; nil for none of them.
    static func signature(of b: [UInt8]) -> String? {
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "png" }
        if b.count >= 12, b.starts(with: Array("RIFF".utf8)), Array(b[8..<12]) == Array("WEBP".utf8) { return "webp" }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) { return "jpeg" }
        return nil
    }

    /// Whether `b` starts as an image of `format` does.
    static func hasHeader(_ b: [UInt8], of format: String) -> Bool { signature(of: b) == format }

    /// The extension an image's file is stored under (jpeg for bytes of no known signature).
    static func format(of b: [UInt8]) -> String { signature(of: b) ?? "jpeg" }

    static func displayName(_ path: String) -> String {
        let n = (path as NSString).lastPathComponent
        return String(n.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(200).map(Character.init))
    }

    static func titleLine(_ s: String) -> String {
        let line = s.split(separator: "\n").first.map(String.init) ?? s
        return line.count > 60 ? String(line.prefix(59)) + "…" : line
    }

    /// The vision tokens of an image cut one way by one model (the model is in the name, so a
    /// file is never stale: another model writes its own).
    static func visionName(_ sha: String, _ t: TilingOptions, _ m: ModelIdentity) -> String {
        "\(sha)-\(t.tileSize)-\(t.minTiles)-\(t.maxTiles)-\(t.useThumbnail ? 1 : 0)-\(m.configSHA256.prefix(16))-\(m.weightFormat).f32"
    }
}
