import Chat
import Foundation

/// The single place where state changes: pure, unit-tested; effects are returned, not run.
public func reduce(_ s: inout AppState, _ action: Action) -> [Effect] {
    if s.confirmQuit {
        s.confirmQuit = false
        if case .type(let t) = action, t.lowercased() == "y" { s.quitRequested = true; return [.quit] }
        if action == .cancel { s.quitRequested = true; return [.quit] }
        s.messages.append(.init(kind: .info, text: "Not quitting."))
        return []
    }
    switch action {
    case .type(let t):
        let chars = Array(s.input)
        s.input = String(chars[..<s.cursor]) + t + String(chars[s.cursor...])
        s.cursor += t.count
    case .backspace:
        guard s.cursor > 0 else { break }
        var chars = Array(s.input); chars.remove(at: s.cursor - 1); s.input = String(chars); s.cursor -= 1
    case .delete:
        var chars = Array(s.input)
        if s.cursor < chars.count { chars.remove(at: s.cursor); s.input = String(chars) }
    case .left: s.cursor = max(0, s.cursor - 1)
    case .right: s.cursor = min(s.input.count, s.cursor + 1)
    case .home: s.cursor = 0
    case .end: s.cursor = s.input.count
    case .killToEnd: s.input = String(s.input.prefix(s.cursor))
    case .killToStart: s.input = String(s.input.dropFirst(s.cursor)); s.cursor = 0
    case .killWord:
        var chars = Array(s.input[..<s.input.index(s.input.startIndex, offsetBy: s.cursor)])
        while chars.last == " " { chars.removeLast() }
        while let c = chars.last, c != " " { chars.removeLast() }
        s.input = String(chars) + String(s.input.dropFirst(s.cursor)); s.cursor = chars.count
    case .newline: return reduce(&s, .type("\n"))
    case .up:
        guard !s.history.isEmpty else { break }
        let i = max(0, (s.historyIndex ?? s.history.count) - 1)
        s.historyIndex = i; s.input = s.history[i]; s.cursor = s.input.count
    case .down:
        guard let i = s.historyIndex else { break }
        if i + 1 < s.history.count { s.historyIndex = i + 1; s.input = s.history[i + 1] } else { s.historyIndex = nil; s.input = "" }
        s.cursor = s.input.count
    case .pageUp: s.scroll += 10
    case .pageDown: s.scroll = max(0, s.scroll - 10)
    case .cancel:
        if s.busy { return [.cancel] }
        s.confirmQuit = true
        s.messages.append(.init(kind: .info, text: "Quit? Press y (or Ctrl-C again) to quit, any other key to stay."))
    case .quit:
        s.quitRequested = true; return [.quit]
    case .enter:
        return submit(&s)
    case .attached(let img):
        s.pending.append(img)
        if !s.busy { s.phase = nil; return [.prefillAhead(s.pending)] }
    case .attachFailed(let m):
        s.messages.append(.init(kind: .error, text: m))
        if !s.busy { s.phase = nil }
    case .event(let e):
        apply(&s, e)
    }
    return []
}

private func submit(_ s: inout AppState) -> [Effect] {
    let line = s.input.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !line.isEmpty else { return [] }
    s.input = ""; s.cursor = 0; s.historyIndex = nil
    s.history.append(line)
    if line.hasPrefix("/") { return command(&s, line) }
    guard !s.busy else {
        s.messages.append(.init(kind: .error, text: "Still answering: press Esc to stop it first."))
        return []
    }
    s.messages.append(.init(kind: .user, text: line, images: s.pending))
    s.messages.append(.init(kind: .assistant, text: ""))
    s.busy = true; s.scroll = 0
    let images = s.pending
    s.pending = []
    return [.send(question: line, images: images)]
}

