import ChatAPI
import FileInput
import Foundation
import Imaging

/// The single place where state changes: pure, unit-tested; effects are returned, not run.
public func reduce(_ s: inout AppState, _ action: Action) -> [Effect] {
    var effects = step(&s, action)
    if s.hint == stoppingHint, s.attaching == 0, s.retiling.isEmpty { s.hint = nil }      // stopped: the message says so
    if !s.busy, !s.attachesAfterAnswer.isEmpty {      // attaches asked during the answer start when it ends
        let paths = s.attachesAfterAnswer
        s.attachesAfterAnswer = []
        effects += paths.map { startAttach(&s, $0) }
    }
    return effects
}

private func step(_ s: inout AppState, _ action: Action) -> [Effect] {
    if s.confirmQuit, action.isKey {       // the question waits for a key: streamed tokens and results do not answer it
        s.confirmQuit = false
        switch action {
        case .type(let t) where t.lowercased() == "y": s.quitRequested = true; return [.quit]
        case .interrupt, .quit: s.quitRequested = true; return [.quit]
        default:
            s.messages.append(.init(kind: .info, text: "Not quitting."))
            // A paste or dropped files are no answer: they go where they would have gone.
            if case .type(let t) = action, t.count > 1 { break }
            if case .attachPaths = action { break }
            return []
        }
    }
    if case .setInput = action {} else if action.isKey { s.hint = nil }      // a hint stays until the next key
    switch action {
    case .modelReady(let format):
        s.modelLoading = false; s.weightFormat = format
    case .modelFailed(let m):
        s.modelLoading = false; s.modelLoadFailed = true
        s.messages.append(.init(kind: .error, text: "The model could not be loaded: \(m)"))
    case .type(let t): s.editor.insert(t)
    case .backspace: s.editor.deleteBackward()
    case .delete: s.editor.deleteForward()
    case .left: s.editor.left()
    case .right: s.editor.right()
    case .home: s.editor.home()
    case .end: s.editor.end()
    case .wordLeft: s.editor.wordLeft()
    case .wordRight: s.editor.wordRight()
    case .killToEnd: s.editor.killToEnd()
    case .killToStart: s.editor.killToStart()
    case .killWord: s.editor.killWord()
    case .yank: s.editor.yank()
    case .newline: s.editor.insert("\n")
    case .up:
        guard !s.editor.moveLine(by: -1), !s.history.isEmpty else { break }     // in a text of several lines: the line above
        if s.historyIndex == nil { s.draft = s.input }
        let i = max(0, (s.historyIndex ?? s.history.count) - 1)
        s.historyIndex = i; s.input = s.history[i]
    case .down:
        guard !s.editor.moveLine(by: 1), let i = s.historyIndex else { break }
        if i + 1 < s.history.count { s.historyIndex = i + 1; s.input = s.history[i + 1] }
        else { s.historyIndex = nil; s.input = s.draft ?? ""; s.draft = nil }
    case .pageUp: s.scroll += 10
    case .pageDown: s.scroll = max(0, s.scroll - 10)
    case .scroll(let n): s.scroll = max(0, s.scroll + n)
    case .setInput(let text, let hint):
        s.input = text; s.hint = hint
    case .attachPaths(let paths):
        return paths.flatMap { attachEffect(&s, $0) }
    case .retiled(let old, let img):
        s.retiling[old] = nil
        guard let i = s.pending.firstIndex(where: { $0.id == old }) else { break }     // detached while it was cut
        s.pending[i] = img
        if s.pending.filter({ $0.id == img.id }).count > 1, let last = s.pending.lastIndex(where: { $0.id == img.id }) {
            s.pending.remove(at: last)                           // re-cut into a copy of another attached image
        }
        if !s.busy { s.phase = nil; return [.prefillAhead(s.pending)] }
    case .retileFailed(let old, let m):
        s.retiling[old] = nil
        s.messages.append(.init(kind: .error, text: m))
        if !s.busy { s.phase = nil }
    case .cancel, .interrupt:
        if s.busy { return [.cancel] }
        if s.attaching > 0 || !s.retiling.isEmpty {
            s.hint = stoppingHint
            return [.stopAttaching]
        }
        if action == .interrupt { askToQuit(&s) }
    case .quit:
        if !s.input.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || !s.pending.isEmpty || s.busy || s.unsaved != nil {
            askToQuit(&s); return []
        }
        s.quitRequested = true; return [.quit]
    case .enter:
        return submit(&s)
    case .help:
        s.messages.append(.init(kind: .info, text: s.savesConversation ? helpText
                                : helpText.replacingOccurrences(of: savingSentence, with: noSaveSentence)))
    case .attached(let img):
        s.attaching = max(0, s.attaching - 1)
        if s.pending.contains(where: { $0.id == img.id }) {      // the same content, cut the same way
            s.messages.append(.init(kind: .info, text: "\(fileName(img)) is already attached to the next message."))
            if !s.busy { s.phase = nil }
            return []
        }
        s.pending.append(img)
        if !s.busy { s.phase = nil; return [.prefillAhead(s.pending)] }
    case .attachFailed(let m):
        s.attaching = max(0, s.attaching - 1)
        s.messages.append(.init(kind: .error, text: m))
        if !s.busy { s.phase = nil }
    case .videoAttached(let path, let frames, let images):
        s.attaching = max(0, s.attaching - 1)
        if let old = s.video {
            if old.path != path, old.isPending(in: s.pending) {
                s.messages.append(.init(kind: .info, text: "\((path as NSString).lastPathComponent) replaces \((old.path as NSString).lastPathComponent): "
                                        + "one video a message, as the model card's video prompt has one clip."))
            }
            s.pending.removeAll { old.imageIDs.contains($0.id) }
        }
        let v = PendingVideo(path: path, frames: frames, images: images)
        s.video = v
        s.pending += images
        let perFrame = images.first.map { "\(counted($0.tiles, "tile")) x \($0.tokensPerTile)" } ?? ""
        s.messages.append(.init(kind: .info, text: "\((path as NSString).lastPathComponent): \(counted(frames.count, "frame")) "
                                + "(\(frames.map(String.init).joined(separator: ", "))), \(frames.count) x \(perFrame) = "
                                + "\(counted(v.strip.tokenCost, "token")) with the image markers; /frames N samples again."))
        if !s.busy { s.phase = nil; return [.prefillAhead(s.pending)] }
    case .answerEnded:
        guard s.busy, let before = s.beforeAnswer else { break }       // .finished or .failed came: nothing to undo
        _ = endAnswer(&s)
        // Stopped before its first token: the session kept nothing of the turn (a regenerated or
        // edited one keeps the turn it had), so the screen goes back to what it was.
        if let back = undoQuestion(&s, before) {
            s.messages.append(.init(kind: .info, text: "Stopped before the answer began: nothing was kept"
                                    + (back ? "; your question is back in the input." : ".")))
        } else {
            s.messages = before.messages
            s.messages.append(.init(kind: .info, text: "Stopped before the answer began: the answer before stays."))
        }
    case .event(let e, let at):
        apply(&s, e, at: at)
        if case .finished = e { return [.save(name: nil, explicit: false)] }
    case .notice(let m, let error):
        s.messages.append(.init(kind: error ? .error : .info, text: m))
        if error, !s.busy { s.phase = nil }
    case .loaded(let messages, let label, let problems, let draft, let pending, let contextUsed, let system):
        s.contextUsed = contextUsed
        s.systemMessage = system
        if s.input.isEmpty { s.input = draft }
        else if !draft.isEmpty, draft != s.input { s.editor.insertAtStart(draft + "\n") }     // typed while it loaded: both kept
        s.messages = messages + problems.map { .init(kind: .error, text: $0) }
        s.messages.append(.init(kind: .info, text: "Loaded \(label): \(counted(messages.filter { $0.kind == .user }.count, "turn"))."))
        s.pending = pending; s.video = nil; s.retiling = [:]; s.scroll = 0; s.busy = false; s.phase = nil; s.phaseClock = nil
        s.conversationLabel = label
    case .loadFailed(let m, let reset):
        s.busy = false; s.phase = nil; s.phaseClock = nil
        if reset { s.messages = []; s.pending = []; s.conversationLabel = nil; s.contextUsed = 0 }
        s.messages.append(.init(kind: .error, text: m))
    case .resume(let target):
        return load(&s, target)
    case .saved(let label, let explicit):
        s.conversationLabel = label
        s.unsaved = nil
        if explicit { s.messages.append(.init(kind: .info, text: "Saved as \(label).")) }
    case .saveFailed(let why):
        s.unsaved = why
        s.messages.append(.init(kind: .error, text: why))
    }
    return []
}

