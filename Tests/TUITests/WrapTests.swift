import ChatAPI
import Testing
import TestSupport
@testable import TUI

/// `Wrap.rows`, which walks a paragraph once and keeps words and lines as places in it, against
/// its naive twin below (strings appended character by character, every
/// character's width from its scalars): the same rows and starts over random texts of spaces,
/// long words, wide and zero-width characters, clusters that join across pieces, at every width.
struct WrapTests {
    static let pieces = ["word", " ", "  ", "a", "z", "longwordlongwordlongword", "你好", "世界", "\t", "\n", "e\u{301}", "\u{301}",
                         " \u{301}", "👩\u{200D}💻", "🙂", "\u{200D}", "🇫", "🇷", "\u{1}", "\u{7F}", "\u{202E}", "\u{600}", "\u{600} ",
                         "क", "\u{94D}", "ष", "\u{FE0F}", "x y z ", "ab\u{301}c", "\r\n", "\u{AD}"]

    @Test func rowsAsTheNaiveTwin() {
        for round in 0..<400 {
            var rng = SeededRandom(seed: UInt64(round))
            let text = (0..<Int.random(in: 0...30, using: &rng)).map { _ in Self.pieces.randomElement(using: &rng)! }.joined()
            for width in [1, 2, 3, 5, 8, 13, 40] {
                let got = Wrap.rows(text, width: width).map { "\($0.start):\($0.text)" }
                let want = NaiveWrap.rows(text, width: width).map { "\($0.start):\($0.text)" }
                #expect(got == want, "round \(round) at \(width): \(text.debugDescription)")
            }
        }
    }

    /// `InputLayout` counts shown scalars one input scalar at a time, as `sanitize` shows them.
    @Test func shownCountsAsSanitize() {
        for v in Array(0...0x3000) + Array(0x1F300...0x1F310) + [0xFEFF, 0x10FFFD] {
            guard let u = Unicode.Scalar(v) else { continue }
            for tab in [nil, 4] as [Int?] {
                #expect(TerminalText.shownCount(u, tabWidth: tab) == TerminalText.sanitize(String(u), tabWidth: tab).unicodeScalars.count, "U+\(String(v, radix: 16))")
            }
        }
    }
}

/// Word wrap character by character: the naive twin of `Wrap.rows`.
enum NaiveWrap {
    static func rows(_ text: String, width: Int) -> [(text: String, start: Int)] {
        guard width > 0 else { return [] }
        var out: [(text: String, start: Int)] = []
        var offset = 0
        for paragraph in TerminalText.sanitize(text, tabWidth: 4).split(separator: "\n", omittingEmptySubsequences: false) {
            var line = "", lineWidth = 0, lineStart = offset
            var word = "", wordWidth = 0, wordStart = offset
            func flushWord() {
                let wordScalars = word.unicodeScalars.count
                defer { word = ""; wordWidth = 0; wordStart += wordScalars }
                if lineWidth + wordWidth <= width {
                    if line.isEmpty { lineStart = wordStart }
                    line += word; lineWidth += wordWidth
                    return
                }
                if !line.isEmpty { out.append((Wrap.trimmedEnd(line), lineStart)); line = ""; lineWidth = 0 }
                var w = word[...], start = wordStart, left = wordWidth
                while left > width {     // a word longer than the line
                    var take = "", tw = 0
                    while let c = w.first, tw + TextWidth.of(character: c) <= width { take.append(c); tw += TextWidth.of(character: c); w = w.dropFirst() }
                    if take.isEmpty, let c = w.first { take = String(c); tw = TextWidth.of(character: c); w = w.dropFirst() }
                    out.append((take, start))
                    start += take.unicodeScalars.count; left -= tw
                }
                let kept = w.drop(while: { $0 == " " })
                line = String(kept)
                lineWidth = TextWidth.of(line)
                lineStart = start + (w.unicodeScalars.count - kept.unicodeScalars.count)
            }
            for ch in paragraph {
                word.append(ch); wordWidth += TextWidth.of(character: ch)
                if ch == " " || TextWidth.of(character: ch) >= 2 { flushWord() }
            }
            flushWord()
            out.append((Wrap.trimmedEnd(line), lineStart))
            offset += paragraph.unicodeScalars.count + 1
        }
        return out
    }
}
