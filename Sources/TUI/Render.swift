import ChatAPI
import Foundation
import Imaging

/// The whole screen for a state and a size: a pure function, tested on text snapshots.
public func render(_ s: AppState, width: Int, height: Int) -> CellGrid {
    renderFrame(s, width: width, height: height).grid
}

/// The screen, and the scroll position clamped to the conversation (what `clampedScroll`
/// returns), from one layout of the conversation: the app loop's frame.
/// `lines`: what to keep in `AppState.linesShown` for the next frame.
/// `cache`: the messages laid out in earlier frames, reused while they are unchanged (the app's
/// loop passes one, so a key or a token re-lays only what changed, not a long conversation).
/// `inputCache`: the input laid out in earlier frames, likewise (a key re-wraps the paragraphs it changed).
public func renderFrame(_ s: AppState, width: Int, height: Int, cache: ConversationLayoutCache? = nil,
                        inputCache: InputLayoutCache? = nil) -> (grid: CellGrid, scroll: Int, lines: AppState.LinesShown?) {
    var g = CellGrid(width: width, height: height)
    let input = inputLayout(s, width: width, cache: inputCache)
    guard let L = Layout(width: width, height: height, inputRows: input.rowCount) else {
        let lines = Wrap.lines("Terminal too small (\(width)x\(height)); internvl-chat needs at least \(Layout.minWidth)x\(Layout.minHeight).", width: max(width, 1))
        for (i, l) in lines.prefix(height).enumerated() { g.put(l, x: 0, y: i, role: .error) }
        return (g, s.scroll, s.linesShown)
    }
    let (scroll, count) = renderConversation(s, L.conversation, &g, cache: cache)
    renderImages(s, L.images, &g)
    renderInput(s, L.input, input, &g)
    renderStatus(s, L.status, &g)
    return (g, scroll, .init(count: count, width: L.conversation.width))
}

/// One row of the conversation: text from column `x` (relative to the pane), and maybe one row
/// of an inline thumbnail at column 2.
struct ConversationLine {
    var role: Role
    var text: String
    var x = 0
    var image: ImageRow?
    /// The text in runs of different roles (emphasis), when it has any.
    var runs: [(Role, String)]?
}

/// Row `row` of an image thumbnail `cols` x `rows` cells.
struct ImageRow {
    var image: AttachedImage
    var row: Int, rows: Int, cols: Int
}

/// Conversation lines at `width`.
func conversationLines(_ s: AppState, width: Int, cache: ConversationLayoutCache? = nil) -> [ConversationLine] {
    var out: [ConversationLine] = []
    for (i, m) in s.messages.enumerated() {
        let placeholder = m.kind == .assistant && m.text.isEmpty && s.busy
        let key = ConversationLayoutCache.Key(message: m, width: width, graphics: s.graphics, placeholder: placeholder)
        if let lines = cache?.lines(at: i, for: key) { out += lines; continue }
        let lines = messageLines(m, placeholder: placeholder, graphics: s.graphics, width: width)
        cache?.store(lines, at: i, for: key)
        out += lines
    }
    cache?.keep(s.messages.count)
    return out
}

/// Laid-out messages by their place in the conversation, each reused while the message, the
/// width and the thumbnail mode are the same (comparing an unchanged message is cheap: its
/// strings and arrays share their storage).
public final class ConversationLayoutCache: @unchecked Sendable {
    struct Key: Equatable {
        var message: AppState.Message
        var width: Int
        var graphics: GraphicsMode
        var placeholder: Bool
    }
    private let lock = NSLock()
    private var entries: [(key: Key, lines: [ConversationLine])?] = []
    /// Messages laid out (not found here) so far.
    private(set) var laidOut = 0

    public init() {}

    func lines(at i: Int, for key: Key) -> [ConversationLine]? {
        lock.withLock { i < entries.count && entries[i]?.key == key ? entries[i]?.lines : nil }
    }

    func store(_ lines: [ConversationLine], at i: Int, for key: Key) {
        lock.withLock {
            while entries.count <= i { entries.append(nil) }
            entries[i] = (key, lines)
            laidOut += 1
        }
    }

    /// Forgets the messages past the first `count`.
    func keep(_ count: Int) {
        lock.withLock { if entries.count > count { entries.removeLast(entries.count - count) } }
    }
}