let stoppingHint = "stopping the attach…"

/// Asks before quitting, saying what would be lost and how to answer.
private func askToQuit(_ s: inout AppState) {
    s.confirmQuit = true
    var what: [String] = []
    if let why = s.unsaved { what.append("the last save failed, so the conversation may not be kept: \(why)") }
    if s.busy { what.append("an answer is still coming") }
    // Saved only with a conversation that has a turn or was loaded (nothing is written before).
    let kept = s.savesConversation && s.unsaved == nil && (s.conversationLabel != nil || s.messages.contains { $0.kind == .user })
    if !s.input.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        what.append(kept ? "your unsent text is saved with the conversation" : "your unsent text will be lost")
    }
    if !s.pending.isEmpty {
        let images = "\(s.pending.count) attached image\(s.pending.count == 1 ? "" : "s")"
        what.append(kept ? "\(images) saved with the conversation" : "\(images) will be dropped")
    }
    if !s.attachesAfterAnswer.isEmpty {
        let n = s.attachesAfterAnswer.count
        what.append("\(n) file\(n == 1 ? "" : "s") queued to attach after the answer will not be attached")
    }
    let note = what.isEmpty ? "" : " (" + what.joined(separator: "; ") + ")"
    s.messages.append(.init(kind: .info, text: "Quit\(note)? Press y, Ctrl-C or Ctrl-D to quit, any other key to stay."))
}