private func command(_ s: inout AppState, _ line: String) -> [Effect] {
    let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
    let arg = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
    switch parts[0] {
    case "/attach":
        guard !arg.isEmpty else { s.messages.append(.init(kind: .error, text: "Usage: /attach PATH")); return [] }
        return [.attach(path: unquotePath(arg), maxTiles: s.maxTiles)]
    case "/detach":
        guard let n = Int(arg), n >= 1, n <= s.pending.count else {
            s.messages.append(.init(kind: .error, text: "Usage: /detach N, with N from 1 to \(s.pending.count)")); return []
        }
        s.pending.remove(at: n - 1)
        if !s.pending.isEmpty && !s.busy { return [.prefillAhead(s.pending)] }
    case "/tiles":
        guard let n = Int(arg), (1...40).contains(n) else {
            s.messages.append(.init(kind: .error, text: "Usage: /tiles N, N from 1 to 40")); return []
        }
        s.maxTiles = n
        s.messages.append(.init(kind: .info, text: "Images attached from now on use at most \(n) tiles."))
    case "/new":
        s.messages = []; s.pending = []; s.scroll = 0
        return [.newConversation]
    case "/system":
        s.messages.append(.init(kind: .info, text: "System message set."))
        return [.setSystem(arg)]
    case "/regen":
        guard !s.busy, let i = s.messages.lastIndex(where: { $0.kind == .assistant }) else { return [] }
        s.messages[i].text = ""; s.messages[i].interrupted = false; s.busy = true
        return [.regenerate]
    case "/edit":
        guard !s.busy, !arg.isEmpty, let i = s.messages.lastIndex(where: { $0.kind == .user }) else {
            s.messages.append(.init(kind: .error, text: "Usage: /edit NEW QUESTION")); return []
        }
        s.messages[i].text = arg
        if i + 1 < s.messages.count { s.messages[i + 1].text = "" }
        s.busy = true
        return [.edit(arg)]
    case "/help":
        s.messages.append(.init(kind: .info, text: helpText))
    case "/quit":
        s.quitRequested = true; return [.quit]
    default:
        s.messages.append(.init(kind: .error, text: "Unknown command \(parts[0]); /help lists them."))
    }
    return []
}

/// A pasted or dropped path: quotes, backslash-escaped spaces and file:// URLs.
public func unquotePath(_ p: String) -> String {
    var t = p.trimmingCharacters(in: .whitespaces)
    if t.count >= 2, let f = t.first, f == t.last, f == "'" || f == "\"" { t = String(t.dropFirst().dropLast()) }
    if t.hasPrefix("file://") { t = String(t.dropFirst(7)).removingPercentEncoding ?? String(t.dropFirst(7)) }
    return t.replacingOccurrences(of: "\\ ", with: " ")
}

private func apply(_ s: inout AppState, _ e: ChatEvent) {
    switch e {
    case .phase(let p): s.phase = p
    case .text(let t):
        if let i = s.messages.lastIndex(where: { $0.kind == .assistant }) { s.messages[i].text += t }
    case .finished(let st):
        s.busy = false; s.phase = nil
        s.lastTokensPerSecond = st.decodeTokensPerSecond
        s.contextUsed = st.promptTokens + st.generatedTokenIDs.count
        if let i = s.messages.lastIndex(where: { $0.kind == .assistant }) { s.messages[i].interrupted = st.interrupted }
    case .failed(let m):
        s.busy = false; s.phase = nil
        if let i = s.messages.lastIndex(where: { $0.kind == .assistant }), s.messages[i].text.isEmpty { s.messages.remove(at: i) }
        s.messages.append(.init(kind: .error, text: m))
    case .attached(let img): s.pending.append(img)
    }
}

let helpText = """
Enter sends, Alt-Enter or Ctrl-J adds a line, Esc stops an answer, PgUp/PgDn scroll, Ctrl-D quits.
/attach PATH  /detach N  /tiles N  /new  /system TEXT  /regen  /edit TEXT  /help  /quit
"""