/// One message's lines: the speaker's name, its images, the body, and a blank line.
func messageLines(_ m: AppState.Message, placeholder: Bool, graphics: GraphicsMode, width: Int) -> [ConversationLine] {
    var out: [ConversationLine] = []
    switch m.kind {
    case .user:
        out.append(.init(role: .user, text: "You"))
        for img in m.shownImages { out += imageLines(img, graphics, width: width) }
    case .assistant: out.append(.init(role: .assistant, text: "InternVL"))
    case .error, .info: break
    }
    let role: Role = m.kind == .error ? .error : (m.kind == .info ? .dim : .text)
    let body = placeholder ? "…" : m.text
    for l in MessageLayout.styledLines(body, width: max(width - 2, 1), role: role) {
        var line = ConversationLine(role: l.role, text: "  " + l.runs.map(\.1).joined())
        if l.runs.contains(where: { $0.0 != l.role }) { line.runs = [(l.role, "  ")] + l.runs }
        out.append(line)
    }
    if m.interrupted { out.append(.init(role: .dim, text: "  (interrupted)")) }
    out.append(.init(role: .text, text: ""))
    return out
}

/// An image in a user turn: a thumbnail (when the terminal can show one) with its label beside it.
func imageLines(_ img: AttachedImage, _ mode: GraphicsMode, width: Int) -> [ConversationLine] {
    let label = ["[\(fileName(img))]", "\(sizeLabel(img))\(costs(img))"]
    guard mode != .none, img.thumbnail != nil, width >= 30 else {
        return [.init(role: .dim, text: "  [\(img.isFilmstrip ? "video" : "image") \(imageLabel(img))]")]
    }
    let fit = img.isFilmstrip ? Thumbnails.fit(width: img.width, height: img.height, maxCols: max(8, width / 2), maxRows: 4)
                              : Thumbnails.fit(width: img.width, height: img.height, maxCols: min(32, width / 3), maxRows: width >= 60 ? 8 : 4)
    return (0..<max(fit.rows, label.count)).map { r in
        ConversationLine(role: .dim, text: r < label.count ? label[r] : "", x: 2 + fit.cols + 1,
                         image: r < fit.rows ? ImageRow(image: img, row: r, rows: fit.rows, cols: fit.cols) : nil)
    }
}

/// The scroll position that keeps the conversation pane full (PgUp stops at the first line).
public func clampedScroll(_ s: AppState, width: Int, height: Int) -> Int {
    guard let L = Layout(s, width: width, height: height) else { return s.scroll }
    return clamp(s.scroll, lines: conversationLines(s, width: L.conversation.width).count, height: L.conversation.height)
}

func clamp(_ scroll: Int, lines: Int, height: Int) -> Int { min(scroll, max(0, lines - height)) }

/// Draws the conversation pane; returns the scroll position it was drawn at (kept on the same
/// lines when scrolled up and more arrived below) and its line count.
@discardableResult
func renderConversation(_ s: AppState, _ r: Rect, _ g: inout CellGrid, cache: ConversationLayoutCache? = nil) -> (scroll: Int, lines: Int) {
    let lines = conversationLines(s, width: r.width, cache: cache)
    var wanted = s.scroll
    if wanted > 0, let seen = s.linesShown, seen.width == r.width, lines.count > seen.count { wanted += lines.count - seen.count }
    let scroll = clamp(wanted, lines: lines.count, height: r.height)
    var end = max(0, lines.count - scroll)
    let start = max(0, end - r.height)
    if end < lines.count { end = max(start, end - 1) }     // the last row says what is below
    for (i, line) in lines[start..<end].enumerated() {
        let y = r.y + i
        if let runs = line.runs {
            var x = r.x + line.x
            for (role, t) in runs { x += g.put(t, x: x, y: y, role: role, limit: max(0, r.x + r.width - x)) }
        } else {
            g.put(line.text, x: r.x + line.x, y: y, role: line.role, limit: max(0, r.width - line.x))
        }
        guard let im = line.image else { continue }
        // A sixel image is placed only when it is wholly in view; half-blocks draw row by row.
        let whole = start + i - im.row >= start && start + i - im.row + im.rows <= end
        drawThumbnailRow(im, x: r.x + 2, y: y, mode: s.graphics, placeSixel: im.row == 0 && whole, &g)
    }
    if lines.count > end {
        let below = lines.count - end
        let note = "↓ \(below) more line\(below == 1 ? "" : "s") (PgDn)"
        g.put(note, x: r.x + max(0, r.width - TextWidth.of(note)), y: r.y + r.height - 1, role: .dim, limit: r.width)
    }
    return (scroll, lines.count)
}