private func submit(_ s: inout AppState) -> [Effect] {
    let line = s.input.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !line.isEmpty else {
        if !s.pending.isEmpty { s.hint = "type a question about the attached image\(s.pending.count == 1 ? "" : "s"), then Enter" }
        return []
    }
    let isCommand = line.hasPrefix("/") && !line.hasPrefix("//")
    if !isCommand {
        guard !s.busy else {
            s.messages.append(.init(kind: .error, text: "Still answering: your text stays in the input; send it when the answer ends, or press Esc to stop it."))
            return []
        }
        guard s.retiling.isEmpty else {
            s.messages.append(.init(kind: .error, text: "An image is still being cut into its new tiles; send again when the panel shows it ready."))
            return []
        }
        guard s.attaching == 0 else {
            s.messages.append(.init(kind: .error, text: "An image is still being attached; your text stays in the input: send it when the panel shows the image."))
            return []
        }
    }
    s.input = ""; s.historyIndex = nil; s.draft = nil
    if isCommand {
        let effects = command(&s, line)
        // A command refused while an answer streams is back in the input: it has not run, so it
        // joins the history only when it is sent again and runs.
        if s.input.isEmpty { s.history.append(line) }
        return effects
    }
    s.history.append(line)
    let text = line.hasPrefix("//") ? String(line.dropFirst()) : line     // "//x" sends "/x"
    var question = text
    let video = s.video.flatMap { $0.isPending(in: s.pending) ? $0 : nil }
    if let v = video { question = framedQuestion(text, pending: s.pending, video: v) }
    s.beforeAnswer = .init(messages: s.messages, question: line, pending: s.pending, video: s.video)
    s.video = nil
    s.messages.append(.init(kind: .user, text: text, images: s.pending, video: video))
    s.messages.append(.init(kind: .assistant, text: ""))
    s.busy = true; s.scroll = 0
    let images = s.pending
    s.pending = []
    return [.send(question: question, typed: video == nil ? nil : text, images: images)]
}

/// Loads a saved conversation ("" for the most recent) in place of the one on screen.
private func load(_ s: inout AppState, _ target: String) -> [Effect] {
    guard !s.busy else { return refuseWhileAnswering(&s, "/load \(target)") }
    s.busy = true
    s.messages.append(.init(kind: .info, text: "Loading \(target.isEmpty ? "the most recent conversation" : target)…"))
    return [.load(target)]
}

