/// InternVL's `dynamic_preprocess` (the model card's load_image): pick a grid of tiles whose
/// aspect ratio is closest to the image's, resize the whole image to it, cut tiles row by row,
/// and add a thumbnail of the whole image when there is more than one tile.
public struct TilingOptions: Sendable, Equatable, Codable {
    public var tileSize: Int
    public var minTiles: Int
    public var maxTiles: Int
    public var useThumbnail: Bool

    public init(tileSize: Int = 448, minTiles: Int = 1, maxTiles: Int = 12, useThumbnail: Bool = true) {
        self.tileSize = tileSize
        self.minTiles = minTiles
        self.maxTiles = maxTiles
        self.useThumbnail = useThumbnail
    }
}

public enum DynamicTiling {
    /// The tiles one image may be cut into: what the options, requests and conversation files accept
    /// (the model cards use up to 12; 40 keeps a 4:1 panorama's grid).
    public static let tileCountLimit = 1...40
    /// "1 to 40", as messages name the limit.
    public static let tileCountText = "\(tileCountLimit.lowerBound) to \(tileCountLimit.upperBound)"

    /// The refusal of a requested most-tiles count outside `tileCountLimit`, naming the option.
    public static func checkMaxTiles(_ n: Int?, option: String) -> String? {
        guard let n, !tileCountLimit.contains(n) else { return nil }
        return "\(option) must be between \(tileCountLimit.lowerBound) and \(tileCountLimit.upperBound) (was \(n))"
    }

    /// Candidate grids (columns, rows) with min <= cols * rows <= max, sorted by tile count.
    /// Within one count the order is CPython's iteration order of the official code's set of
    /// tuples, which decides the winner when two grids of the same count tie exactly.
    public static func candidates(min: Int, max: Int) -> [(cols: Int, rows: Int)] {
        var out: [(Int, Int)] = []
        for n in min...max {
            for i in 1...n { for j in 1...n where i * j <= max && i * j >= min && !out.contains(where: { $0 == (i, j) }) {
                out.append((i, j))
            } }
        }
        return stableSortedByProduct(pythonSetOrder(out))
    }

    /// find_closest_aspect_ratio of the official code, comparisons in Double as Python does.
    public static func grid(width: Int, height: Int, options: TilingOptions) -> (cols: Int, rows: Int) {
        let aspect = Double(width) / Double(height)
        let area = Double(width * height)
        var bestDiff = Double.infinity
        var best = (cols: 1, rows: 1)
        for r in candidates(min: options.minTiles, max: options.maxTiles) {
            let diff = abs(aspect - Double(r.cols) / Double(r.rows))
            if diff < bestDiff {
                bestDiff = diff
                best = r
            } else if diff == bestDiff,
                      area > 0.5 * Double(options.tileSize) * Double(options.tileSize) * Double(r.cols) * Double(r.rows) {
                best = r
            }
        }
        return best
    }

    /// The tiles of `image` (row by row), then the thumbnail when there is more than one.
    public static func tiles(of image: RGBImage, options: TilingOptions) -> [RGBImage] {
        let g = grid(width: image.width, height: image.height, options: options)
        let s = options.tileSize
        let resized = PillowResize.resize(image, width: s * g.cols, height: s * g.rows)
        var out: [RGBImage] = []
        for i in 0..<(g.cols * g.rows) {
            out.append(resized.crop(x: (i % g.cols) * s, y: (i / g.cols) * s, width: s, height: s))
        }
        if options.useThumbnail && out.count != 1 {
            out.append(PillowResize.resize(image, width: s, height: s))
        }
        return out
    }
}

// MARK: CPython's set order for small int tuples

/// CPython iterates a set in slot order: each element sits at hash & mask, or further along
/// its probe sequence. Reproduced for the tuples of small non-negative ints used here so that
/// tie-breaking between grids of equal tile count matches the official code exactly.
func pythonSetOrder(_ items: [(Int, Int)]) -> [(Int, Int)] {
    // Table size as CPython's set grows: start at 8, resize when fill*5 >= mask*3 to
    // used>50000 ? used*2 : used*4, rounded to a power of two.
    var mask = 7
    var table = [(Int, Int)?](repeating: nil, count: 8)
    var used = 0
    func insert(_ t: (Int, Int), into table: inout [(Int, Int)?], mask: Int) {
        let h = UInt64(bitPattern: Int64(tupleHash(t)))
        var perturb = h
        var i = Int(h & UInt64(mask))
        while true {
            // LINEAR_PROBES = 9: look at i .. i+9 (within the table) before perturbing.
            if table[i] == nil { table[i] = t; return }
            if i + 9 <= mask {
                for j in 1...9 where table[i + j] == nil { table[i + j] = t; return }
            }
            perturb >>= 5
            i = Int((UInt64(i) &* 5 &+ 1 &+ perturb) & UInt64(mask))
        }
    }
    for t in items {
        insert(t, into: &table, mask: mask)
        used += 1
        if used * 5 >= mask * 3 {
            var newSize = 8
            let minused = used > 50000 ? used * 2 : used * 4
            while newSize <= minused { newSize <<= 1 }
            let old = table.compactMap { $0 }
            // Re-insert in slot order, as set_table_resize does.
            mask = newSize - 1
            table = [(Int, Int)?](repeating: nil, count: newSize)
            for o in old { insert(o, into: &table, mask: mask) }
        }
    }
    return table.compactMap { $0 }
}

func stableSortedByProduct(_ a: [(Int, Int)]) -> [(Int, Int)] {
    a.enumerated().sorted { l, r in
        let pl = l.element.0 * l.element.1, pr = r.element.0 * r.element.1
        return pl != pr ? pl < pr : l.offset < r.offset
    }.map { $0.element }
}

/// CPython 3.8+ tuple hash (xxHash-based) of two small non-negative ints (whose hash is themselves).
func tupleHash(_ t: (Int, Int)) -> Int {
    let prime1: UInt64 = 11400714785074694791, prime2: UInt64 = 14029467366897019727
    let prime5: UInt64 = 2870177450012600261
    var acc = prime5
    for lane in [UInt64(t.0), UInt64(t.1)] {
        acc = acc &+ lane &* prime2
        acc = (acc << 31) | (acc >> 33)
        acc = acc &* prime1
    }
    acc = acc &+ (2 ^ (prime5 ^ 3527539))
    if acc == UInt64.max { return 1546275796 }
    return Int(Int64(bitPattern: acc))
}