/// Row `im.row` of a thumbnail at (x, y): half-block cells, or (at the top row) a sixel placement.
func drawThumbnailRow(_ im: ImageRow, x: Int, y: Int, mode: GraphicsMode, placeSixel: Bool, _ g: inout CellGrid) {
    guard let thumb = im.image.thumbnail else { return }
    switch mode {
    case .blocks:
        let cells = Thumbnails.halfBlocks(thumb, id: im.image.id, cols: im.cols, rows: im.rows)
        for c in 0..<im.cols { g.setPixels(x: x + c, y: y, cells[im.row * im.cols + c]) }
    case .sixel:
        if placeSixel { g.placements.append(ImagePlacement(imageID: im.image.id, rect: Rect(x: x, y: y, width: im.cols, height: im.rows))) }
    case .none: break
    }
}

func fileName(_ i: AttachedImage) -> String { (i.name as NSString).lastPathComponent }

/// "name 640x480, 7 tiles, 1794 tokens" ("name 3 frames, ..." for a video's filmstrip).
func imageLabel(_ i: AttachedImage) -> String {
    "\(fileName(i)) \(sizeLabel(i))\(costs(i))"
}

/// "640x480", or a video's filmstrip's "3 frames".
func sizeLabel(_ i: AttachedImage) -> String { i.isFilmstrip ? counted(i.grid.cols, "frame") : "\(i.width)x\(i.height)" }

/// ", N tiles, M tokens", or nothing when the backend cannot tell (a remote model not known here).
func costs(_ i: AttachedImage) -> String {
    i.tokensPerTile > 0 ? ", \(counted(i.tiles, "tile")), \(counted(i.tokenCost, "token"))" : ""
}

/// The images for the next message on one line (narrow screens): whole labels when they fit,
/// else shorter ones (tiles and tokens), else with the file names shortened, so that every
/// image's number, tiles and cost stay visible.
func panelLine(_ s: AppState, width: Int) -> String {
    if s.pending.isEmpty { return "No images attached (/attach PATH)" }
    func entry(_ i: Int, _ img: AttachedImage, name: String, long: Bool) -> String {
        if let p = s.retiling[img.id] { return "\(i + 1): \(name) → \(counted(p.tiles, "tile")) (cutting…)" }
        if img.tokensPerTile == 0 { return "\(i + 1): \(name)" + (long ? " \(img.width)x\(img.height)" : "") }
        return long ? "\(i + 1): \(name) \(sizeLabel(img)), \(counted(img.tiles, "tile")), \(counted(img.tokenCost, "token"))"
                    : "\(i + 1): \(name) \(counted(img.tiles, "tile")), \(img.tokenCost) tok"
    }
    let items = Array(shownPending(s).enumerated())
    for long in [true, false] {
        let line = items.map { entry($0.offset, $0.element, name: fileName($0.element), long: long) }.joined(separator: "  ")
        if TextWidth.of(line) <= width { return line }
    }
    let fixed = TextWidth.of(items.map { entry($0.offset, $0.element, name: "", long: false) }.joined(separator: "  "))
    let room = (width - fixed) / max(items.count, 1)
    if room < 3 {             // no room for names: numbers, tiles and costs only
        return items.map { entry($0.offset, $0.element, name: "", long: false).replacingOccurrences(of: ":  ", with: ": ") }
            .joined(separator: "  ")
    }
    return items.map { i, img in
        return entry(i, img, name: TextWidth.truncated(fileName(img), toWidth: room), long: false)
    }.joined(separator: "  ")
}