private func command(_ s: inout AppState, _ line: String) -> [Effect] {
    var parts = line.split(separator: " ", maxSplits: 1).map(String.init)
    let typedName = parts[0]
    if let name = commandAliases[parts[0]] { parts[0] = name }
    let arg = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
    if let usage = withoutArgument[parts[0]], !arg.isEmpty {       // "/regen 3" would regenerate the last answer, not the third
        s.messages.append(.init(kind: .error, text: "\(typedName) takes nothing after it: \(usage)")); return []
    }
    switch parts[0] {
    case "/attach":
        guard !arg.isEmpty else { s.messages.append(.init(kind: .error, text: "Usage: /attach PATH")); return [] }
        return attachEffect(&s, unquotePath(arg))
    case "/frames":
        guard let n = Int(arg), (1...64).contains(n) else {
            s.messages.append(.init(kind: .error, text: "Usage: /frames N, N from 1 to 64 (frames sampled from a video; now \(s.segments))")); return []
        }
        s.segments = n
        guard let v = s.video, v.isPending(in: s.pending) else {
            s.messages.append(.init(kind: .info, text: "The next video attached is sampled at \(counted(n, "frame"))."))
            return []
        }
        return attachEffect(&s, v.path)
    case "/detach":
        guard !s.pending.isEmpty else {
            s.messages.append(.init(kind: .error, text: "No image is attached to the next message.")); return []
        }
        let shown = shownPending(s)
        guard let n = Int(arg), n >= 1, n <= shown.count else {
            s.messages.append(.init(kind: .error, text: shown.count == 1 ? "Usage: /detach 1 (one image is attached)"
                                                      : "Usage: /detach N, with N from 1 to \(shown.count)")); return []
        }
        var gone: Set = [shown[n - 1].id]
        if shown[n - 1].isFilmstrip, let v = s.video { gone = Set(v.imageIDs); s.video = nil }     // the video: all its frames
        s.pending.removeAll { gone.contains($0.id) }
        for id in gone { s.retiling[id] = nil }
        if !s.pending.isEmpty && !s.busy { return [.prefillAhead(s.pending)] }
    case "/tiles":
        return tiles(&s, arg)
    case "/set":
        setParameter(&s, arg)
    case "/save":
        return [.save(name: arg.isEmpty ? nil : arg, explicit: true)]
    case "/load":
        return load(&s, arg)
    case "/list":
        return [.list(arg)]
    case "/delete":
        guard !arg.isEmpty else { s.messages.append(.init(kind: .error, text: "Usage: /delete NAME (a saved conversation; /list shows them)")); return [] }
        return [.delete(arg)]
    case "/new":
        guard !s.busy else { return refuseWhileAnswering(&s, line) }
        let kept = s.pending.isEmpty ? "" : " The attached images stay attached to your next message."
        s.messages = []; s.scroll = 0; s.conversationLabel = nil; s.contextUsed = 0; s.unsaved = nil
        let system = s.systemMessage == nil ? "the model's default system message" : "your system message (/system to see it)"
        s.messages.append(.init(kind: .info, text: "New conversation, with \(system) and your /set settings.\(kept)"))
        return [.newConversation]
    case "/system":
        guard !arg.isEmpty else {
            s.messages.append(.init(kind: .info, text: s.systemMessage.map { "System message: \($0)" }
                                    ?? "System message: the model's default. /system TEXT sets another for the next answers."))
            return []
        }
        s.systemMessage = arg
        s.messages.append(.init(kind: .info, text: "System message set for the next answers: \(arg)"))
        return [.setSystem(arg)]
    case "/theme":
        guard !arg.isEmpty else { s.messages.append(.init(kind: .error, text: "Usage: /theme dark|light|high-contrast|NAME|FILE")); return [] }
        return [.theme(arg)]
    case "/copy":
        return copy(&s, arg)
    case "/show":
        s.messages.append(.init(kind: .info, text: settingsText(s)))
    case "/regen":
        guard !s.busy else { return refuseWhileAnswering(&s, line) }
        guard let i = s.messages.lastIndex(where: { $0.kind == .assistant }) else {
            s.messages.append(.init(kind: .error, text: "There is no answer to regenerate yet.")); return []
        }
        s.beforeAnswer = .init(messages: s.messages)
        s.messages[i].text = ""; s.messages[i].interrupted = false; s.busy = true
        bringLastTurnDown(&s)
        return [.regenerate]
    case "/edit":
        guard !s.busy else { return refuseWhileAnswering(&s, line) }
        guard !arg.isEmpty else { s.messages.append(.init(kind: .error, text: "Usage: /edit NEW QUESTION (replaces your last question)")); return [] }
        guard let i = s.messages.lastIndex(where: { $0.kind == .user }) else {
            s.messages.append(.init(kind: .error, text: "There is no question to edit yet.")); return []
        }
        s.beforeAnswer = .init(messages: s.messages)
        s.messages[i].text = arg
        if i + 1 < s.messages.count { s.messages[i + 1].text = "" }
        s.busy = true
        bringLastTurnDown(&s)
        if let v = s.messages[i].video { return [.edit(framedQuestion(arg, pending: s.messages[i].images, video: v), typed: arg)] }
        return [.edit(arg)]
    case "/help":
        return reduce(&s, .help)
    case "/quit":
        return reduce(&s, .quit)            // as Ctrl-D: asks first when an answer or attached images would be lost
    default:
        s.messages.append(.init(kind: .error, text: "Unknown command \(parts[0]); /help lists them."))
    }
    return []
}

