@preconcurrency import CNcursesw
import Foundation
import Testing
import TestSupport
@testable import TUI

/// Keys read by `KeyReader` from a real curses screen whose input is a pipe: the bytes a terminal
/// sends go in, the keys the app acts on come out. An invalid UTF-8 byte (text from a Latin-1
/// file, a binary's bytes) must not take the characters after it, and inside a paste must not
/// take the end-of-paste marker, with the text after it.
@Suite(.serialized) struct KeyReaderTests {
    /// Runs `body` with a curses screen set up as `Terminal` sets up its own (keypad, raw, 30 ms
    /// key timeout, the app's key definitions) but writing to /dev/null and reading a pipe;
    /// `send` writes to that pipe. The locale is UTF-8, as the app makes it.
    static func withScreen(typedAhead: [UInt8] = [], _ body: (_ send: ([UInt8]) -> Void, _ reader: KeyReader) -> Void) throws {
        let savedLocale = String(cString: setlocale(LC_CTYPE, nil))
        setlocale(LC_CTYPE, "C.UTF-8")
        defer { setlocale(LC_CTYPE, savedLocale) }
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let input = try #require(fdopen(fds[0], "r")), output = try #require(fopen("/dev/null", "w"))
        let screen = try #require(newterm("xterm-256color", output, input))
        set_term(screen)
        defer {
            endwin(); delscreen(screen)
            fclose(input); fclose(output); close(fds[1])
        }
        raw(); noecho(); keypad(shim_stdscr(), true); nonl()
        meta(shim_stdscr(), true)       // 8-bit input, as curses finds a terminal (CS8, no ISTRIP); a pipe has no such settings
        shim_set_escdelay(25)
        timeout(30)
        KeyReader.defineKeys()
        let reader = KeyReader(typedAhead: typedAhead)
        body({ bytes in
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
                if n <= 0 { Issue.record("writing to the pipe failed"); return }
                off += n
            }
        }, reader)
    }

    static let pasteStart = Array("\u{1b}[200~".utf8), pasteEnd = Array("\u{1b}[201~".utf8)

    /// The keys read until one does not come within 30 ms.
    static func keys(_ reader: KeyReader) -> [Terminal.Key] {
        var out: [Terminal.Key] = []
        while out.count < 10_000 {
            let k = reader.key(waitingMilliseconds: 30)
            if k == .none { return out }
            out.append(k)
        }
        return out
    }

    /// Pasted bytes with invalid UTF-8 among them: each invalid sequence is one U+FFFD (as
    /// Swift's own decoder replaces it), every character after it is pasted text, the paste ends
    /// at its end marker and the key typed after the paste is a key of its own.
    @Test(arguments: [
        [0xFF],                        // never in UTF-8
        [0xC3],                        // a character's first byte, then an ASCII letter
        [0xE2, 0x82],                  // three bytes cut short
        [0xF0, 0x9F, 0x98],            // four bytes cut short
        [0x80, 0xBF],                  // continuation bytes alone
        [0xC0, 0xAF],                  // an overlong '/'
        [0xED, 0xA0, 0x80],            // a UTF-16 surrogate
        [0xF5, 0x80, 0x80, 0x80],      // past U+10FFFF
    ] as [[UInt8]])
    func anInvalidByteInAPasteKeepsTheTextAfterIt(invalid: [UInt8]) throws {
        let after = Array("def ghi jkl mno pqr stu vwx yz 0123456789 ABCDEFGHIJ é 你好 🙂 end".utf8)
        let pasted = Array("abc".utf8) + invalid + after
        try Self.withScreen { send, reader in
            send(Self.pasteStart + pasted + Self.pasteEnd + Array("x".utf8))
            let keys = Self.keys(reader)
            #expect(keys == [.paste(String(decoding: pasted, as: UTF8.self)), .char("x")], "\(invalid): \(keys)")
        }
    }

    /// An invalid byte just before the end marker (a paste cut inside a character) leaves the
    /// marker seen: the paste ends there and what follows is typed.
    @Test func anInvalidByteRightBeforeTheEndMarker() throws {
        for invalid: [UInt8] in [[0xFF], [0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98]] {
            try Self.withScreen { send, reader in
                send(Self.pasteStart + Array("text".utf8) + invalid + Self.pasteEnd + Array("ok".utf8))
                let keys = Self.keys(reader)
                #expect(keys == [.paste("text\u{FFFD}"), .char("o"), .char("k")], "\(invalid): \(keys)")
            }
        }
    }

    /// Typed (not pasted) invalid bytes: one U+FFFD per invalid sequence, the keys around them as they were.
    @Test func anInvalidByteTypedIsOneReplacementCharacter() throws {
        try Self.withScreen { send, reader in
            send(Array("a".utf8) + [0xFF] + Array("bé".utf8) + [0xE2, 0x82] + Array("c".utf8) + [0xC3] + Array("\u{1b}[A".utf8))
            let keys = Self.keys(reader)
            #expect(keys == [.char("a"), .char("\u{FFFD}"), .char("b"), .char("é"), .char("\u{FFFD}"), .char("c"),
                             .char("\u{FFFD}"), .code(KEY_UP)], "\(keys)")
        }
    }

    /// The keys the app acts on, read one at a time as a person types them.
    @Test func keysAsTheAppActsOnThem() throws {
        let cases: [([UInt8], Terminal.Key)] = [
            (Array("a".utf8), .char("a")), (Array("é".utf8), .char("é")), (Array("你".utf8), .char("你")),
            (Array("🙂".utf8), .char("🙂")), ([0x03], .char("\u{03}")), ([0x0D], .char("\r")), ([0x7F], .code(KEY_BACKSPACE)),
            (Array("\u{1b}OA".utf8), .code(KEY_UP)), (Array("\u{1b}OB".utf8), .code(KEY_DOWN)),
            (Array("\u{1b}[D".utf8), .code(KEY_LEFT)), (Array("\u{1b}[C".utf8), .code(KEY_RIGHT)),
            (Array("\u{1b}OP".utf8), .code(shim_KEY_F(1))), (Array("\u{1b}[5~".utf8), .code(KEY_PPAGE)),
            (Array("\u{1b}[3~".utf8), .code(KEY_DC)), (Array("\u{1b}[1;5D".utf8), .code(Terminal.wordLeftKey)),
            (Array("\u{1b}[1;3C".utf8), .code(Terminal.wordRightKey)), (Array("\u{1b}[1~".utf8), .code(KEY_HOME)),
            (Array("\u{1b}b".utf8), .alt("b")), (Array("\u{1b}é".utf8), .alt("é")), (Array("\u{1b}\u{7F}".utf8), .alt("\u{7F}")),
            (Array("\u{1b}\r".utf8), .alt("\r")), ([0x1B], .code(27)),
            (Array("\u{1b}[?63;1;2;4c".utf8), .none),
        ]
        try Self.withScreen { send, reader in
            for (bytes, expected) in cases {
                send(bytes)
                let k = reader.key(waitingMilliseconds: 200)
                #expect(k == expected, "\(bytes): \(k)")
                #expect(reader.key(waitingMilliseconds: 0) == .none, "\(bytes): a key left over")
            }
            ungetch(KEY_RESIZE)
            #expect(reader.key(waitingMilliseconds: 0) == .code(KEY_RESIZE))
        }
    }

    /// Keys typed before curses started, more than one part of them, an invalid byte among
    /// them, come first and whole.
    @Test func keysTypedAheadComeFirst() throws {
        let typed = Array(String(repeating: "é你a", count: 40).utf8) + [0xFF] + Array("b\u{1b}[Dc".utf8)
        try Self.withScreen(typedAhead: typed) { send, reader in
            send(Array("d".utf8))
            let keys = Self.keys(reader)
            let text = Array(String(repeating: "é你a", count: 40)).map { Terminal.Key.char(String($0)) }
            #expect(keys == text + [.char("\u{FFFD}"), .char("b"), .code(KEY_LEFT), .char("c"), .char("d")], "\(keys)")
        }
    }
}

