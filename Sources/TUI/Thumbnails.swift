import Foundation
import Imaging

/// Thumbnail geometry and the colour half-block rendering: each cell shows two pixels, `▀` in
/// the upper pixel's colour over the lower one's, so a cell is treated as 1 x 2 square pixels.
public enum Thumbnails {
    /// Cells for an image fitted inside `maxCols` x `maxRows`, aspect kept, at least 1 x 1.
    public static func fit(width: Int, height: Int, maxCols: Int, maxRows: Int) -> (cols: Int, rows: Int) {
        guard width > 0, height > 0, maxCols > 0, maxRows > 0 else { return (0, 0) }
        var cols = maxCols
        var rows = Int((Double(cols) * Double(height) / Double(width) / 2).rounded(.up))
        if rows > maxRows {
            rows = maxRows
            cols = max(1, Int((Double(rows) * 2 * Double(width) / Double(height)).rounded()))
        }
        return (min(cols, maxCols), max(rows, 1))
    }

    /// The half-block cells of `image` at `cols` x `rows`, row by row (cached: the frame loop asks often).
    public static func halfBlocks(_ image: RGBImage, id: Int, cols: Int, rows: Int) -> [PixelPair] {
        let key = Key(id: id, cols: cols, rows: rows, w: image.width, h: image.height)
        if let hit = cache.get(key) { return hit }
        let small = image.resized(toWidth: cols, height: rows * 2)
        var out: [PixelPair] = []
        out.reserveCapacity(cols * rows)
        for y in 0..<rows {
            for x in 0..<cols {
                func px(_ yy: Int) -> RGB {
                    let o = (yy * cols + x) * 3
                    return RGB(small.pixels[o], small.pixels[o + 1], small.pixels[o + 2])
                }
                out.append(PixelPair(top: px(2 * y), bottom: px(2 * y + 1)))
            }
        }
        cache.set(key, out)
        return out
    }

    struct Key: Hashable { var id, cols, rows, w, h: Int }

    /// A small lock-protected memo, emptied when it grows past a bound.
    final class Memo: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [Key: [PixelPair]] = [:]
        func get(_ k: Key) -> [PixelPair]? { lock.lock(); defer { lock.unlock() }; return items[k] }
        func set(_ k: Key, _ v: [PixelPair]) {
            lock.lock(); defer { lock.unlock() }
            if items.count > 64 { items = [:] }
            items[k] = v
        }
    }
    static let cache = Memo()
}