/// `/attach PATH`: a video (by its extension) is sampled into frames (one tile each, as the model
/// card's video chat), anything else is attached as an image.
/// While an answer is under way (or a conversation loads) the attach waits for it to end, and
/// says so: the model is busy, and a conversation being loaded would replace the images.
private func attachEffect(_ s: inout AppState, _ path: String) -> [Effect] {
    s.attaching += 1
    guard s.busy else { return [startAttach(&s, path)] }
    s.attachesAfterAnswer.append(path)
    let after = s.beforeAnswer != nil ? "when the answer ends" : "once the conversation has loaded"
    s.messages.append(.init(kind: .info, text: "\(VideoFiles.isVideo(path) ? "Sampling" : "Attaching") \((path as NSString).lastPathComponent) \(after)."))
    return []
}

/// The attach of `path` with the settings as they are now (/tiles, /frames).
private func startAttach(_ s: inout AppState, _ path: String) -> Effect {
    guard VideoFiles.isVideo(path) else { return .attach(path: path, maxTiles: s.maxTiles) }
    s.messages.append(.init(kind: .info, text: "Sampling \(counted(s.segments, "frame")) of \((path as NSString).lastPathComponent)…"))
    return .attachVideo(path: path, segments: s.segments, maxTiles: 1)
}

/// `/tiles N` (every pending image and the images attached from now on) or `/tiles K N` (pending
/// image K): the new grid and cost are shown at once, the image is re-cut in the background.
private func tiles(_ s: inout AppState, _ arg: String) -> [Effect] {
    let words = arg.split(separator: " ")
    let nums = words.compactMap { Int($0) }
    let usage = "Usage: /tiles N (all images) or /tiles K N (image K), N from \(DynamicTiling.tileCountText)"
    guard nums.count == words.count, nums.count == 1 || nums.count == 2, let n = nums.last, DynamicTiling.tileCountLimit.contains(n) else {
        s.messages.append(.init(kind: .error, text: usage)); return []
    }
    let shown = shownPending(s)
    var targets = shown.filter { !$0.isFilmstrip }           // a video's frames keep one tile each, as the model card
    if nums.count == 2 {
        guard nums[0] >= 1, nums[0] <= shown.count else {
            s.messages.append(.init(kind: .error, text: shown.isEmpty ? "No image is attached to the next message." :
                                        "There is no image \(nums[0]); images 1 to \(shown.count) are attached.")); return []
        }
        guard !shown[nums[0] - 1].isFilmstrip else {
            s.messages.append(.init(kind: .error, text: "A video's frames use one tile each; /frames N samples more or fewer.")); return []
        }
        targets = [shown[nums[0] - 1]]
    } else {
        s.maxTiles = n
    }
    var effects: [Effect] = []
    var notes: [String] = []
    for img in targets {
        let plan = img.plan(maxTiles: n)
        guard plan.grid != img.grid || plan.tiles != img.tiles else { continue }
        s.retiling[img.id] = plan
        effects.append(.retile(oldID: img.id, path: img.name, maxTiles: n))
        notes.append("\((img.name as NSString).lastPathComponent): \(gridText(plan.grid, tiles: plan.tiles)), \(plan.tokenCost) tokens")
    }
    let most = "at most \(n) tile\(n == 1 ? "" : "s")"
    var text = nums.count == 1 ? "Images attached from now on use \(most)." : "Image \(nums[0]) uses \(most)."
    if !notes.isEmpty { text += " Re-cutting " + notes.joined(separator: "; ") + "." }
    else if !targets.isEmpty { text += " The attached image\(targets.count > 1 ? "s keep their" : " keeps its") grid." }
    s.messages.append(.init(kind: .info, text: text))
    return effects
}

