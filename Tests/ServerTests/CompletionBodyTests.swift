import Foundation
@testable import OpenAIAPI
@testable import Server
import ServingAPI
import Testing

/// `POST /v1/chat/completions` bodies parsed into completion requests, and refused with the
/// status and `param` a client can act on.
@Suite struct CompletionBodyTests {
    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3]

    func parse(_ json: String, _ options: ServerOptions = ServerOptions()) throws(APIError) -> ChatCompletionBody {
        try ChatCompletionBody.parse(Array(json.utf8), options: options)
    }

    func refusal(_ json: String, _ options: ServerOptions = ServerOptions(), bytes: [UInt8]? = nil) -> APIError? {
        do { _ = try ChatCompletionBody.parse(bytes ?? Array(json.utf8), options: options); return nil } catch { return error }
    }

    @Test func rolesPartsAndSamplingBecomeTheRequest() throws {
        let url = "data:image/png;base64," + Data(Self.png).base64EncodedString()
        let body = try parse("""
            {"model": "internvl-chat", "stream": true, "stream_options": {"include_usage": true},
             "max_completion_tokens": 7, "max_tokens": 99, "temperature": 0, "top_p": 0.5, "seed": -3, "stop": ["a", "b"],
             "messages": [{"role": "developer", "content": "Be brief."},
                          {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "\(url)", "max_dynamic_patch": 2}},
                                                       {"type": "text", "text": "What"}, {"type": "text", "text": "is it?"}]},
                          {"role": "assistant", "content": "A cat."},
                          {"role": "user", "content": "And?"}]}
            """)
        #expect(body.stream && body.includeUsage)
        let r = body.request
        #expect(r.messages.map(\.role) == [.system, .user, .assistant, .user])
        #expect(r.messages[1].text == "What\nis it?")
        #expect(r.messages[1].images == [.init(bytes: Self.png, name: "image 1 of message 2", maxTiles: 2)])
        #expect(r.parameters.maxNewTokens == 7)
        #expect(r.parameters.temperature == 0 && r.parameters.topP == 0.5)
        #expect(r.parameters.seed == UInt64(bitPattern: -3))
        #expect(r.stop == ["a", "b"])
    }

    /// A data: URL's scheme and ";base64" are read in any case (RFC 2397), as an http URL's scheme.
    @Test func schemesInAnyCase() throws {
        let b64 = Data(Self.png).base64EncodedString()
        for prefix in ["DATA:image/png;BASE64,", "Data:image/png;Base64,"] {
            let body = try parse(#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "\#(prefix + b64)"}}, {"type": "text", "text": "?"}]}]}"#)
            #expect(body.request.messages[0].images.map(\.bytes) == [Self.png], "\(prefix)")
        }
        let http = refusal(#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "HTTPS://example.com/a.png"}}]}]}"#)
        #expect(http?.message.contains("not fetched from the network") == true, "\(String(describing: http))")
    }

    @Test func badValuesAreRefusedNamingTheirField() {
        let user = #"[{"role": "user", "content": "hi"}]"#
        for (json, status, param) in [
            ("{not json", 400, nil as String?),
            ("[1]", 400, nil),
            (#"{"messages": []}"#, 400, "messages"),
            (#"{"messages": [{"role": "tool", "content": "x"}]}"#, 400, "messages"),
            (#"{"messages": \#(user), "max_tokens": 0}"#, 400, "max_tokens"),
            (#"{"messages": \#(user), "max_tokens": 1.5}"#, 400, "max_tokens"),
            (#"{"messages": \#(user), "max_tokens": true}"#, 400, "max_tokens"),
            (#"{"messages": \#(user), "temperature": 3}"#, 400, "temperature"),
            (#"{"messages": \#(user), "min_tokens": -1}"#, 400, "min_tokens"),
            (#"{"messages": \#(user), "max_tokens": 5, "min_tokens": 6}"#, 400, "min_tokens"),
            (#"{"messages": \#(user), "min_tokens": 2.5}"#, 400, "min_tokens"),
            (#"{"messages": \#(user), "top_p": 0}"#, 400, "top_p"),
            (#"{"messages": \#(user), "top_p": 1e-300}"#, 400, "top_p"),                 // 0 as the sampler's float
            (#"{"messages": \#(user), "repetition_penalty": 1e-300}"#, 400, "repetition_penalty"),
            (#"{"messages": \#(user), "stop": ["a", "b", "c", "d", "e"]}"#, 400, "stop"),
            (#"{"messages": \#(user), "max_tiles": 41}"#, 400, "max_tiles"),
            (#"{"messages": \#(user), "n": 2}"#, 400, "n"),
            (#"{"messages": \#(user), "stream": "yes"}"#, 400, "stream"),
            (#"{"messages": \#(user), "stream": 1}"#, 400, "stream"),
            (#"{"messages": \#(user), "model": "gpt-4o"}"#, 404, "model"),
            (#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}]}]}"#, 400, "messages"),
            (#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}"#, 400, "messages"),
            (#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/etc/passwd"}}]}]}"#, 400, "messages"),
            (#"{"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}"#, 400, "messages"),
        ] {
            let e = refusal(json)
            #expect(e?.status == status, "\(json)")
            #expect(e?.param == param, "\(json)")
            #expect(e?.body["error"] != nil)
        }
    }

    /// vLLM's `min_tokens` up to `max_tokens` (or `max_completion_tokens`) becomes the request's minimum.
    /// A refusal repeats a client's value cut to its first 100 characters, controls shown: a 20 MB
    /// model name or role is not sent back whole.
    @Test func refusalsQuoteLongValuesCut() {
        let long = String(repeating: "x", count: 2_000_000) + #"\u001b"#      // JSON for one escape character
        let model = refusal(#"{"model": "\#(long)", "messages": [{"role": "user", "content": "Hi"}]}"#)
        #expect(model?.status == 404 && (model?.message.utf8.count ?? .max) < 400 && model?.message.contains("… (2000001 bytes)") == true,
                "\(model?.message.prefix(300) ?? "accepted")")
        let role = refusal(#"{"messages": [{"role": "\#(long)", "content": "Hi"}]}"#)
        #expect(role?.status == 400 && (role?.message.utf8.count ?? .max) < 300, "\(role?.message.prefix(300) ?? "accepted")")
        let type = refusal(#"{"messages": [{"role": "user", "content": [{"type": "\#(long)"}]}]}"#)
        #expect(type?.status == 400 && (type?.message.utf8.count ?? .max) < 300, "\(type?.message.prefix(300) ?? "accepted")")
        let short = refusal(#"{"model": "other\u001b[31m", "messages": [{"role": "user", "content": "Hi"}]}"#)
        #expect(short?.message.contains("The model other␛[31m does not exist") == true, "\(short?.message ?? "accepted")")
    }

    /// Before parsing: a body of too many values is refused unparsed (Foundation builds an object
    /// for each), and so is a trailing comma, which JSON does not allow; brackets and commas in
    /// strings, escaped quotes included, are text.
    @Test func bodiesOfTooManyValuesAndTrailingCommasAreRefused() throws {
        func body(_ extra: String) -> String { #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1\#(extra)}"# }
        let many = Array(repeating: "0", count: ChatCompletionBody.maxJSONItems).joined(separator: ",")
        #expect(refusal(body(#", "x": [\#(many)]"#))?.message.contains("more than 100000 JSON values") == true)
        let fewer = Array(repeating: "0", count: ChatCompletionBody.maxJSONItems - 10).joined(separator: ",")
        #expect(refusal(body(#", "x": [\#(fewer)]"#)) == nil, "an ignored field of fewer values is read")
        for trailing in [#"{"messages": [{"role": "user", "content": "Hi",}]}"#, #"{"messages": [{"role": "user", "content": "Hi"},]}"#,
                         body(",\n ")] {
            #expect(refusal(trailing)?.message == "The body is not valid JSON: a comma stands before a closing bracket.", "\(trailing)")
        }
        let inText = try parse(#"{"messages": [{"role": "user", "content": "a,] b,} \",]\\"}], "max_tokens": 1}"#)
        #expect(inText.request.messages.first?.text == #"a,] b,} ",]\"#)
        #expect(JSONScan.scan(Array(#"[1, "x,[{", {"a": [2, 3]}]"#.utf8), itemLimit: 100) == .init(items: 7, trailingComma: false))
    }

    @Test func minTokensUpToMaxTokens() throws {
        let user = #"[{"role": "user", "content": "hi"}]"#
        #expect(try parse(#"{"messages": \#(user)}"#).request.parameters.minNewTokens == 0)
        #expect(try parse(#"{"messages": \#(user), "max_tokens": 7, "min_tokens": 7}"#).request.parameters.minNewTokens == 7)
        #expect(try parse(#"{"messages": \#(user), "max_completion_tokens": 9, "min_tokens": 3}"#).request.parameters.minNewTokens == 3)
    }

    /// A request without `max_tokens` gets the default (512) or `--max-tokens`, whichever is
    /// smaller: leaving the field out cannot get more tokens than naming it could.
    @Test func theDefaultMaxTokensStaysWithinTheLimit() throws {
        var options = ServerOptions()
        let user = #"{"messages": [{"role": "user", "content": "hi"}]}"#
        #expect(try parse(user, options).request.parameters.maxNewTokens == 512)
        options.maxTokens = 5
        #expect(try parse(user, options).request.parameters.maxNewTokens == 5)
        #expect(try parse(#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": null}"#, options).request.parameters.maxNewTokens == 5)
    }

    /// OpenAI fields that would change what the answer is (its format, its tokens' odds, a tool
    /// call, usage chunks of a stream) are refused when they cannot be honoured, not dropped;
    /// fields this server does not know are ignored, as vLLM does.
    @Test func fieldsThatWouldChangeTheAnswerAreRefusedOthersIgnored() throws {
        let user = #"[{"role": "user", "content": "hi"}]"#
        for (field, param) in [
            (#""response_format": {"type": "json_object"}"#, "response_format"),
            (#""response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}"#, "response_format"),
            (#""response_format": "json""#, "response_format"),
            (#""top_logprobs": 3"#, "top_logprobs"),
            (#""logprobs": false, "top_logprobs": 2"#, "top_logprobs"),
            (#""logprobs": "yes""#, "logprobs"),
            (#""logit_bias": {"5": 100}"#, "logit_bias"),
            (#""functions": [{"name": "f", "parameters": {}}]"#, "functions"),
            (#""function_call": "auto""#, "function_call"),
            (#""tool_choice": "required""#, "tool_choice"),
            (#""tool_choice": {"type": "function", "function": {"name": "f"}}"#, "tool_choice"),
            (#""stream_options": {"include_usage": true}"#, "stream_options"),
            (#""stream": true, "stream_options": 5"#, "stream_options"),
            (#""stream": true, "stream_options": {"include_usage": "yes"}"#, "stream_options"),
            (#""stream": true, "stream_options": {"include_usage": 1}"#, "stream_options"),
            (#""max_completion_tokens": 0"#, "max_completion_tokens"),
            (#""modalities": ["text", "audio"]"#, "modalities"),
            (#""modalities": "text""#, "modalities"),
            (#""audio": {"voice": "alloy", "format": "wav"}"#, "audio"),
            (#""echo": true"#, "echo"),
            (#""best_of": 3"#, "best_of"),
        ] {
            let e = refusal(#"{"messages": \#(user), \#(field)}"#)
            #expect(e?.status == 400 && e?.param == param, "\(field): \(String(describing: e))")
        }
        for field in [#""response_format": {"type": "text"}"#, #""top_logprobs": 0"#, #""top_logprobs": null"#, #""logit_bias": {}"#,
                      #""logprobs": false"#, #""tool_choice": "none""#, #""tool_choice": "auto""#, #""functions": []"#,
                      #""stream": true, "stream_options": {"include_usage": true}"#, #""stream": true, "stream_options": {"include_usage": null}"#,
                      #""stream": true, "stream_options": {}"#, #""user": "u1", "metadata": {"a": "b"}, "store": false"#,
                      #""some_future_field": 1"#, #""modalities": ["text"]"#, #""echo": false"#, #""best_of": 1"#, #""audio": null"#] {
            #expect(refusal(#"{"messages": \#(user), \#(field)}"#) == nil, "\(field)")
        }
    }

    /// `image_url.detail` (OpenAI's): "low" is the thumbnail only (one tile) unless the part
    /// names its own tile count; "high" and "auto" leave the tiling as the part, the request or
    /// the model's default set it; any other value is refused naming the field.
    @Test func imageDetailChoosesTheTiling() throws {
        let url = "data:image/png;base64," + Data(Self.png).base64EncodedString()
        func tiles(_ imageURL: String, request: String = "") throws -> Int? {
            let body = try parse(#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": \#(imageURL)}]}]\#(request)}"#)
            return body.request.messages[0].images[0].maxTiles
        }
        #expect(try tiles(#"{"url": "\#(url)", "detail": "low"}"#) == 1)
        #expect(try tiles(#"{"url": "\#(url)", "detail": "low"}"#, request: #", "max_tiles": 6"#) == 1)
        #expect(try tiles(#"{"url": "\#(url)", "detail": "low", "max_dynamic_patch": 4}"#) == 4)
        #expect(try tiles(#"{"url": "\#(url)", "detail": "high"}"#) == nil)
        #expect(try tiles(#"{"url": "\#(url)", "detail": "auto", "max_tiles": 3}"#) == 3)
        #expect(try tiles(#"{"url": "\#(url)", "detail": null}"#) == nil)
        // A tile count out of range is refused naming the key the request used.
        let e41 = refusal(#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "\#(url)", "max_tiles": 41}}]}]}"#)
        #expect(e41?.status == 400 && e41?.message.contains("image_url.max_tiles must be an integer from 1 to 40") == true, "\(String(describing: e41))")
        for bad in [#""medium""#, #""LOW""#, "1", "true", #"["low"]"#] {
            let e = refusal(#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "\#(url)", "detail": \#(bad)}}]}]}"#)
            #expect(e?.status == 400 && e?.param == "messages" && e?.message.contains("image_url.detail") == true, "\(bad): \(String(describing: e))")
        }
    }

    /// A tile count's spellings (`max_tiles`, LMDeploy's `max_dynamic_patch`, in the part or in
    /// its `image_url`) are aliases: one sent as null, as clients that send every field do, is
    /// left out, and does not hide another that has a value.
    @Test func aNullTileCountDoesNotHideItsAlias() throws {
        let url = "data:image/png;base64," + Data(Self.png).base64EncodedString()
        func body(_ imageURL: String, request: String = "") throws -> ChatCompletionBody {
            try parse(#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": \#(imageURL)}]}]\#(request)}"#)
        }
        #expect(try body(#"{"url": "\#(url)"}"#, request: #", "max_tiles": null, "max_dynamic_patch": 2"#).request.maxTiles == 2)
        #expect(try body(#"{"url": "\#(url)"}"#, request: #", "max_tiles": 3, "max_dynamic_patch": null"#).request.maxTiles == 3)
        #expect(try body(#"{"url": "\#(url)", "max_dynamic_patch": null, "max_tiles": 3}"#).request.messages[0].images[0].maxTiles == 3)
        #expect(try body(#"{"url": "\#(url)", "max_tiles": null, "detail": "low"}"#).request.messages[0].images[0].maxTiles == 1)
    }

    /// A prompt that cannot fit the context whatever its tokens (its text at the longest piece
    /// per token, one header token per message) is refused before anything tokenizes it: 64 MB of
    /// text, or two million short messages, would otherwise hold the compute thread, and every
    /// running answer, for a minute.
    @Test func promptsBeyondAnyContextAreRefusedUnread() throws {
        var options = ServerOptions()
        options.promptLimit = PromptLimit(tokens: 10, bytesPerToken: 10)
        func body(system: Int, text: Int, messages: Int = 1) -> String {
            let user = #"{"role": "user", "content": [{"type": "text", "text": "\#(String(repeating: "é", count: text / 2))"}]}"#
            let systems = (0..<system).map { _ in #"{"role": "system", "content": "s"}"# }
            return #"{"messages": [\#((systems + Array(repeating: user, count: messages)).joined(separator: ", "))]}"#
        }
        // 3 system bytes under one header, 60 bytes of text under one: 1 + 1 + 7 tokens at least.
        #expect(refusal(body(system: 3, text: 60), options) == nil)
        // 3 + 68 bytes: 1 + 1 + 8 = 10 tokens; 3 + 78: 11.
        #expect(refusal(body(system: 3, text: 68), options) == nil)
        for json in [body(system: 3, text: 78), body(system: 0, text: 2, messages: 9), body(system: 0, text: 16, messages: 4)] {
            let e = refusal(json, options)
            #expect(e?.status == 400 && e?.param == "messages" && e?.code == "context_length_exceeded", "\(json): \(String(describing: e))")
        }
        #expect(refusal(body(system: 3, text: 78)) == nil, "no bound without promptLimit")
        // An empty message still takes its role's header: 11 of them cannot fit 10 tokens either.
        let empty = #"{"messages": [\#(Array(repeating: #"{"role": "user", "content": ""}"#, count: 10).joined(separator: ", ")), {"role": "assistant", "content": null}]}"#
        let e = refusal(empty, options)
        #expect(e?.status == 400 && e?.code == "context_length_exceeded", "\(String(describing: e))")
    }

    /// Seeds are 64-bit integers, as OpenAI's and vLLM's: those above 2^53, which a Double cannot
    /// hold, are taken exactly.
    @Test func seedsAreAnySixtyFourBitInteger() throws {
        for (text, seed) in [("9007199254740993", UInt64(9_007_199_254_740_993)), ("4611686018427387904", UInt64(1) << 62),
                             ("9223372036854775807", UInt64(Int64.max)), ("-9223372036854775808", UInt64(bitPattern: Int64.min)),
                             ("-1", UInt64.max), ("1e3", UInt64(1000))] {
            let body = try parse(#"{"messages": [{"role": "user", "content": "hi"}], "seed": \#(text)}"#)
            #expect(body.request.parameters.seed == seed, "\(text)")
        }
        for text in ["9223372036854775808", "18446744073709551616", "1.5", "\"7\"", "true"] {
            let e = refusal(#"{"messages": [{"role": "user", "content": "hi"}], "seed": \#(text)}"#)
            #expect(e?.param == "seed", "\(text)")
        }
    }

    /// JSON between programs is UTF-8 (RFC 8259); Foundation would also take UTF-16 and UTF-32.
    @Test func bodiesAreUTF8Only() throws {
        let json = #"{"messages": [{"role": "user", "content": "hi"}]}"#
        let utf8: [UInt8] = Array(json.utf8)
        let utf16le: [UInt8] = Array(json.utf16).flatMap { (u: UInt16) -> [UInt8] in [UInt8(u & 0xFF), UInt8(u >> 8)] }
        let latin1: [UInt8] = utf8.map { $0 == UInt8(ascii: "i") ? 0xE9 : $0 }
        #expect(try ChatCompletionBody.parse([0xEF, 0xBB, 0xBF] + utf8, options: ServerOptions()).request.messages[0].text == "hi")
        for bytes in [utf16le, [0xFF, 0xFE] + utf16le, latin1] {
            let e = refusal(String(decoding: [], as: UTF8.self), bytes: bytes)
            #expect(e?.status == 400 && e?.message.contains("UTF-8") == true, "\(String(describing: e))")
        }
    }

    @Test func filesAreReadOnlyInsideTheAllowedFolder() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("server-tests-\(UUID().uuidString)")
        let inside = root.appendingPathComponent("allowed"), outside = root.appendingPathComponent("secret.png")
        try FileManager.default.createDirectory(at: inside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try Data(Self.png).write(to: inside.appendingPathComponent("a.png"))
        try Data(Self.png).write(to: outside)
        try FileManager.default.createSymbolicLink(at: inside.appendingPathComponent("link.png"), withDestinationURL: outside)
        var options = ServerOptions()
        options.allowedFolder = inside
        func ask(_ url: String) -> String {
            #"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "\#(url)"}}]}]}"#
        }
        #expect(try parse(ask("file://" + inside.path + "/a.png"), options).request.messages[0].images[0].bytes == Self.png)
        #expect(try parse(ask("a.png"), options).request.messages[0].images[0].bytes == Self.png)
        for url in ["file://" + outside.path, inside.path + "/../secret.png", "link.png", "file://" + inside.path + "/link.png"] {
            #expect(refusal(ask(url), options)?.status == 403, "\(url)")
        }
        // What cannot be read is said in words, not as a Swift error's type; another host's
        // file:// URL and an empty URL are refused as such.
        try FileManager.default.createDirectory(at: inside.appendingPathComponent("dir.png"), withIntermediateDirectories: true)
        for (url, words) in [("missing.png", "missing.png: it does not exist"), ("dir.png", "dir.png: it is a folder"),
                             ("file://evil.example/" + inside.path + "/a.png", "not of evil.example"), ("", "the image URL is empty")] {
            let e = refusal(ask(url), options)
            #expect(e?.status == 400 && e?.message.contains(words) == true && e?.message.contains("FileInput") == false, "\(url): \(String(describing: e?.message))")
        }
        // A file over the image limit is refused as a data: URL over it is.
        options.maxImageBytes = Self.png.count - 1
        #expect(refusal(ask("a.png"), options)?.status == 413)
    }

    @Test func keysCompareWholly() {
        #expect(OpenAIServer.sameBytes(Array("Bearer k1".utf8), Array("Bearer k1".utf8)))
        #expect(!OpenAIServer.sameBytes(Array("Bearer k2".utf8), Array("Bearer k1".utf8)))
        #expect(!OpenAIServer.sameBytes(Array("Bearer k1x".utf8), Array("Bearer k1".utf8)))
        #expect(!OpenAIServer.sameBytes([], Array("Bearer k1".utf8)))
    }

    @Test func loopbackHosts() {
        for (host, loopback) in [("127.0.0.1", true), ("127.1.2.3", true), ("::1", true), ("localhost", true),
                                 ("0.0.0.0", false), ("127.0.0.1.example.com", false), ("192.168.1.2", false), ("::", false)] {
            var o = ServerOptions()
            o.host = host
            #expect(o.isLoopback == loopback, "\(host)")
        }
    }
}
