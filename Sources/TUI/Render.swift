import Chat
import Foundation

/// The whole screen for a state and a size: a pure function, tested on text snapshots.
public func render(_ s: AppState, width: Int, height: Int) -> CellGrid {
    var g = CellGrid(width: width, height: height)
    guard let L = Layout(width: width, height: height) else {
        let lines = Wrap.lines("Terminal too small (\(width)x\(height)); internvl-chat needs at least \(Layout.minWidth)x\(Layout.minHeight).", width: max(width, 1))
        for (i, l) in lines.prefix(height).enumerated() { g.put(l, x: 0, y: i, role: .error) }
        return g
    }
    renderConversation(s, L.conversation, &g)
    renderImages(s, L.images, &g)
    renderInput(s, L.input, &g)
    renderStatus(s, L.status, &g)
    return g
}

/// Conversation lines (role, text) at `width`.
func conversationLines(_ s: AppState, width: Int) -> [(Role, String)] {
    var out: [(Role, String)] = []
    for m in s.messages {
        switch m.kind {
        case .user:
            out.append((.user, "You"))
            for img in m.images { out.append((.dim, "  [image \(imageLabel(img))]")) }
        case .assistant: out.append((.assistant, "InternVL"))
        case .error, .info: break
        }
        let role: Role = m.kind == .error ? .error : (m.kind == .info ? .dim : .text)
        let body = m.kind == .assistant && m.text.isEmpty && s.busy ? "…" : m.text
        for l in Wrap.lines(body, width: max(width - 2, 1)) { out.append((role, "  " + l)) }
        if m.interrupted { out.append((.dim, "  (interrupted)")) }
        out.append((.text, ""))
    }
    return out
}

func renderConversation(_ s: AppState, _ r: Rect, _ g: inout CellGrid) {
    let lines = conversationLines(s, width: r.width)
    let end = max(0, lines.count - s.scroll)
    let start = max(0, end - r.height)
    for (i, (role, text)) in lines[start..<end].enumerated() {
        g.put(text, x: r.x, y: r.y + i, role: role, limit: r.width)
    }
    if s.scroll > 0 { g.put("↓ \(s.scroll) more", x: r.x + max(0, r.width - 12), y: r.y + r.height - 1, role: .dim, limit: 12) }
}

func imageLabel(_ i: AttachedImage) -> String {
    let name = (i.name as NSString).lastPathComponent
    return "\(name) \(i.width)x\(i.height), \(i.tiles) tiles, \(i.tokenCost) tokens"
}

func renderImages(_ s: AppState, _ r: Rect, _ g: inout CellGrid) {
    if r.height == 1 {
        let text = s.pending.isEmpty ? "No images attached (/attach PATH)" :
            s.pending.enumerated().map { "\($0.offset + 1): \(imageLabel($0.element))" }.joined(separator: "  ")
        g.put(text, x: r.x, y: r.y, role: .dim, limit: r.width)
        return
    }
    for y in r.y..<(r.y + r.height) { g.put("│", x: r.x - 1 >= 0 ? r.x - 1 : r.x, y: y, role: .border) }
    g.put("Images", x: r.x + 1, y: r.y, role: .title, limit: r.width - 1)
    var y = r.y + 2
    if s.pending.isEmpty { g.put("none (/attach PATH)", x: r.x + 1, y: y, role: .dim, limit: r.width - 1) }
    for (i, img) in s.pending.enumerated() where y + 1 < r.y + r.height {
        g.put("\(i + 1). \((img.name as NSString).lastPathComponent)", x: r.x + 1, y: y, role: .text, limit: r.width - 1)
        g.put("   \(img.width)x\(img.height), \(img.tiles) tiles, \(img.tokenCost) tok", x: r.x + 1, y: y + 1, role: .dim, limit: r.width - 1)
        y += 3
    }
}

func renderInput(_ s: AppState, _ r: Rect, _ g: inout CellGrid) {
    g.put(String(repeating: "─", count: r.width), x: r.x, y: r.y, role: .border)
    let lines = Wrap.lines(s.input, width: max(r.width - 2, 1))
    for (i, l) in lines.suffix(r.height - 1).enumerated() {
        g.put((i == 0 ? "> " : "  ") + l, x: r.x, y: r.y + 1 + i, role: .input, limit: r.width)
    }
    if s.input.isEmpty { g.put("> ", x: r.x, y: r.y + 1, role: .input) }
}

func renderStatus(_ s: AppState, _ r: Rect, _ g: inout CellGrid) {
    var parts = [s.modelName, "context \(s.contextUsed)/\(s.contextSize)"]
    if let t = s.lastTokensPerSecond { parts.append(String(format: "%.1f tok/s", t)) }
    if let p = s.phase {
        switch p {
        case .decodingImage(let n): parts.append("decoding \((n as NSString).lastPathComponent)")
        case .encodingImage(let k, let n): parts.append("encoding image \(k)/\(n)")
        case .prefill(let d, let n): parts.append("reading prompt \(d)/\(n)")
        case .generating: parts.append("answering… (Esc stops)")
        }
    }
    g.fill(r, role: .status)
    g.put(parts.joined(separator: " │ "), x: r.x, y: r.y, role: .status, limit: r.width)
}