/// The last turn (question to answer), answered again by /regen or /edit, moves below the notes
/// that came after it, and the view follows it there, where its new answer streams. Stopping it
/// before its first token puts everything back as it was.
private func bringLastTurnDown(_ s: inout AppState) {
    s.scroll = 0
    guard let q = s.messages.lastIndex(where: { $0.kind == .user }) else { return }
    let a = s.messages.lastIndex(where: { $0.kind == .assistant }).map { max($0, q) } ?? q
    guard a + 1 < s.messages.count else { return }
    let turn = Array(s.messages[q...a])
    s.messages.removeSubrange(q...a)
    s.messages += turn
}

/// "3x2 + thumbnail = 7 tiles"
func gridText(_ g: TileGrid, tiles: Int) -> String {
    tiles > g.cols * g.rows ? "\(g.cols)x\(g.rows) + thumbnail = \(tiles) tiles" : "\(g.cols)x\(g.rows) = \(tiles) tile\(tiles == 1 ? "" : "s")"
}

private func setParameter(_ s: inout AppState, _ arg: String) {
    var kv = arg.split(separator: " ").map(String.init)
    // ollama's form: /set parameter NAME VALUE, num_predict for max_tokens.
    if kv.count == 3, kv[0] == "parameter" { kv.removeFirst() }
    if kv.first == "num_predict" { kv[0] = "max_tokens" }
    let usage = "Usage: /set temperature|top_p|top_k|max_tokens|min_tokens VALUE, or /set seed N|random"
    guard kv.count == 2 else { s.messages.append(.init(kind: .error, text: usage)); return }
    var p = s.parameters
    let v = kv[1]
    switch kv[0] {
    case "temperature":
        let most = SamplingParameters.highestTemperature
        guard let x = Float(v), x >= 0, x <= most else { return bad("temperature is a number from 0 to \(Int(most))") }
        p.temperature = x
    case "top_p": guard let x = Float(v), x > 0, x <= 1 else { return bad("top_p is a number above 0, at most 1") }; p.topP = x
    case "top_k": guard let x = Int(v), x >= 0 else { return bad("top_k is a whole number, 0 for no limit") }; p.topK = x
    case "max_tokens": guard let x = Int(v), x >= 1 else { return bad("max_tokens is a whole number from 1") }; p.maxNewTokens = x
    case "min_tokens": guard let x = Int(v), x >= 0 else { return bad("min_tokens is a whole number, 0 for none") }; p.minNewTokens = x
    case "seed":
        if v == "random" { s.seedFixed = false; s.messages.append(.init(kind: .info, text: "Each answer draws its own seed.")); return }
        guard let x = UInt64(v) else { return bad("seed is a whole number from 0, or random") }
        p.seed = x; s.seedFixed = true
    default: return bad(usage)
    }
    guard p.minNewTokens <= p.maxNewTokens else {
        return bad("min_tokens (\(p.minNewTokens)) cannot exceed max_tokens (\(p.maxNewTokens))")
    }
    s.parameters = p
    s.messages.append(.init(kind: .info, text: "\(kv[0]) = \(v)"))
    func bad(_ m: String) { s.messages.append(.init(kind: .error, text: m)) }
}

/// `/copy`: the last answer; `/copy code`: its last code block (without the fences).
private func copy(_ s: inout AppState, _ arg: String) -> [Effect] {
    guard let answer = s.messages.last(where: { $0.kind == .assistant && !$0.text.isEmpty })?.text else {
        s.messages.append(.init(kind: .error, text: "There is no answer to copy yet.")); return []
    }
    var text = answer
    if arg == "code" {
        var blocks: [[Substring]] = [], current: [Substring]?
        for line in answer.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.drop(while: { $0 == " " }).hasPrefix("```") {
                if let c = current { blocks.append(c); current = nil } else { current = [] }
            } else if current != nil { current!.append(line) }
        }
        guard let last = blocks.last else { s.messages.append(.init(kind: .error, text: "The last answer has no code block.")); return [] }
        text = last.joined(separator: "\n")
    } else if !arg.isEmpty {
        s.messages.append(.init(kind: .error, text: "Usage: /copy (the last answer) or /copy code (its last code block)")); return []
    }
    s.messages.append(.init(kind: .info, text: "Copied \(counted(text.count, "character")) to the clipboard (OSC 52: the terminal must allow it)."))
    return [.copy(text)]
}

