import Foundation
import Testing
import TestSupport

/// The built `internvl-chat` binary, run as scripts and users run it.
struct CLITests {
    struct Run { var status: Int32; var out: String; var err: String }

    static var binary: URL {
        if let e = ProcessInfo.processInfo.environment["INTERNVL_BIN"] { return URL(fileURLWithPath: e) }
        let here = Bundle.main.bundleURL.deletingLastPathComponent()
        for dir in [here, here.deletingLastPathComponent()] {
            let u = dir.appendingPathComponent("internvl-chat")
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return TestData.packageRoot.appendingPathComponent(".build/debug/internvl-chat")
    }

    static func run(_ args: [String], stdin: String? = nil, env: [String: String] = [:], executable: URL? = nil) throws -> Run {
        let p = Process()
        p.executableURL = executable ?? binary
        p.arguments = args
        var e = ProcessInfo.processInfo.environment
        e.merge(env) { $1 }
        p.environment = e
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out; p.standardError = err; p.standardInput = inp
        try p.run()
        if let s = stdin { inp.fileHandleForWriting.write(Data(s.utf8)) }
        try inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile(), r = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: r, as: UTF8.self))
    }

    static func lastJSON(_ s: String) throws -> [String: Any] {
        let line = s.split(separator: "\n").last.map(String.init) ?? ""
        return try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
    }

    @Test func versionOptionsBeforeTheSubcommandAndTheQuestionFromStandardInput() throws {
        let v = try Self.run(["--version"])
        #expect(v.status == 0 && v.out.hasPrefix("internvl-chat "), "\(v.out)\(v.err)")
        let model = TestData.url("tiny-a").path
        let given = try Self.run(["generate", "--model", model, "--max-new-tokens", "6", "--json", "What is this?"])
        let before = try Self.run(["--model", model, "generate", "--max-new-tokens", "6", "--json", "What is this?"])
        let piped = try Self.run(["generate", "--model", model, "--max-new-tokens", "6", "--json"], stdin: "What is this?\n")
        let dash = try Self.run(["generate", "--model", model, "--max-new-tokens", "6", "--json", "-"], stdin: "What is this?")
        #expect(given.status == 0 && before.status == 0 && piped.status == 0 && dash.status == 0, "\(before.err)\(piped.err)\(dash.err)")
        let want = try Self.lastJSON(given.out)["prompt_token_ids"] as? [Int]
        for r in [before, piped, dash] { #expect(try Self.lastJSON(r.out)["prompt_token_ids"] as? [Int] == want) }
    }

    /// A usage error quotes the arguments, and an argument can be a file name a shell glob gave
    /// (`generate --image *.jpg`): its control characters are shown, not sent to the terminal.
    @Test func aUsageErrorShowsTheArgumentsItQuotesSafely() throws {
        let name = "b\u{1b}[31mRED\u{1b}]0;title\u{07}.jpg"
        let model = TestData.url("tiny-a").path
        for args in [["tokenize", "--model", model, "a.jpg", name], ["generate", "--model", model, "--max-tiles", name, "x"],
                     ["export", "--format", name, "x"]] {
            let r = try Self.run(args)
            #expect(r.status == 64 && r.out.isEmpty, "\(args): \(r.status) \(r.out)")
            #expect(r.err.hasPrefix("Error: ") && r.err.contains("b␛[31mRED␛]0;title␇.jpg"), "\(args): \(r.err)")
            #expect(!r.err.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, "\(args): \(r.err.debugDescription)")
        }
        let help = try Self.run(["export", "--help"])
        #expect(help.status == 0 && help.out.contains("USAGE: internvl-chat export") && help.err.isEmpty, "\(help.err)")
    }

    /// Every command that takes `--max-tiles` refuses a count no conversation file could hold, before
    /// anything runs (a conversation saved with it could not be read back).
    @Test func maxTilesOutsideTheLimitIsRefusedByEveryCommand() throws {
        let model = TestData.url("tiny-a").path, image = TestData.url("images/photo-chelsea.png").path
        for n in ["0", "41", "999"] {
            for args in [["chat", "--model", model, "--max-tiles", n], ["generate", "--model", model, "--max-tiles", n, "x"],
                         ["dump-vision", "--model", model, "--max-tiles", n, "--out", "/nonexistent/x", image]] {
                let r = try Self.run(args)
                #expect(r.status == 64 && r.err.contains("--max-tiles must be between 1 and 40 (was \(n))"), "\(args): \(r.status) \(r.err)")
            }
        }
    }

    /// The command line takes the temperatures `/set temperature` takes, and says why it refuses one.
    @Test func temperatureLimitsAsTheApp() throws {
        let model = TestData.url("tiny-a").path
        for (t, said) in [("10", "--temperature must be a number from 0 to 5"), ("inf", "temperature must be a finite number, 0 (greedy) or more")] {
            let r = try Self.run(["generate", "--model", model, "--temperature", t, "x"])
            #expect(r.status == 64 && r.err.contains(said), "\(t): \(r.status) \(r.err)")
        }
        let ok = try Self.run(["generate", "--model", model, "--temperature", "5", "--max-new-tokens", "2", "x"])
        #expect(ok.status == 0, "\(ok.err)")
    }

    /// Without a model the error lists where it looked, one place a line (the message's own line
    /// breaks kept), and a control character in a place's name is still shown, not sent.
    @Test func noModelFoundListsThePlacesOnALineEach() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("nomodel-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let env = ["HOME": home.path, "XDG_CONFIG_HOME": home.path + "/cfg", "INTERNVL_CHAT_MODEL": "",
                   "HF_HOME": home.path + "/hf\u{1b}[31m", "HF_HUB_CACHE": ""]
        let r = try Self.run(["generate", "hi"], env: env)
        let lines = r.err.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(r.status == 1 && lines.first?.hasPrefix("error: No ") == true && lines.first?.hasSuffix("Looked in:") == true, "\(r.err)")
        #expect(lines.contains { $0.hasPrefix("  - ") && $0.contains(home.path + "/cfg/internvl-chat/config.json") }, "\(r.err)")
        #expect(lines.contains { $0.contains("hf␛[31m/hub") } && !r.err.contains("\u{1b}") && !r.err.contains("␤"), "\(r.err)")
        #expect(lines.contains("or pass --model DIR.") && lines.count >= 7, "\(r.err)")
    }

    /// A stdout that cannot take the output (a full disk): one error line and status 1, not a
    /// crash, whether the text went out directly or through print (the help).
    @Test func aStandardOutputThatCannotBeWrittenIsOneErrorLine() throws {
        let model = TestData.url("tiny-a").path
        for args in [["tokenize", "--model", model, "Hello"], ["generate", "--model", model, "--max-new-tokens", "4", "Hi"],
                     ["models", "--model", model], ["--help"]] {
            let p = Process()
            p.executableURL = Self.binary
            p.arguments = args
            p.standardOutput = FileHandle(forWritingAtPath: "/dev/full")
            p.standardInput = FileHandle.nullDevice
            let err = Pipe()
            p.standardError = err
            try p.run()
            let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus == 1 && e == "error: could not write to standard output: No space left on device\n",
                    "\(args): status \(p.terminationStatus), \(e.prefix(300))")
        }
    }

    /// The listing is one line per conversation with control characters made visible, wherever
    /// stdout goes (a pipe may end on a terminal); the JSON listing keeps the text as it is.
    @Test func aListedTitleIsOneSafeLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-title-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = ["--conversations", dir.appendingPathComponent("store").path]
        let title = "one\u{1b}]0;PWNED\u{07}\u{1b}[41m red\ntwo\rthree\u{9b}"
        let script = try Self.writeScript(dir.appendingPathComponent("t.json"), [["question": title]])
        let g = try Self.run(["generate", "--model", TestData.url("tiny-a").path, "--max-new-tokens", "2", "--turns", script, "--save", "x"] + store)
        #expect(g.status == 0, "\(g.err)")
        let list = try Self.run(["conversations"] + store)
        #expect(list.status == 0 && list.out.split(separator: "\n").count == 1, "\(list.out)")
        #expect(!list.out.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x0D || $0.value == 0x9B }, "\(list.out)")
        #expect(list.out.hasSuffix("  one␛]0;PWNED␇␛[41m red\n"), "\(list.out)")      // the title is the question's first line
        let json = try Self.run(["conversations", "--json"] + store)
        #expect(try Self.lastJSON(json.out)["title"] as? String == title.components(separatedBy: "\n")[0], "\(json.out)")
        // A store path that is a file is said to be one, not listed as empty.
        let file = dir.appendingPathComponent("t.json").path
        let notFolder = try Self.run(["conversations", "--conversations", file])
        #expect(notFolder.status == 1 && notFolder.err.contains("is not a folder of conversations: it is a file"), "\(notFolder.err)")
    }

    /// A name starting with "-" cannot be given anew, but a conversation that already has one
    /// (written by an older version) is replaced by `generate --save=-old` as any other name.
    @Test func saveReplacesAConversationWhoseNameLooksLikeAnOption() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-dash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let storeDir = dir.appendingPathComponent("store"), store = ["--conversations", storeDir.path]
        let generate = ["generate", "--model", TestData.url("tiny-a").path, "--max-new-tokens", "2", "--turns"]
        let first = try Self.run(generate + [try Self.writeScript(dir.appendingPathComponent("a.json"), [["question": "First"]]), "--save", "x"] + store)
        #expect(first.status == 0, "\(first.err)")
        let id = try #require(try FileManager.default.contentsOfDirectory(atPath: storeDir.path).first { !$0.hasPrefix(".") })
        let file = storeDir.appendingPathComponent(id).appendingPathComponent("conversation.json")
        var o = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        o["name"] = "-old"
        try JSONSerialization.data(withJSONObject: o).write(to: file)
        let second = try Self.run(generate + [try Self.writeScript(dir.appendingPathComponent("b.json"), [["question": "Second"]]), "--save=-old"] + store)
        #expect(second.status == 0, "\(second.err)")
        let list = try Self.run(["conversations", "--json"] + store)
        let rows = list.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(rows.count == 1 && rows.first?["name"] as? String == "-old" && rows.first?["title"] as? String == "Second", "\(list.out)")
        let fresh = try Self.run(generate + [try Self.writeScript(dir.appendingPathComponent("c.json"), [["question": "Third"]]), "--save=-new"] + store)
        #expect(fresh.status == 64 && fresh.err.contains("-new cannot be a new conversation name"), "\(fresh.err)")
    }

    /// `--min-new-tokens` reaches the sampler's parameters: above `--max-new-tokens` it is refused
    /// before the model loads, equal to it accepted (MinNewTokensTests show what it does).
    @Test func minNewTokensIsAnOptionOfGenerate() throws {
        let model = TestData.url("tiny-a").path
        let bad = try Self.run(["generate", "--model", model, "--max-new-tokens", "5", "--min-new-tokens", "6", "Hi"])
        #expect(bad.status == 64 && bad.err.contains("min new tokens must be from 0 to max new tokens (5)") && bad.out.isEmpty, "\(bad.err)")
        let ok = try Self.run(["generate", "--model", model, "--max-new-tokens", "5", "--min-new-tokens", "5", "--json", "Hi"])
        #expect(ok.status == 0, "\(ok.err)")
        let o = try Self.lastJSON(ok.out)
        #expect((o["token_ids"] as? [Any])?.count == 5 && o["stopped_at_stop_token"] as? Bool == false, "\(ok.out)")
    }

    /// Server limits that could not work are refused before the model loads (a port that would
    /// wrap, no batch, times that are no finite number of seconds), with the option named.
    @Test func serveRefusesLimitsThatCannotWork() throws {
        let model = TestData.url("tiny-a").path
        for (args, message) in [(["--port", "70000"], "--port must be from 0 to 65535, got 70000"),
                                (["--max-batch", "0"], "--max-batch must be at least 1, got 0"),
                                (["--max-tokens", "0"], "--max-tokens must be at least 1, got 0"),
                                (["--request-seconds", "nan"], "--request-seconds must be a number of seconds above 0"),
                                (["--body-seconds", "inf"], "--body-seconds must be a number of seconds above 0"),
                                (["--shutdown-seconds", "1e300"], "--shutdown-seconds must be a number of seconds above 0"),
                                (["--api-key", ""], "--api-key cannot be empty")] {
            let r = try Self.run(["serve", "--model", model, "--port", "0"] + args)
            #expect(r.status == 64 && r.err.contains(message) && !r.err.contains("Loading"), "\(args): \(r.status) \(r.err)")
        }
        // A port another program listens on is refused before the model loads.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in(); a.sin_family = sa_family_t(AF_INET); a.sin_addr.s_addr = inet_addr("127.0.0.1"); a.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &len) == 0 } }
        #expect(bound)
        let port = Int(UInt16(bigEndian: a.sin_port))
        let busy = try Self.run(["serve", "--model", model, "--port", String(port)])
        #expect(busy.status == 1 && busy.err.contains("port \(port) on 127.0.0.1 is in use by another program") && !busy.err.contains("Loading"), "\(busy.err)")
    }

    /// A question far longer than the context can hold is refused before it is tokenized (a
    /// 100 MB prompt took 6.8 GB and a minute to be told it was too long).
    @Test func aHugeQuestionIsRefusedBeforeTokenizing() throws {
        let huge = String(repeating: "word ", count: 6 << 20)             // 30 MB
        let t0 = Date()
        let r = try Self.run(["generate", "--model", TestData.url("tiny-a").path, "--max-new-tokens", "2", "-"], stdin: huge)
        #expect(r.status == 1 && r.err.contains("The prompt is 3145") && r.err.contains("bytes of text: more than a context of"), "\(r.err.prefix(300))")
        #expect(Date().timeIntervalSince(t0) < 20, "refused at once, not after tokenizing")
    }

    @Test func chatWithoutATerminalPointsAtGenerate() throws {
        let r = try Self.run(["chat", "--model", TestData.url("tiny-a").path], stdin: "Hello\n")
        #expect(r.status == 1 && r.err.hasPrefix("error: the chat is a full-screen app") && r.err.contains("generate --turns"), "\(r.err)")
        #expect(r.out.isEmpty, "nothing answered in a second, smaller app")
        let plain = try Self.run(["--plain"])
        #expect(plain.status != 0 && plain.err.contains("--plain (line mode) is gone"), "\(plain.err)")
    }

    @Test func generateJSONMatchesReferenceWithHistory() throws {
        let model = TestData.url("tiny-b")
        let cases = try TestData.json(model.appendingPathComponent("golden.json"))["cases"] as! [[String: Any]]
        let c = cases[4]   // two history turns
        let hist = FileManager.default.temporaryDirectory.appendingPathComponent("hist-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: hist) }
        try JSONSerialization.data(withJSONObject: c["history"]!).write(to: hist)
        let r = try Self.run(["generate", "--model", model.path, "--system", c["system"] as! String, "--history", hist.path,
                              "--temperature", "0", "--max-new-tokens", "32", "--json", c["question"] as! String])
        #expect(r.status == 0, "\(r.err)")
        let d = try Self.lastJSON(r.out)
        #expect(TestData.ints(d["token_ids"]) == TestData.ints(c["greedy_ids"]))
        #expect(TestData.ints(d["prompt_token_ids"]) == TestData.ints(c["prompt_ids"]))
        #expect(d["text"] as? String == c["response"] as? String)
        let t = d["timings"] as! [String: Any]
        for k in ["load_s", "prefill_s", "decode_s", "prefill_tok_s", "decode_tok_s"] { #expect(t[k] is Double, "\(k)") }
        // Streaming mode prints the same text (stdout is a pipe here, so it is not sanitised).
        let plain = try Self.run(["generate", "--model", model.path, "--system", c["system"] as! String, "--history", hist.path,
                                  "--max-new-tokens", "32", c["question"] as! String])
        #expect(plain.out == (c["response"] as! String) + "\n")
    }

    /// `generate --video`: two rounds about a clip equal the model card's video example run by the
    /// reference (decord frames, get_index, Frame1: <image> ..., the first round as history).
    @Test(arguments: TestData.tinyModels) func generateVideoTwoRoundsEqualsReference(_ name: String) throws {
        let model = TestData.url(name)
        let g = try TestData.json(model.appendingPathComponent("golden-video.json"))
        let video = TestData.url("videos").appendingPathComponent(g["video"] as! String).path
        let rounds = g["rounds"] as! [[String: Any]]
        let hist = FileManager.default.temporaryDirectory.appendingPathComponent("video-hist-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: hist) }
        try JSONSerialization.data(withJSONObject: rounds[1]["history"]!).write(to: hist)
        let segments = String(g["segments"] as! Int)
        let first = try Self.run(["generate", "--model", model.path, "--video", video, "--segments", segments,
                                  "--max-new-tokens", "24", "--json", g["user_question"] as! String])
        let second = try Self.run(["generate", "--model", model.path, "--video", video, "--segments", segments,
                                   "--history", hist.path, "--max-new-tokens", "24", "--json", rounds[1]["question"] as! String])
        for (r, want) in zip([first, second], rounds) {
            #expect(r.status == 0, "\(name): \(r.err)")
            guard r.status == 0 else { continue }
            let d = try Self.lastJSON(r.out)
            #expect(d["frames"] as? [Int] == g["frames"] as? [Int], "\(name): sampled frames")
            #expect(d["tiles"] as? [Int] == g["tiles"] as? [Int], "\(name): tiles per frame")
            #expect(TestData.ints(d["prompt_token_ids"]) == TestData.ints(want["prompt_ids"]), "\(name): prompt")
            #expect(TestData.ints(d["token_ids"]) == TestData.ints(want["greedy_ids"]), "\(name): answer")
        }
    }

    /// `generate --batch`: every line equals the official batch_chat run by the reference on the
    /// same lines in one call (left-padded to the longest prompt: on these tiny models, whose
    /// prompts pass max_position_embeddings, the padding changes the shorter lines' answers).
    @Test(arguments: TestData.tinyModels) func generateBatchEqualsBatchChat(_ name: String) throws {
        let model = TestData.url(name)
        let g = try TestData.json(model.appendingPathComponent("golden-batch.json"))
        let lines = g["lines"] as! [[String: Any]]
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("batch-\(UUID()).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        var text = ""
        for l in lines {
            let images = (l["images"] as! [String]).map { Self.img($0) }
            let object: [String: Any] = ["question": l["question"]!, "images": images, "max_tiles": l["max_tiles"]!]
            text += String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self) + "\n\n"
        }
        try text.write(to: file, atomically: true, encoding: .utf8)
        let r = try Self.run(["generate", "--model", model.path, "--batch", file.path, "--max-new-tokens", "24"])
        #expect(r.status == 0, "\(name): \(r.err)")
        let out = r.out.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(out.count == lines.count, "\(name): one JSON line per question")
        for (k, (d, want)) in zip(out, lines).enumerated() {
            guard let d else { Issue.record("\(name) line \(k + 1): not JSON"); continue }
            #expect(d["tiles"] as? [Int] == want["tiles"] as? [Int], "\(name) line \(k + 1): tiles")
            #expect(TestData.ints(d["prompt_token_ids"]) == TestData.ints(want["prompt_ids"]), "\(name) line \(k + 1): prompt")
            #expect(TestData.ints(d["token_ids"]) == TestData.ints(want["greedy_ids"]), "\(name) line \(k + 1): answer")
            #expect(d["text"] as? String == want["response"] as? String, "\(name) line \(k + 1): text")
        }
    }

    /// `--batch-images DIR`: one line per image in name order, other files skipped with a note;
    /// the same answers as `--batch` over those images.
    @Test func generateBatchImagesCaptionsAFolder() throws {
        let model = TestData.url("tiny-a").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("batch-images-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (src, dst) in [("photo-coffee.png", "b.png"), ("jpeg-q50.jpg", "a.jpg")] {
            try FileManager.default.copyItem(atPath: Self.img(src), toPath: dir.appendingPathComponent(dst).path)
        }
        try "notes".write(to: dir.appendingPathComponent("readme.txt"), atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("c.png").path, withDestinationPath: "gone.png")
        let folder = try Self.run(["generate", "--model", model, "--batch-images", dir.path, "--question", "What is it?",
                                   "--max-tiles", "2", "--max-new-tokens", "8"])
        #expect(folder.status == 0, "\(folder.err)")
        #expect(folder.err.contains("skipping readme.txt"), "\(folder.err)")
        #expect(folder.err.contains("skipping c.png (a link to a missing file)"), "\(folder.err)")
        let jsonl = dir.appendingPathComponent("q.jsonl.in")
        try (["a.jpg", "b.png"].map { "{\"question\": \"What is it?\", \"images\": [\"\($0)\"], \"max_tiles\": 2}" }.joined(separator: "\n"))
            .write(to: jsonl, atomically: true, encoding: .utf8)
        let batch = try Self.run(["generate", "--model", model, "--batch", jsonl.path, "--max-new-tokens", "8"])
        #expect(batch.status == 0, "\(batch.err)")
        // The same file with CRLF line ends (a Windows editor's) gives the same answers.
        try (["a.jpg", "b.png"].map { "{\"question\": \"What is it?\", \"images\": [\"\($0)\"], \"max_tiles\": 2}\r\n" }.joined())
            .write(to: jsonl, atomically: true, encoding: .utf8)
        let crlf = try Self.run(["generate", "--model", model, "--batch", jsonl.path, "--max-new-tokens", "8"])
        #expect(crlf.status == 0 && crlf.out == batch.out, "\(crlf.err)")
        let a = folder.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let b = batch.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(a.map { $0["image"] as? String } == ["a.jpg", "b.png"])
        #expect(a.count == 2 && b.count == 2)
        for (x, y) in zip(a, b) {
            #expect(TestData.ints(x["token_ids"]) == TestData.ints(y["token_ids"]) && x["text"] as? String == y["text"] as? String)
        }
        // A name that is not UTF-8 is read under its real bytes: a copy of b.png answers as b.png.
        let png = try Data(contentsOf: URL(fileURLWithPath: Self.img("photo-coffee.png")))
        let raw = Array(dir.path.utf8) + [UInt8(ascii: "/"), UInt8(ascii: "d"), 0xFF] + Array(".png".utf8) + [0]
        let fd = raw.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o644) } }
        #expect(fd >= 0 && png.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) } == png.count)
        close(fd)
        let again = try Self.run(["generate", "--model", model, "--batch-images", dir.path, "--question", "What is it?",
                                  "--max-tiles", "2", "--max-new-tokens", "8"])
        let c = again.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(again.status == 0 && !again.err.contains("skipping d"), "\(again.err)")
        #expect(c.map { $0["image"] as? String } == ["a.jpg", "b.png", "d\u{FFFD}.png"], "\(again.out)")
        #expect(c.count == 3 && TestData.ints(c[2]["token_ids"]) == TestData.ints(c[1]["token_ids"]))
    }

    /// `--max-tiles` is the tile limit of the `--batch` lines that give none; a line's own wins.
    @Test func batchLinesWithoutMaxTilesTakeTheFlag() throws {
        let model = TestData.url("tiny-a").path
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("batch-tiles-\(UUID()).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        let image = Self.img("photo-coffee.png")
        try ["{\"question\": \"Q\", \"images\": [\"\(image)\"]}", "{\"question\": \"Q\", \"images\": [\"\(image)\"], \"max_tiles\": 2}"]
            .joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        func tiles(_ extra: [String]) throws -> [[Int]?] {
            let r = try Self.run(["generate", "--model", model, "--batch", file.path, "--max-new-tokens", "1"] + extra)
            #expect(r.status == 0, "\(r.err)")
            return r.out.split(separator: "\n").map { line in
                ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["tiles"] as? [Int]
            }
        }
        let byConfig = try tiles([]), byFlag = try tiles(["--max-tiles", "1"])
        #expect(byFlag == [[1], [3]], "\(byFlag)")
        #expect(byConfig.count == 2 && byConfig[0] != [1] && byConfig[1] == [3], "\(byConfig)")
    }

    /// A bad line of a batch file stops the run before any answer with one error naming the line.
    @Test func generateBatchRefusesABadLine() throws {
        let model = TestData.url("tiny-a").path
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bad-batch-\(UUID()).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        let good = "{\"question\": \"Hi\"}"
        for (bad, words) in [("{\"question\": 3}", "line 2: \"question\" must be a non-empty string"),
                             ("[1, 2]", "line 2: not a JSON object"),
                             ("{\"question\": \"Q\", \"image\": \"a.jpg\"}", "line 2: unknown key \"image\""),
                             ("{\"question\": \"Q\", \"max_tiles\": 0}", "line 2: \"max_tiles\" must be a whole number from 1 to 40"),
                             ("{\"question\": \"Q\", \"images\": [\"/nonexistent/x.png\"]}",
                              "\(file.lastPathComponent) line 2: image /nonexistent/x.png: it does not exist"),
                             ("{\"question\": \"Q\", \"images\": [\"\(Self.img("truncated.png"))\"]}",
                              "\(file.lastPathComponent) line 2: \(Self.img("truncated.png")) is truncated or corrupt")] {
            try (good + "\n" + bad + "\n").write(to: file, atomically: true, encoding: .utf8)
            let r = try Self.run(["generate", "--model", model, "--batch", file.path, "--max-new-tokens", "4"])
            #expect(r.status == 1 && r.err.hasPrefix("error: ") && r.err.contains(words) && r.err.split(separator: "\n").count == 1,
                    "\(bad): \(r.err)")
            #expect(r.out.isEmpty, "\(bad): nothing answered before the error")
        }
    }

    @Test func generateRefusesABadVideoInOneLine() throws {
        let model = TestData.url("tiny-a").path
        for (file, words) in [("bad-audio-only.wav", "has no video stream"), ("bad-garbage.mp4", "is not a video FFmpeg can read"),
                              ("bad-no-frames.avi", "no frames")] {
            let path = TestData.url("videos").appendingPathComponent(file).path
            let r = try Self.run(["generate", "--model", model, "--video", path, "--json", "What is it?"])
            #expect(r.status == 1 && r.err.hasPrefix("error: ") && r.err.contains(words) && r.err.split(separator: "\n").count == 1,
                    "\(file): \(r.err)")
            #expect(r.out.isEmpty)
        }
        let r = try Self.run(["generate", "--model", model, "--video", "x.mp4", "--segments", "0", "Q"])
        #expect(r.status != 0 && r.err.contains("--segments must be between 1 and 64"), "\(r.err)")
        let clip = TestData.url("videos/mjpeg.avi").path
        let history = FileManager.default.temporaryDirectory.appendingPathComponent("history-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: history) }
        try Data(#"[["Frame1: <image>\nFrame2: <image>\nWhat happens?", "A cat walks."]]"#.utf8).write(to: history)
        for (args, words) in [(["--segments", "4", "Q"], "--segments goes with --video"),
                              (["--video", clip, "--video", clip, "Q"], "one --video at a time"),
                              (["--video", clip, "--history", history.path, "And then?"],
                               "the --history has 2 <image> placeholders but --video was sampled to 8 frames")] {
            let r = try Self.run(["generate", "--model", model] + args)
            #expect(r.status != 0 && r.err.contains(words), "\(args): \(r.err)")
            #expect(r.out.isEmpty, "\(args): nothing answered")
        }
    }

    /// `generate --turns`: several turns over one session, one JSON object per step.
    @Test func scriptedTurns() throws {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("turns-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: script) }
        let steps: [[String: Any]] = [
            ["question": "Describe.", "images": [Self.img("photo-chelsea.png")]],
            ["question": "And then?"],
            ["action": "regenerate"],
            ["question": "Long", "cancel_after_tokens": 2],
            ["action": "new"],
            ["question": "Describe.", "images": [Self.img("photo-chelsea.png")]],
            ["action": "bogus"],
        ]
        try JSONSerialization.data(withJSONObject: steps).write(to: script)
        let bad = try Self.run(["generate", "--model", TestData.url("tiny-b").path, "--turns", script.path])
        #expect(bad.status == 1 && bad.err.contains("turn 6: unknown action bogus"), "\(bad.err)")
        let badName = try Self.run(["generate", "--model", TestData.url("tiny-b").path, "--turns", script.path, "--save", "../evil"])
        #expect(badName.status == 64 && badName.err.contains("../evil cannot be a conversation name") && badName.out.isEmpty, "\(badName.err)")
        let dashName = try Self.run(["generate", "--model", TestData.url("tiny-b").path, "--turns", script.path, "--save=-x"])
        #expect(dashName.status == 64 && dashName.err.contains("-x cannot be a new conversation name") && dashName.out.isEmpty, "\(dashName.err)")
        // Numbers 0 and 1 are numbers (Foundation also casts them to Bool), true is not.
        try JSONSerialization.data(withJSONObject: [["question": "Hi", "max_tiles": 1, "max_new_tokens": 1, "cancel_after_tokens": 1],
                                                    ["question": "Q", "cancel_after_tokens": 0]]).write(to: script)
        let ones = try Self.run(["generate", "--model", TestData.url("tiny-b").path, "--turns", script.path])
        #expect(ones.status == 0, "\(ones.err)")
        try JSONSerialization.data(withJSONObject: [["question": "Q", "max_tiles": true]]).write(to: script)
        let yes = try Self.run(["generate", "--model", TestData.url("tiny-b").path, "--turns", script.path])
        #expect(yes.status == 1 && yes.err.contains("\"max_tiles\" must be a whole number from 1 to 40"), "\(yes.err)")
        // Each step is checked as --batch checks its lines: nothing wrong is run without a word.
        for (step, words) in [(["question": "Q", "images": [5]] as [String: Any], "turn 1: \"images\" must be a list of paths"),
                              (["question": "Q", "max_tiles": 0], "turn 1: \"max_tiles\" must be a whole number from 1 to 40"),
                              (["question": "Q", "cancel_after_tokens": -5], "turn 1: \"cancel_after_tokens\" must be a whole number from 0"),
                              (["question": "Q", "image": "a.png"], "turn 1: unknown key \"image\""),
                              (["question": 7], "turn 1: \"question\" must be a string")] {
            try JSONSerialization.data(withJSONObject: [["question": "Hi"], step]).write(to: script)
            let r = try Self.run(["generate", "--model", TestData.url("tiny-b").path, "--turns", script.path])
            #expect(r.status == 1 && r.err.contains(words) && r.out.isEmpty, "\(step): \(r.err)")
        }
        try JSONSerialization.data(withJSONObject: Array(steps.dropLast())).write(to: script)
        let r = try Self.run(["generate", "--model", TestData.url("tiny-b").path, "--max-new-tokens", "6", "--turns", script.path])
        #expect(r.status == 0, "\(r.err)")
        let lines = try r.out.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(lines.count == 6)
        #expect(lines[0]["tiles"] as? [Int] == [7] && lines[0]["reused_tokens"] as? Int == 0)
        let prompt1 = lines[1]["prompt_tokens"] as! Int, reused1 = lines[1]["reused_tokens"] as! Int
        #expect(reused1 > prompt1 / 2, "the follow-up reuses the first turn (\(reused1) of \(prompt1))")
        #expect(TestData.ints(lines[2]["token_ids"]) == TestData.ints(lines[1]["token_ids"]), "greedy regenerate repeats")
        #expect(lines[3]["interrupted"] as? Bool == true && TestData.ints(lines[3]["token_ids"]).count == 2)
        #expect(lines[5]["error"] == nil && TestData.ints(lines[5]["token_ids"]) == TestData.ints(lines[0]["token_ids"]),
                "an image sent before `new` is attached again after it: \(lines[5])")
    }

    @Test func tokenizeModes() throws {
        let m = TestData.url("tiny-a").path
        let cases = try TestData.jsonl("tokenizer-cases.jsonl").prefix(40)
        let input = cases.map { String(decoding: try! JSONSerialization.data(withJSONObject: $0["text"]!, options: .fragmentsAllowed), as: UTF8.self) }
        let r = try Self.run(["tokenize", "--model", m, "--stdin-jsonl"], stdin: input.joined(separator: "\n") + "\n")
        #expect(r.status == 0)
        let lines = r.out.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == cases.count)
        for (line, c) in zip(lines, cases) {
            #expect(TestData.ints(try JSONSerialization.jsonObject(with: Data(line.utf8))) == TestData.ints(c["ids"]))
        }
        let j = try Self.run(["tokenize", "--model", m, "--json", "Hello world"])
        #expect(j.out.hasPrefix("[1,"))
        let plain = try Self.run(["tokenize", "--model", m, "Hello world"])
        #expect(plain.out.hasPrefix("1 "))
    }

    /// Bad input: one clear line on stderr naming what is wrong, status 1, no crash or stack dump,
    /// and no raw escape sequence even when a file name carries one.
    static func img(_ name: String) -> String { TestData.url("images/" + name).path }

    /// A file the process may not read. Root reads anything, so as root the binary runs as
    /// `nobody` through setpriv.
    @Test func unreadableImageIsAClearError() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("unreadable-\(UUID())")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        let f = dir.appendingPathComponent("secret.png")
        try fm.copyItem(atPath: Self.img("png-rgb.png"), toPath: f.path)
        try fm.setAttributes([.posixPermissions: 0o000], ofItemAtPath: f.path)
        var binary = Self.binary, model = TestData.url("tiny-a")
        var args: [String] = []
        if getuid() == 0 {
            guard fm.isExecutableFile(atPath: "/usr/bin/setpriv") else {
                Issue.record("running as root without setpriv: cannot make a file unreadable"); return
            }
            // nobody may not reach the checkout (a clone under /root): use world-readable copies.
            let bin = dir.appendingPathComponent("internvl-chat"), m = dir.appendingPathComponent("model")
            // A link, not a copy: a copy's write descriptor can leak into a child another test
            // forks meanwhile, and exec then fails with "Text file busy" (status 126).
            do { try fm.linkItem(at: binary, to: bin) } catch { try fm.copyItem(at: binary, to: bin) }
            try fm.copyItem(at: model, to: m)
            try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin.path)
            try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: m.path)
            for name in try fm.contentsOfDirectory(atPath: m.path) {
                try fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: m.appendingPathComponent(name).path)
            }
            binary = bin; model = m
            args = ["--reuid=65534", "--regid=65534", "--clear-groups", binary.path]
        }
        args += ["generate", "--model", model.path, "--image", f.path, "x"]
        let r = getuid() == 0 ? try Self.run(args, executable: URL(fileURLWithPath: "/usr/bin/setpriv")) : try Self.run(args)
        #expect(r.status == 1, "\(r.err)")
        #expect(r.err.hasPrefix("error: Cannot read \(f.path)") && r.err.lowercased().contains("permission"), "\(r.err)")
    }

    /// A --turns file that cannot be run is called a turn script in the message (it was called
    /// "not a valid history", the word of --history's files).
    @Test func aBadTurnScriptIsCalledOne() throws {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("turns-bad-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: script) }
        for (body, reason) in [("{}", "expected a JSON array of turn objects"), ("[{\"question\": \"Q\", \"image\": \"a.png\"}]", "turn 0: unknown key")] {
            try Data(body.utf8).write(to: script)
            let r = try Self.run(["generate", "--model", TestData.url("tiny-a").path, "--turns", script.path])
            #expect(r.status == 1 && r.err.hasPrefix("error: \(script.path) is not a valid turn script: \(reason)") && !r.err.contains("history"),
                    "\(body): \(r.err)")
        }
    }

    /// A step whose image cannot be read fails alone, as a step the session refuses does: the
    /// steps after it run and --save keeps every answer (the whole run, and the turns already
    /// answered, were lost).
    @Test func aTurnWhoseImageCannotBeReadFailsAlone() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-turn-image-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = ["--conversations", dir.appendingPathComponent("store").path]
        for bad in [dir.appendingPathComponent("missing.png").path, Self.img("truncated.png")] {
            let script = try Self.writeScript(dir.appendingPathComponent("t.json"), [
                ["question": "Describe.", "images": [Self.img("photo-chelsea.png")]],
                ["question": "And this one?", "images": [Self.img("png-1x1.png"), bad]],
                ["question": "And then?"],
            ])
            let r = try Self.run(["generate", "--model", TestData.url("tiny-b").path, "--max-new-tokens", "3", "--turns", script,
                                  "--save", "kept", "--conversations", dir.appendingPathComponent("store").path])
            #expect(r.status == 0, "\(bad): \(r.err)")
            let lines = try r.out.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            #expect(lines.count == 3, "\(bad): \(r.out)")
            guard lines.count == 3 else { continue }
            #expect(lines[0]["text"] != nil && lines[2]["text"] != nil && lines[1]["text"] == nil, "\(lines)")
            #expect((lines[1]["error"] as? String)?.contains(URL(fileURLWithPath: bad).lastPathComponent) == true, "\(lines[1])")
            let list = try Self.run(["conversations", "--json"] + store)
            let saved = try Self.lastJSON(list.out)
            #expect(saved["name"] as? String == "kept" && saved["turns"] as? Int == 2 && saved["images"] as? Int == 1, "\(list.out)")
        }
    }

    @Test func imagesInGenerate() throws {
        let m = TestData.url("tiny-b").path
        let r = try Self.run(["generate", "--model", m, "--image", Self.img("png-1x1.png"), "--image", Self.img("photo-chelsea.png"),
                              "--max-tiles", "4", "--max-new-tokens", "4", "--json", "Compare."])
        #expect(r.status == 0, "\(r.err)")
        let d = try Self.lastJSON(r.out)
        #expect(d["tiles"] as? [Int] == [1, 3])      // 1x1: one tile; 451x300 (ratio 1.50) with at most 4: 2x1 + thumbnail
        let ctx = TestData.ints(d["prompt_token_ids"]).filter { $0 == 92546 }.count
        #expect(ctx == (1 + 3) * 4)                   // 4 vision tokens per 56-pixel tile
    }

    @Test func badInputGivesCleanErrors() throws {
        let tiny = TestData.url("tiny-a").path
        let img = Self.img
        let s = try ScratchFolder(copying: TestData.url("tiny-a"))
        defer { s.remove() }
        try Data("this is not a protobuf".utf8).write(to: s.file("tokenizer.model"))
        let hist = s.file("history.json")
        try Data("[[\"q\"]]".utf8).write(to: hist)
        let checks: [([String], String)] = [
            (["generate", "--model", "/no/such/model", "hi"], "/no/such/model does not exist"),
            (["generate", "--model", "/tmp/\u{1b}[31mred", "hi"], "does not exist"),
            (["tokenize", "--model", s.url.path, "hi"], "not a SentencePiece model"),
            (["generate", "--model", s.url.path, "hi"], "not a SentencePiece model"),
            (["generate", "--model", tiny, ""], "The prompt is empty"),
            (["generate", "--model", tiny, "--context", "20", "a long question that does not fit"], "but the context holds 20"),
            (["generate", "--model", tiny, "--history", hist.path, "hi"], "entry 0 is not a [question, answer] pair"),
            (["generate", "--model", tiny, "--history", "/no/hist.json", "hi"], "cannot be read"),
            (["generate", "--model", tiny, "--image", img("not-an-image.jpg"), "x"], "is not a JPEG, PNG or WebP image"),
            (["generate", "--model", tiny, "--image", img("truncated.jpg"), "x"], "truncated.jpg is truncated or corrupt"),
            (["generate", "--model", tiny, "--image", img("truncated.png"), "x"], "truncated.png is truncated or corrupt"),
            (["generate", "--model", tiny, "--image", img("empty.png"), "x"], "is empty (0 bytes)"),
            (["generate", "--model", tiny, "--image", TestData.url("images").path, "x"], "is a folder, not an image"),
            (["generate", "--model", tiny, "--image", img("bomb.png"), "x"], "20000x20000 pixels, more than the limit"),
            (["generate", "--model", tiny, "--image", img("jpeg-cmyk.jpg"), "x"], "CMYK JPEGs are not supported"),
            (["generate", "--model", tiny, "--image", img("png-1x1.png"), "--image", img("png-1x1.png"), "<image> x"],
             "2 image(s) but only 1 <image> placeholder"),
        ]
        for (args, message) in checks {
            let r = try Self.run(args)
            #expect(r.status == 1, "\(args): status \(r.status)")
            #expect(r.err.hasPrefix("error: ") && r.err.contains(message), "\(args): \(r.err)")
            #expect(!r.err.contains("\u{1b}") && !r.err.contains("Fatal error") && !r.err.contains("Stack dump"))
            #expect(r.out.isEmpty)
        }
        let bad = try Self.run(["generate", "--model", tiny, "--top-p", "0", "hi"])
        #expect(bad.status != 0 && bad.err.contains("top-p"))
        for (args, option) in [(["--vision-batch", "0"], "--vision-batch"), (["--decode-steps", "0"], "--decode-steps"),
                               (["--prefill", "0"], "--prefill"), (["--batch", "0"], "--batch")] {
            let r = try Self.run(["bench", "--model", tiny, "--json"] + args)
            #expect(r.status != 0 && r.err.contains(option) && r.out.isEmpty, "\(args): \(r.err)")
        }
    }

    /// dump-vision writes its files as export does: an existing one is replaced only with
    /// --force (nothing is written otherwise), a link at a target is replaced, not written
    /// through, and a full disk leaves no file behind.
    @Test func dumpVisionReplacesNothingUnaskedAndWritesWholeFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-dump-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func dump(into folder: URL) -> [String] {
            ["dump-vision", "--model", TestData.url("tiny-a").path, "--out", folder.appendingPathComponent("v").path, Self.img("photo-chelsea.png")]
        }
        let args = dump(into: dir)
        let first = try Self.run(args)
        #expect(first.status == 0, "\(first.err)")
        let meta = dir.appendingPathComponent("v.json"), pixels = dir.appendingPathComponent("v.pixels.f32")
        let written = try Data(contentsOf: meta)
        try Data("edited by hand".utf8).write(to: meta)
        try FileManager.default.removeItem(at: pixels)
        let again = try Self.run(args)
        #expect(again.status == 1 && again.err.contains("v.tokens.f32: it exists already (--force replaces it)")
                && again.err.split(separator: "\n").count == 1, "\(again.err)")
        #expect(try Data(contentsOf: meta) == Data("edited by hand".utf8) && !FileManager.default.fileExists(atPath: pixels.path),
                "a refused dump-vision wrote files")
        let forced = try Self.run(args + ["--force"])
        #expect(try forced.status == 0 && Data(contentsOf: meta) == written, "\(forced.err)")
        // A link at a target: refused without --force; with it, the link is replaced and what it points at kept.
        let elsewhere = dir.appendingPathComponent("elsewhere.json")
        try Data("not dump-vision's".utf8).write(to: elsewhere)
        for name in ["v.json", "v.pixels.f32", "v.tokens.f32"] { try FileManager.default.removeItem(at: dir.appendingPathComponent(name)) }
        try FileManager.default.createSymbolicLink(at: meta, withDestinationURL: elsewhere)
        let linked = try Self.run(args)
        #expect(linked.status == 1 && linked.err.contains("v.json: it exists already"), "\(linked.err)")
        let replaced = try Self.run(args + ["--force"])
        var st = stat()
        #expect(replaced.status == 0 && lstat(meta.path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG, "\(replaced.err)")
        #expect(try Data(contentsOf: elsewhere) == Data("not dump-vision's".utf8), "dump-vision wrote through a link")
        // A full disk (a 16 KB tmpfs in a private mount namespace): one error line, no file left.
        let full = dir.appendingPathComponent("full")
        try FileManager.default.createDirectory(at: full, withIntermediateDirectories: true)
        let quoted = ([Self.binary.path] + dump(into: full)).map { "'" + $0 + "'" }.joined(separator: " ")
        let script = "mount -t tmpfs -o size=16k none '\(full.path)' && \(quoted); echo \"status=$?\"; ls -A '\(full.path)'"
        let r = try Self.run(["-rm", "sh", "-c", script], executable: URL(fileURLWithPath: "/usr/bin/unshare"))
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines == ["status=1"] && r.err.contains("v.pixels.f32: No space left on device") && r.err.split(separator: "\n").count == 1,
                "out: \(r.out) err: \(r.err)")
    }

    /// Writes a --turns script of `steps`; returns its path.
    static func writeScript(_ url: URL, _ steps: [[String: Any]]) throws -> String {
        try JSONSerialization.data(withJSONObject: steps).write(to: url)
        return url.path
    }

    /// Saved with one model, resumed with another (another family): one warning line says so,
    /// and the conversation is encoded again for the new model: the resumed answer is the one the
    /// new model gives to that history asked directly.
    @Test func resumeWithAnotherModelSaysSoAndReencodes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-conv-model-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let img = TestData.url("images/photo-chelsea.png").path
        let script = { (name: String, steps: [[String: Any]]) throws -> String in
            try Self.writeScript(dir.appendingPathComponent(name), steps)
        }
        let store = ["--max-new-tokens", "6", "--temperature", "0", "--conversations", dir.appendingPathComponent("store").path]
        let a = try Self.run(["generate", "--model", TestData.url("tiny-b").path] + store
                             + ["--turns", try script("first.json", [["question": "Describe this image.", "images": [img]]]), "--save", "pets"])
        #expect(a.status == 0, "\(a.err)")
        let b = try Self.run(["generate", "--model", TestData.url("tiny-phi3").path] + store
                             + ["--turns", try script("next.json", [["question": "And then?"]]), "--resume", "pets"])
        #expect(b.status == 0, "\(b.err)")
        #expect(b.err.contains("warning: This conversation was saved with tiny-b (bf16); it continues with tiny-phi3 (bf16): "
                               + "its text and its image are encoded again for this model"), "\(b.err)")
        // Text only: the resumed answer equals tiny-phi3's own answer to the same history.
        let c = try Self.run(["generate", "--model", TestData.url("tiny-b").path] + store
                             + ["--turns", try script("text.json", [["question": "Hello, who are you?"]]), "--save", "words"])
        let answer = try Self.lastJSON(c.out)["text"] as! String
        let d = try Self.run(["generate", "--model", TestData.url("tiny-phi3").path] + store
                             + ["--turns", try script("more.json", [["question": "And then?"]]), "--resume", "words"])
        #expect(d.status == 0 && d.err.contains("its text is encoded again"), "\(d.err)")
        let history = dir.appendingPathComponent("history.json")
        try JSONSerialization.data(withJSONObject: [["Hello, who are you?", answer]]).write(to: history)
        let direct = try Self.run(["generate", "--model", TestData.url("tiny-phi3").path, "--max-new-tokens", "6", "--temperature", "0",
                                   "--history", history.path, "--json", "And then?"])
        let want = try Self.lastJSON(direct.out), got = try Self.lastJSON(d.out)
        #expect(got["token_ids"] as? [Int] == want["token_ids"] as? [Int] && !(got["token_ids"] as? [Int] ?? []).isEmpty)
        #expect(got["prompt_tokens"] as? Int == (want["prompt_token_ids"] as? [Int])?.count)
    }

    /// Saved by one process, resumed by another: the follow-up equals the one asked without the
    /// break; the conversation commands list, search, export and import it.
    /// A file where a folder belongs (the store, an export's folder) is named as such, not as
    /// Foundation's "The operation could not be completed. (NSCocoaErrorDomain error 512.)" or as
    /// a folder that does not exist.
    @Test func aFileWhereAFolderBelongsIsNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-file-folder-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = ["--conversations", dir.appendingPathComponent("store").path]
        let script = try Self.writeScript(dir.appendingPathComponent("t.json"), [["question": "Hi"]])
        let g = try Self.run(["generate", "--model", TestData.url("tiny-a").path, "--max-new-tokens", "2", "--turns", script, "--save", "c"] + store)
        #expect(g.status == 0, "\(g.err)")
        let json = dir.appendingPathComponent("c.json").path
        #expect(try Self.run(["export", "c", "--format", "json", "--out", json] + store).status == 0)
        let file = dir.appendingPathComponent("file").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        for (args, words) in [(["export", "c", "--out", file + "/md"] + store, "\(file) is a file, not a folder"),
                              (["export", "c", "--format", "json", "--out", file + "/c.json"] + store, "\(file) is a file, not a folder"),
                              (["import", json, "--name", "d", "--conversations", file], "Not a directory"),
                              (["import", json, "--name", "d", "--conversations", file + "/sub"], "Not a directory")] {
            let r = try Self.run(args)
            #expect(r.status == 1 && r.err.hasPrefix("error: ") && r.err.contains(words), "\(args): \(r.err)")
            #expect(!r.err.contains("NSCocoaErrorDomain") && !r.err.contains("does not exist"), "\(args): \(r.err)")
        }
        // A Markdown export makes its folder, but not a mistyped path's missing parents.
        let typo = dir.appendingPathComponent("no-such/md").path
        let r = try Self.run(["export", "c", "--out", typo] + store)
        #expect(r.status == 1 && r.err.contains("its folder \(dir.path)/no-such does not exist"), "\(r.err)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("no-such").path))
        #expect(try Self.run(["export", "c", "--out", dir.appendingPathComponent("md").path] + store).status == 0)
    }

    @Test func saveResumeExportImportAcrossProcesses() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-conv-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let img = TestData.url("images/photo-chelsea.png").path
        let script = { (name: String, steps: [[String: Any]]) throws -> String in
            try Self.writeScript(dir.appendingPathComponent(name), steps)
        }
        let first: [[String: Any]] = [["question": "Describe this image.", "images": [img], "max_tiles": 4], ["question": "And the colours?"]]
        let last: [[String: Any]] = [["question": "What else?"]]
        let common = ["generate", "--model", TestData.url("tiny-b").path, "--max-new-tokens", "12", "--conversations", dir.appendingPathComponent("store").path]
        let whole = try Self.run(common + ["--turns", try script("all.json", first + last)])
        #expect(whole.status == 0, "\(whole.err)")
        let a = try Self.run(common + ["--turns", try script("first.json", first), "--save", "cat chat"])
        #expect(a.status == 0, "\(a.err)")
        let b = try Self.run(common + ["--turns", try script("last.json", last), "--resume", "cat chat", "--save", "cat chat"])
        #expect(b.status == 0, "\(b.err)")
        let want = try Self.lastJSON(whole.out), got = try Self.lastJSON(b.out)
        #expect(got["token_ids"] as? [Int] == want["token_ids"] as? [Int] && got["text"] as? String == want["text"] as? String)
        #expect(got["prompt_token_ids"] as? [Int] == want["prompt_token_ids"] as? [Int])
        #expect(((got["timings"] as? [String: Any])?["vision_s"] as? Double ?? 1) < 0.01, "the image came back from stored vision tokens")

        let store = ["--conversations", dir.appendingPathComponent("store").path]
        let list = try Self.run(["conversations"] + store)
        #expect(list.status == 0 && list.out.hasPrefix("cat chat ") && list.out.contains("3 turns, 1 image  Describe this image."), "\(list.out)")
        #expect(try Self.run(["conversations", "COLOURS"] + store).out.contains("cat chat"))
        #expect(try Self.run(["conversations", "zebra"] + store).out.isEmpty)
        let md = try Self.run(["export", "cat chat", "--out", dir.appendingPathComponent("md").path] + store)
        #expect(md.status == 0 && FileManager.default.fileExists(atPath: dir.appendingPathComponent("md/cat chat.md").path))
        let js = try Self.run(["export", "cat chat", "--format", "json", "--out", dir.appendingPathComponent("x.json").path] + store)
        #expect(js.status == 0)
        let intoFile = try Self.run(["export", "cat chat", "--out", dir.appendingPathComponent("x.json").path] + store)
        #expect(intoFile.status == 1 && intoFile.err.contains("x.json: it is a file; Markdown is written into a folder")
                && intoFile.err.split(separator: "\n").count == 1, "\(intoFile.err)")
        let noFolder = try Self.run(["export", "cat chat", "--format", "json", "--out", dir.appendingPathComponent("none/y.json").path] + store)
        #expect(noFolder.status == 1 && noFolder.err.contains("none/y.json: its folder") && noFolder.err.contains("does not exist"), "\(noFolder.err)")
        let intoFolder = try Self.run(["export", "cat chat", "--format", "json", "--out", dir.appendingPathComponent("md").path] + store)
        #expect(intoFolder.status == 0 && intoFolder.out == dir.appendingPathComponent("md/cat chat.json").path + "\n", "\(intoFolder.out)\(intoFolder.err)")
        // An export that would replace a file stops, writes nothing, and says how to replace it.
        let mdPath = dir.appendingPathComponent("md/cat chat.md").path, before = try Data(contentsOf: URL(fileURLWithPath: mdPath))
        try Data("edited by hand".utf8).write(to: URL(fileURLWithPath: mdPath))
        let exists = try Self.run(["export", "cat chat", "--out", dir.appendingPathComponent("md").path] + store)
        #expect(exists.status == 1 && exists.err.contains("cat chat.md: it exists already (--force replaces it)"), "\(exists.err)")
        let kept = try Data(contentsOf: URL(fileURLWithPath: mdPath))
        #expect(kept == Data("edited by hand".utf8))
        let jsonAgain = try Self.run(["export", "cat chat", "--format", "json", "--out", dir.appendingPathComponent("x.json").path] + store)
        #expect(jsonAgain.status == 1 && jsonAgain.err.contains("x.json: it exists already"), "\(jsonAgain.err)")
        let forced = try Self.run(["export", "cat chat", "--force", "--out", dir.appendingPathComponent("md").path] + store)
        let replaced = try Data(contentsOf: URL(fileURLWithPath: mdPath))
        #expect(forced.status == 0 && replaced == before, "\(forced.err)")
        // A target that is no regular file is not replaced, even with --force.
        let fifo = dir.appendingPathComponent("pipe.json").path
        #expect(mkfifo(fifo, 0o644) == 0)
        for (target, kind) in [(fifo, "a FIFO (named pipe)"), ("/dev/null", "a device")] {
            let r = try Self.run(["export", "cat chat", "--format", "json", "--force", "--out", target] + store)
            var st = stat()
            #expect(r.status == 1 && r.err.contains("\(target): it is \(kind), not a regular file") && lstat(target, &st) == 0
                    && (st.st_mode & S_IFMT) != S_IFREG, "\(r.err)")
        }
        let imp = try Self.run(["import", dir.appendingPathComponent("x.json").path, "--name", "copy"] + store)
        let after = try Self.run(["conversations"] + store)
        #expect(imp.status == 0 && after.out.contains("copy "))
        // Errors: one line, status 1.
        let missing = try Self.run(["export", "nope"] + store)
        #expect(missing.status == 1 && missing.err.hasPrefix("error: No saved conversation nope"))
        let taken = try Self.run(["import", dir.appendingPathComponent("x.json").path, "--name", "copy"] + store)
        #expect(taken.status == 1 && taken.err.contains("A conversation named copy exists already") && taken.err.contains("--name NAME"),
                "\(taken.err)")
        let garbage = dir.appendingPathComponent("garbage.json")
        try Data("{\"conversation\": 1".utf8).write(to: garbage)
        let g = try Self.run(["import", garbage.path] + store)
        #expect(g.status == 1 && g.err.contains("is not a valid conversation: it is not complete JSON") && !g.err.contains(".."), "\(g.err)")
        let exported = try Data(contentsOf: dir.appendingPathComponent("x.json"))
        let cut = dir.appendingPathComponent("cut.json")
        try exported.prefix(exported.count / 2).write(to: cut)
        let c = try Self.run(["import", cut.path, "--name", "cut"] + store)
        #expect(c.status == 1 && c.err.contains("cut.json is not a valid conversation: it is not complete JSON"), "\(c.err)")
        #expect(!(try Self.run(["conversations"] + store).out.contains("cut ")), "nothing half-imported")
        // A name starting with "-" would need `--` to address: an export carrying one is imported
        // under another name only, and no new name may start with it.
        var o = try JSONSerialization.jsonObject(with: exported) as! [String: Any]
        var conversation = o["conversation"] as! [String: Any]
        conversation["name"] = "-dash"
        o["conversation"] = conversation
        let dash = dir.appendingPathComponent("dash.json")
        try JSONSerialization.data(withJSONObject: o).write(to: dash)
        let d = try Self.run(["import", dash.path] + store)
        #expect(d.status == 1 && d.err.contains("The export's name -dash starts with \"-\"") && d.err.contains("--name NAME"), "\(d.err)")
        let named = try Self.run(["import", dash.path, "--name=-y"] + store)
        #expect(named.status == 1 && named.err.contains("-y cannot be a new conversation name"), "\(named.err)")
        #expect(!(try Self.run(["conversations"] + store).out.contains("dash")), "nothing imported")
        // --delete removes one conversation, folder and images; a second time it is not there.
        let del = try Self.run(["conversations", "--delete", "copy"] + store)
        #expect(del.status == 0 && del.out == "Deleted copy.\n", "\(del.out) \(del.err)")
        #expect(!(try Self.run(["conversations"] + store).out.contains("copy ")))
        let again = try Self.run(["conversations", "--delete", "copy"] + store)
        #expect(again.status == 1 && again.err.hasPrefix("error: No saved conversation copy"))
    }
}
