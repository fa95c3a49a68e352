import Foundation

/// A file written where a user asked (an export, dump-vision's tensors): an existing one is
/// replaced only when asked to, one that is no regular file never, and it is written whole or
/// not at all (a temporary file renamed over the target: a link there is replaced, not followed,
/// and a full disk leaves the target as it was).
public enum OutputFile {
    /// Refuses an existing target without `overwrite`, and one that is no regular file (a
    /// device, a FIFO, a folder) even with it: replacing /dev/null with an export helps no one.
    public static func refuseExisting(_ url: URL, overwrite: Bool) throws {
        var st = stat()
        guard lstat(url.path, &st) == 0 else { return }
        let type = st.st_mode & S_IFMT
        if type != S_IFREG && type != S_IFLNK {
            let kind = type == S_IFDIR ? "a folder" : type == S_IFIFO ? "a FIFO (named pipe)" : type == S_IFSOCK ? "a socket" : "a device"
            throw ConversationError.exportFailed(url.path, reason: "it is \(kind), not a regular file; output is written only as a file of its own")
        }
        guard !overwrite else { return }
        throw ConversationError.exportFailed(url.path, reason: "it exists already (--force replaces it)")
    }

    /// Writes `data` to `url` whole or not at all; a failure is one sentence naming `url`.
    public static func write(_ data: Data, to url: URL) throws {
        try writing(url.path) { try AtomicFile.write(data, to: url) }
    }

    /// Runs a write, giving a failure as one sentence naming `path`.
    static func writing(_ path: String, _ body: () throws -> Void) throws {
        do { try body() } catch { throw ConversationError.exportFailed(path, reason: AtomicFile.reason(error)) }
    }
}