/// What /show prints: the model, the conversation and every setting.
func settingsText(_ s: AppState) -> String {
    let p = s.parameters
    return """
    Model: \(s.modelName) (\(s.weightFormat)), context \(s.contextUsed) of \(s.contextSize) tokens used
    Conversation: \(s.conversationLabel ?? "not saved yet")
    System message: \(s.systemMessage ?? "the model's default")
    temperature \(p.temperature), top_p \(p.topP), top_k \(p.topK), max_tokens \(p.maxNewTokens), \
    \(p.minNewTokens > 0 ? "min_tokens \(p.minNewTokens), " : "")\
    seed \(s.seedFixed ? String(p.seed) : "a new one per answer")
    Tiles per image: \(s.maxTiles.map { "at most \($0)" } ?? "the model's default"); thumbnails: \(s.graphics.rawValue)
    """
}

/// The commands that take no argument, and what each does instead.
let withoutArgument = ["/new": "it starts an empty conversation (/save NAME names one)",
                       "/regen": "it answers the last question again",
                       "/show": "it shows the model and every setting",
                       "/quit": "it quits (asking first when something would be lost)"]

/// ollama's names for the same commands (its users type them): `/bye` quits, `/clear` starts an
/// empty conversation; `/exit` as most shells. Tab does not offer them: `/c` and `/e` still
/// complete `/copy` and `/edit`.
let commandAliases = ["/bye": "/quit", "/exit": "/quit", "/clear": "/new"]

/// Commands the input completes with Tab.
let commandNames = ["/attach", "/copy", "/delete", "/detach", "/edit", "/frames", "/help", "/list", "/load", "/new", "/quit", "/regen",
                    "/save", "/set", "/show", "/system", "/theme", "/tiles"]

/// Tab after a command's first letters completes the command; after `/load ` or `/delete `, a
/// saved conversation's name (`names`: the store's names and ids, most recent first).
public func completeCommand(_ input: String, names: () -> [String]) -> (input: String, hint: String?)? {
    guard input.hasPrefix("/") else { return nil }
    if !input.contains(" ") {
        let m = commandNames.filter { $0.hasPrefix(input) }
        guard !m.isEmpty else { return (input, "no such command; /help lists them") }
        return m.count == 1 ? (m[0] + " ", nil) : (PathInput.commonPrefix(m), m.joined(separator: "  "))
    }
    guard let cmd = ["/load ", "/delete "].first(where: { input.hasPrefix($0) }) else { return nil }
    let typed = String(input.dropFirst(cmd.count))
    let m = names().filter { $0.hasPrefix(typed) }
    guard !m.isEmpty else { return (input, "no saved conversation starts with that") }
    return m.count == 1 ? (cmd + m[0], nil) : (cmd + PathInput.commonPrefix(m), m.prefix(12).joined(separator: "  ") + (m.count > 12 ? "  …" : ""))
}

/// The sampling parameters of one answer: the seed the user set, else a fresh draw, so that
/// /regen gives another answer; the answer's record keeps the seed it used.
public func answerParameters(_ s: AppState, draw: () -> UInt64) -> SamplingParameters {
    var p = s.parameters
    if !s.seedFixed { p.seed = draw() }
    return p
}

/// A pasted or dropped path: quotes, backslash-escaped spaces and file:// URLs.
public func unquotePath(_ p: String) -> String {
    var t = p.trimmingCharacters(in: .whitespaces)
    // Read as a shell reads it (a path copied from one: photo\ \(1\).jpg, 'it'\''s.png), unless it names a file as it is.
    if !FileManager.default.fileExists(atPath: FileInput.expandingTilde(t)), let paths = PathInput.split(t), paths.count == 1 { return paths[0] }
    if t.count >= 2, let f = t.first, f == t.last, f == "'" || f == "\"" { t = String(t.dropFirst().dropLast()) }
    return FileInput.expandingTilde(PathInput.fromFileURL(t).replacingOccurrences(of: "\\ ", with: " "))
}

