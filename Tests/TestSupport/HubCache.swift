import Foundation

/// A Hugging Face hub cache as the hub lays it out: `models--OWNER--NAME/refs/main` naming a
/// revision, `snapshots/REVISION/FILE` each a symbolic link into `blobs/`.
public enum HubCache {
    /// Makes `repo`'s snapshot under `hub` with a copy of each of `source`'s files as a blob,
    /// except those in `missingBlobs`, whose links point at a blob that does not exist (what an
    /// interrupted download leaves). Returns the snapshot folder.
    @discardableResult
    public static func snapshot(hub: URL, repo: String, revision: String = "abc", copying source: URL,
                                missingBlobs: Set<String> = []) throws -> URL {
        let fm = FileManager.default
        let root = hub.appendingPathComponent("models--" + repo.replacingOccurrences(of: "/", with: "--"))
        let snap = root.appendingPathComponent("snapshots/" + revision), blobs = root.appendingPathComponent("blobs")
        for dir in [snap, blobs, root.appendingPathComponent("refs")] { try fm.createDirectory(at: dir, withIntermediateDirectories: true) }
        try Data(revision.utf8).write(to: root.appendingPathComponent("refs/main"))
        for (k, name) in try fm.contentsOfDirectory(atPath: source.path).sorted().enumerated() {
            let blob = blobs.appendingPathComponent("blob\(k)")
            if !missingBlobs.contains(name) { try fm.copyItem(at: source.appendingPathComponent(name), to: blob) }
            try fm.createSymbolicLink(atPath: snap.appendingPathComponent(name).path, withDestinationPath: "../../blobs/blob\(k)")
        }
        return snap
    }
}
