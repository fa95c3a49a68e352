/// The images a chat backend holds for its conversation, by id. An image is found again by its
/// key (content and tiling) when attached twice; it is pending until a turn shows it, and is
/// released once shown and no turn shows it any more (or when the front end lets it go before
/// that). Ids are never reused: a front end may still hold one that was released.
public struct HeldImages<Entry, Key: Hashable> {
    private var entries: [Int: Entry] = [:]
    private var keys: [Int: Key] = [:]
    private var byKey: [Key: Int] = [:]
    private var nextID = 1
    private var everShown: Set<Int> = []

    public init() {}

    public subscript(id: Int) -> Entry? { entries[id] }
    public var count: Int { entries.count }
    public var all: Dictionary<Int, Entry>.Values { entries.values }

    /// The image attached before under `key`.
    public func find(_ key: Key) -> Entry? { byKey[key].flatMap { entries[$0] } }

    /// Holds the entry `make` builds for the next id, found again by `key`.
    public mutating func add(key: Key, _ make: (_ id: Int) throws -> Entry) rethrows -> Entry {
        let id = nextID
        let entry = try make(id)
        nextID += 1
        entries[id] = entry; keys[id] = key; byKey[key] = id
        return entry
    }

    /// Records the images the turns show (`shown`) and releases those shown before that no turn
    /// shows now; pending ones stay.
    public mutating func releaseUnshown(shown: Set<Int>) {
        everShown.formUnion(shown)
        for id in Array(entries.keys) where !shown.contains(id) && everShown.contains(id) { remove(id) }
    }

    /// Releases `ids` (the front end let them go) unless a turn shows them.
    public mutating func release(_ ids: [Int], shown: Set<Int>) {
        for id in ids where !shown.contains(id) { remove(id) }
    }

    /// Everything, for a new or restored conversation (ids go on from where they were).
    public mutating func removeAll() {
        entries = [:]; keys = [:]; byKey = [:]; everShown = []
    }

    /// The ids a snapshot keeps: the turns' images in the order they first appear
    /// (`turnImageIDs`: every turn's, in order), then the pending ones (attached, never shown).
    public func snapshotOrder(turnImageIDs: [Int]) -> (ids: [Int], pending: [Int]) {
        var seen = Set<Int>(), ids: [Int] = []
        for id in turnImageIDs where !seen.contains(id) && entries[id] != nil { seen.insert(id); ids.append(id) }
        let pending = entries.keys.filter { !everShown.contains($0) && !seen.contains($0) }.sorted()
        return (ids + pending, pending)
    }

    private mutating func remove(_ id: Int) {
        guard entries.removeValue(forKey: id) != nil else { return }
        everShown.remove(id)
        if let key = keys.removeValue(forKey: id), byKey[key] == id { byKey[key] = nil }
    }
}

extension HeldImages: Sendable where Entry: Sendable, Key: Sendable {}