private func apply(_ s: inout AppState, _ e: ChatEvent, at: Double) {
    switch e {
    case .phase(let p):
        s.phase = p
        let (kind, done, total): (Int, Int, Int) = switch p {
        case .loadingModel: (4, 0, 0)
        case .decodingImage: (0, 0, 0)
        case .encodingImage(let k, let n): (1, k, n)
        case .prefill(let d, let n): (2, d, n)
        case .generating: (3, 0, 0)
        }
        if var c = s.phaseClock, c.kind == kind, c.total == total, done >= c.done {
            c.time = at; c.done = done; s.phaseClock = c
        } else {
            s.phaseClock = PhaseClock(kind: kind, startTime: at, startDone: done, time: at, done: done, total: total)
        }
    case .text(let t):
        if let i = s.messages.lastIndex(where: { $0.kind == .assistant }) { s.messages[i].text += t }
    case .finished(let st):
        _ = endAnswer(&s)
        s.lastTokensPerSecond = st.decodeSeconds > 0 ? st.decodeTokensPerSecond : nil
        s.contextUsed = st.promptTokens + st.generatedTokens
        if let i = s.messages.lastIndex(where: { $0.kind == .assistant }) { s.messages[i].interrupted = st.interrupted }
    case .failed(let m):
        let before = endAnswer(&s)
        // Failed before its first token (a prompt too long, a server's error): the backend kept
        // nothing of the turn, so the question goes back to the input rather than stay on screen
        // as if asked.
        if s.messages.last(where: { $0.kind == .assistant })?.text.isEmpty == true, let before, let back = undoQuestion(&s, before) {
            s.messages.append(.init(kind: .error, text: m + (back ? " Your question is back in the input." : "")))
            return
        }
        if let i = s.messages.lastIndex(where: { $0.kind == .assistant }), s.messages[i].text.isEmpty { s.messages.remove(at: i) }
        s.messages.append(.init(kind: .error, text: m))
    case .attached, .restored: break      // arrive as Action.attached and Action.loaded instead
    }
}

/// The answer under way is over: the app is idle again. Returns (and forgets) the screen as it
/// was before that answer, for one that ended before its first token.
private func endAnswer(_ s: inout AppState) -> AppState.BeforeAnswer? {
    defer { s.beforeAnswer = nil }
    s.busy = false; s.phase = nil; s.phaseClock = nil
    return s.beforeAnswer
}

/// A command that needs the answer under way to end first: it goes back into the input (as
/// text typed during an answer stays there), to be sent again when the answer ends.
private func refuseWhileAnswering(_ s: inout AppState, _ line: String) -> [Effect] {
    s.input = line
    s.messages.append(.init(kind: .error, text: "Still answering: the command stays in the input; send it when the answer ends, or press Esc to stop it."))
    return []
}

/// The screen as it was before a question that the backend kept nothing of: its messages, the
/// images and video that went with it back in the panel, the question back in the input (above
/// what was typed since, if anything was, the cursor staying in that). Whether it went back
/// (always, for a question); nil for a regenerated or edited answer (no question).
private func undoQuestion(_ s: inout AppState, _ before: AppState.BeforeAnswer) -> Bool? {
    guard let q = before.question else { return nil }
    s.messages = before.messages
    s.pending = before.pending + s.pending.filter { p in !before.pending.contains { $0.id == p.id } }
    if s.video == nil { s.video = before.video }
    if s.input.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { s.input = q }
    else { s.editor.insertAtStart(q + "\n") }
    return true
}

let helpText = """
Enter sends, Alt-Enter or Ctrl-J adds a line, Esc stops an answer or an attach, Up/Down move between lines, then recall earlier inputs,
PgUp/PgDn scroll, Ctrl-Y puts back what Ctrl-K/U/W cut, Ctrl-D (or Ctrl-C when idle) quits, asking first when something would be lost.
Mouse wheel scrolls too. Paste or drop image files to attach them; Tab completes paths after /attach.
/attach PATH (an image, or a video: its frames)  /frames N (video frames)  /detach N  /tiles [K] N  /new (/clear)  /system TEXT  /regen  /edit TEXT
/set temperature|top_p|top_k|max_tokens|min_tokens VALUE  /set seed N|random  /help (F1)  /quit (/bye, Ctrl-D)
/save [NAME]  /load NAME (no name: the latest)  /list [TEXT] (saved conversations; TEXT searches them)  /delete NAME
/theme NAME  /copy [code] (last answer or its code, to the clipboard)  /show (model and settings)  /system (show it) or /system TEXT  Tab completes commands, paths and names
A message starting with / is sent by typing // (//etc/hosts sends /etc/hosts). \(savingSentence)
"""
let savingSentence = "Conversations are saved after every answer and on quit."
/// What the help and `/save` say under `--no-save`.
let noSaveSentence = "Saving is off (--no-save): nothing is written."