func renderImages(_ s: AppState, _ r: Rect, _ g: inout CellGrid) {
    if r.height == 1 {
        g.put(panelLine(s, width: r.width), x: r.x, y: r.y, role: .dim, limit: r.width)
        return
    }
    for y in r.y..<(r.y + r.height) { g.put("│", x: r.x - 1 >= 0 ? r.x - 1 : r.x, y: y, role: .border) }
    let bottom = r.y + r.height
    var y = r.y
    func section(_ title: String, _ images: [AttachedImage], numbered: Bool, empty: String) {
        guard y < bottom else { return }
        g.put(title, x: r.x + 1, y: y, role: .title, limit: r.width - 1)
        y += 1
        if images.isEmpty, y < bottom { g.put(empty, x: r.x + 1, y: y, role: .dim, limit: r.width - 1); y += 2; return }
        for (i, img) in images.enumerated() {
            let h = panelEntry(s, img, number: numbered ? i + 1 : nil, x: r.x + 1, y: y, width: r.width - 1, bottom: bottom, &g)
            if h == 0 {
                if y < bottom { g.put("+\(images.count - i) more", x: r.x + 1, y: y, role: .dim, limit: r.width - 1); y += 1 }
                return
            }
            y += h + 1
        }
    }
    section("Next message", shownPending(s), numbered: true, empty: "none (/attach PATH)")
    let earlier = s.conversationImages
    if !earlier.isEmpty { section("In this conversation", earlier, numbered: false, empty: "") }
}

/// One image in the side panel: its name on a line, then the thumbnail with size, grid and
/// cost beside it. Returns the rows used, 0 when it does not fit above `bottom`.
func panelEntry(_ s: AppState, _ img: AttachedImage, number: Int?, x: Int, y: Int, width: Int, bottom: Int,
                _ g: inout CellGrid) -> Int {
    let filmstrip = img.isFilmstrip         // the strip spans the panel, the text below it
    var fit = (cols: 0, rows: 0)
    if s.graphics != .none, img.thumbnail != nil {
        fit = filmstrip ? Thumbnails.fit(width: img.width, height: img.height, maxCols: max(4, width - 1), maxRows: 4)
                        : Thumbnails.fit(width: img.width, height: img.height, maxCols: max(4, min(14, width - 21)), maxRows: bottom - y > 12 ? 6 : 4)   // 20 cells stay for the text
    }
    var text = filmstrip ? ["\(counted(img.grid.cols, "frame")) x \(counted(img.tiles / max(img.grid.cols, 1), "tile")) x \(img.tokensPerTile)",
                            "= \(img.tokenCost) tokens"]
                         : ["\(img.width)x\(img.height)"] + (img.tokensPerTile > 0 ? [shortGrid(img.grid, tiles: img.tiles), "\(img.tokenCost) tokens"] : [])
    if let p = s.retiling[img.id] { text += ["→ \(shortGrid(p.grid, tiles: p.tiles))", "  \(p.tokenCost) tok (cutting…)"] }
    let h = 1 + (filmstrip ? fit.rows + text.count : max(fit.rows, text.count))
    guard y + h <= bottom else { return 0 }
    g.put(TextWidth.truncated("\(number.map { "\($0). " } ?? "")\(fileName(img))", toWidth: width), x: x, y: y, role: .text, limit: width)
    for r in 0..<fit.rows {
        drawThumbnailRow(ImageRow(image: img, row: r, rows: fit.rows, cols: fit.cols), x: x, y: y + 1 + r, mode: s.graphics,
                         placeSixel: r == 0, &g)
    }
    let tx = filmstrip ? x : fit.cols > 0 ? x + fit.cols + 1 : x + 2
    let ty = filmstrip ? y + 1 + fit.rows : y + 1
    for (i, t) in text.enumerated() {
        g.put(t, x: tx, y: ty + i, role: i >= 3 ? .phase : .dim, limit: max(0, width - (tx - x)))
    }
    return h
}

/// "3x2+1 = 7 tiles" (the +1 is the thumbnail tile).
func shortGrid(_ g: TileGrid, tiles: Int) -> String {
    "\(g.cols)x\(g.rows)\(tiles > g.cols * g.rows ? "+1" : "") = \(tiles) tile\(tiles == 1 ? "" : "s")"
}

/// The input wrapped for a screen `width` wide (its text starts after "> ").
func inputLayout(_ s: AppState, width: Int, cache: InputLayoutCache?) -> InputLayout {
    let w = max(width - 2, 1)
    return cache?.layout(s.input, width: w) ?? InputLayout(s.input, width: w)
}