/// `UTF8Input` against Swift's own UTF-8 decoder (the naive twin): random bytes, most of them
/// pieces of valid characters cut and mixed, decode to the same scalars, invalid sequences to the
/// same U+FFFDs; a key code between bytes cuts a character short and still comes out in place.
struct UTF8InputTests {
    @Test func decodesAsSwiftDoes() {
        var rng = SeededRandom(seed: 1)
        let pieces: [[UInt8]] = ["a", "é", "你", "🙂", "\u{7F}", "\u{80}", "\u{7FF}", "\u{800}", "\u{FFFF}", "\u{10000}", "\u{10FFFF}", "\u{D7FF}", "\u{E000}"]
            .map { Array($0.utf8) }
        for _ in 0..<2_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...12, using: &rng) {
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes.append(UInt8.random(in: 0...255, using: &rng))
                case 1: bytes += pieces.randomElement(using: &rng)!.prefix(Int.random(in: 1...3, using: &rng))
                default: bytes += pieces.randomElement(using: &rng)!
                }
            }
            #expect(Self.decode(bytes.map { .byte($0) }) == String(decoding: bytes, as: UTF8.self).unicodeScalars.map { .scalar($0) },
                    "\(bytes)")
            // The same with a key code after each byte in turn: the text before it decoded alone, the key, then the rest.
            for cut in 0...bytes.count {
                let raw = bytes[..<cut].map { UTF8Input.Raw.byte($0) } + [.key(600)] + bytes[cut...].map { .byte($0) }
                let expected = String(decoding: bytes[..<cut], as: UTF8.self).unicodeScalars.map { UTF8Input.Item.scalar($0) }
                    + [.key(600)] + String(decoding: bytes[cut...], as: UTF8.self).unicodeScalars.map { .scalar($0) }
                #expect(Self.decode(raw) == expected, "\(bytes), key at \(cut)")
            }
        }
    }

    /// A character whose later bytes do not come in time is one U+FFFD, and they are not waited for again.
    @Test func aCharacterCutShortByAPause() {
        var input = UTF8Input()
        var raw: [UTF8Input.Raw?] = [.byte(0xE4), .byte(0xBD), nil, .byte(0xA0), .byte(0x61), nil]
        var continuing: [Bool] = []
        var out: [UTF8Input.Item?] = []
        for _ in 0..<4 { out.append(input.next { continuing.append($0); return raw.removeFirst() }) }
        #expect(out == [.scalar("\u{FFFD}"), .scalar("\u{FFFD}"), .scalar("a"), nil])
        #expect(continuing == [false, true, true, false, false, false])
    }

    /// Items handed back come next, in order, before the one that cut a character short.
    @Test func handedBackItemsComeFirst() {
        var input = UTF8Input()
        var raw: [UTF8Input.Raw] = [.byte(0xC3), .byte(0x41), .byte(0x42)]
        let read: (Bool) -> UTF8Input.Raw? = { _ in raw.isEmpty ? nil : raw.removeFirst() }
        let first = input.next(read)
        #expect(first == .scalar("\u{FFFD}"))
        input.unread([.scalar("x"), .key(700)])
        var rest: [UTF8Input.Item] = []
        while let i = input.next(read) { rest.append(i) }
        #expect(rest == [.scalar("x"), .key(700), .scalar("A"), .scalar("B")])
    }

    static func decode(_ raw: [UTF8Input.Raw]) -> [UTF8Input.Item] {
        var input = UTF8Input(), rest = raw[...], out: [UTF8Input.Item] = []
        while let item = input.next({ _ in rest.popFirst() }) { out.append(item) }
        return out
    }
}
