import ArgumentParser
import Chat
import ChatAPI
import Checkpoint
import Conversations
import Foundation
import Imaging
import RemoteBackend
import TUI

/// `--endpoint URL [--api-key KEY] [--remote-model NAME]`: drive a model an OpenAI-compatible
/// server serves instead of loading one here.
struct RemoteOptions: ParsableArguments {
    @Option(help: "Use the model served by an OpenAI-compatible server at this address (our `serve`, vLLM, LMDeploy), e.g. http://127.0.0.1:8000.")
    var endpoint: String?
    @Option(help: "The server's API key (default: $INTERNVL_CHAT_API_KEY).") var apiKey: String?
    @Option(help: "The served model's name (default: the first one the server lists).") var remoteModel: String?

    var isRemote: Bool { endpoint != nil }

    func validate() throws {
        if endpoint == nil && (apiKey != nil || remoteModel != nil) { throw ValidationError("--api-key and --remote-model go with --endpoint URL") }
        if let e = endpoint, RemoteConfiguration.apiRoot(e) == nil {
            throw ValidationError("--endpoint must be an http:// or https:// address, e.g. http://127.0.0.1:8000")
        }
    }

    /// The backend for `--endpoint`. With `--model DIR` given too, image costs and the default
    /// system message come from that folder's config.json; otherwise from the served model's
    /// name when it is one we know, else image costs are hidden and the server's template
    /// chooses the system message.
    func backend(system: String?, modelFolder: String?) throws -> RemoteChatBackend {
        var costing: ImageCosting?, defaultSystem = ""
        if let modelFolder {
            let config = try ModelConfiguration.load(from: URL(fileURLWithPath: modelFolder).appendingPathComponent("config.json"))
            let tiling = config.dynamicImageSize
                ? TilingOptions(tileSize: config.imageSize, minTiles: config.minDynamicPatch,
                                maxTiles: max(config.maxDynamicPatch, config.minDynamicPatch), useThumbnail: config.useThumbnail)
                : TilingOptions(tileSize: config.imageSize, minTiles: 1, maxTiles: 1, useThumbnail: false)
            costing = ImageCosting(tiling: tiling, tokensPerTile: config.tokensPerTile)
            defaultSystem = try ChatTemplate.named(config.template).systemMessage
        }
        let key = apiKey ?? ProcessInfo.processInfo.environment["INTERNVL_CHAT_API_KEY"]
        return try RemoteChatBackend(RemoteConfiguration(endpoint: endpoint ?? "", apiKey: key, model: remoteModel,
                                                         systemMessage: system ?? defaultSystem, imageCosting: costing))
    }

    /// What the app shows as the model: the name given, else the server's address.
    var displayName: String { remoteModel ?? endpoint.map { TerminalText.sanitize($0) } ?? "remote" }
}

extension ChatCommand {
    /// The full-screen app on a served model: nothing to load, the screen comes at once.
    func runRemote() throws {
        let backend = try remote.backend(system: system, modelFolder: modelOptions.model)
        let chosen = try Theme.load(theme)
        FileLog.bootstrap(path: FileLog.defaultPath())
        let app = App(backend: backend, modelName: remote.displayName, contextSize: sampling.context,
                      parameters: sampling.parameters, seedFixed: sampling.seed != nil, weightFormat: "remote")
        app.maxTiles = maxTiles
        app.theme = chosen
        app.conversations = ConversationService(store: storeOptions.store, backend: backend, readOnly: noSave)
        if !noSave { app.inputHistory = InputHistory(path: InputHistory.defaultPath()) }
        app.run(graphics: GraphicsProbe.detect(requested: graphics.mode), resume: resume)
    }
}

extension GenerateCommand {
    /// One question to a served model: the answer streamed, or with --json one object (text and
    /// counts as the server gives them; token ids only from a server that sends them).
    func runRemote() throws {
        let backend = try remote.backend(system: system, modelFolder: modelOptions.model)
        let asked = try readQuestion()
        let pairs = try history.map(Self.readHistory) ?? []
        let maxTiles = imageOptions.maxTiles
        let attached = try imageOptions.image.map { path in try blocking { try await backend.attach(path: path, maxTiles: maxTiles) } }
        var rest = attached[...]
        var assigned: [[Int]] = []
        for (q, _) in pairs {
            let n = min(ImagePrompt.count(in: q), rest.count)
            assigned.append(rest.prefix(n).map(\.id)); rest = rest.dropFirst(n)
        }
        let perTurn = assigned, current = Array(rest), params = sampling.parameters, quiet = json
        let (outcome, tokenIDs) = try blocking {
            await backend.setHistory(pairs, imageIDs: perTurn)
            let o = await Self.consume(await backend.send(asked, images: current, parameters: params), stream: !quiet)
            return (o, await backend.lastAnswerTokenIDs)
        }
        guard let st = outcome.stats else { throw TurnFailed(outcome.failure) }
        if let f = outcome.failure { throw TurnFailed(f) }          // cut off: what came is printed, the status says so
        guard json else { return Output.write("\n") }
        var obj: [String: Any] = [
            "text": st.text, "tiles": attached.map { $0.tokensPerTile > 0 ? $0.tiles as Any : NSNull() }, "stopped_at_stop_token": st.stoppedAtStopToken,
            "prompt_tokens": st.promptTokens, "generated_tokens": st.generatedTokens,
            "timings": ["first_token_s": st.firstTokenSeconds, "decode_s": st.decodeSeconds, "decode_tok_s": st.decodeTokensPerSecond],
        ]
        if let tokenIDs { obj["token_ids"] = tokenIDs.map(Int.init) }      // our serve gives them
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
        Output.write(String(decoding: data, as: UTF8.self) + "\n")
    }
}