func renderInput(_ s: AppState, _ r: Rect, _ layout: InputLayout, _ g: inout CellGrid) {
    g.put(String(repeating: "─", count: r.width), x: r.x, y: r.y, role: .border)
    if let h = s.hint { g.put(" " + h + " ", x: r.x + 2, y: r.y, role: .dim, limit: r.width - 4) }
    let view = InputView(s, r, layout)
    for (i, l) in view.lines.enumerated() {
        g.put((view.first + i == 0 ? "> " : "  ") + l, x: r.x, y: r.y + 1 + i, role: .input, limit: r.width)
    }
    if s.input.isEmpty {
        g.put("> ", x: r.x, y: r.y + 1, role: .input)
        if s.messages.isEmpty && !s.busy {
            g.put("Ask about an image: /attach PATH (or paste a file), type a question, Enter. F1: help",
                  x: r.x + 2, y: r.y + 1, role: .dim, limit: r.width - 2)
        }
    }
}

/// The input's wrapped lines in view in the input pane `r` (its first row is the rule above
/// them), the first of them among all, and the cursor's line and cells from the text's left edge:
/// the view shows the last lines unless the cursor is above them (Home in a long text shows its start).
struct InputView {
    let lines: [String]
    let visible: Int, first: Int
    let cursor: (row: Int, col: Int)

    /// `layout`: `s.input` wrapped to the pane's width less the "> ".
    init(_ s: AppState, _ r: Rect, _ layout: InputLayout) {
        let count = layout.rowCount
        cursor = layout.cursor(in: s.input, atByte: s.editor.cursorOffset)
        visible = max(r.height - 1, 1)
        first = min(max(0, count - visible), cursor.row)
        lines = layout.rows(first..<min(count, first + visible))
    }
}

func renderStatus(_ s: AppState, _ r: Rect, _ g: inout CellGrid) {
    let pendingCost = s.pending.reduce(0) { $0 + (s.retiling[$1.id]?.tokenCost ?? $1.tokenCost) }
    var parts = ["context \(s.contextUsed)\(pendingCost > 0 ? "+\(pendingCost)" : "")/\(s.contextSize)"]
    if let t = s.lastTokensPerSecond { parts.append(String(format: "%.1f tok/s", t)) }
    if s.modelLoading && s.phase != .loadingModel { parts.append("loading the model…") }
    if s.modelLoadFailed { parts.append("the model did not load (the error is above; /quit)") }
    if let p = s.phase {
        var text: String
        switch p {
        case .loadingModel: text = "waiting for the model to load (Esc stops)"
        case .decodingImage(let n): text = "decoding \((n as NSString).lastPathComponent)\(s.busy ? "" : " (Esc stops)")"
        case .encodingImage(let k, let n): text = "encoding image \(100 * k / max(n, 1))%\(s.busy ? "" : " (Esc stops)")"
        case .prefill(let d, let n): text = "reading prompt \(d)/\(n)"
        case .generating: text = "answering… (Esc stops)"
        }
        if let eta = s.phaseClock?.eta { text += eta < 60 ? String(format: ", %.0f s left", eta.rounded(.up)) : String(format: ", %d min left", Int(eta / 60) + 1) }
        parts.append(text)
    }
    if !s.attachesAfterAnswer.isEmpty {
        parts.append("\(counted(s.attachesAfterAnswer.count, "file")) queued to attach")
    }
    // The model's name goes first when it fits; the phase and its ETA matter more.
    let model = "\(s.modelName) (\(s.weightFormat))" + (s.conversationLabel.map { " │ \($0)" } ?? "")
    var line = ([model] + parts).joined(separator: " │ ")
    let rest = TextWidth.of(parts.joined(separator: " │ ")) + 3
    if TextWidth.of(line) > r.width {        // the model's name shortened to what is left, not dropped
        let format = " (\(s.weightFormat))"
        let room = max(r.width - rest - TextWidth.of(format), 1)
        line = ([TextWidth.truncated(s.modelName, toWidth: room) + format] + parts).joined(separator: " │ ")
    }
    g.fill(r, role: .status)
    g.put(line, x: r.x, y: r.y, role: .status, limit: r.width)
}
