import ChatAPI
import Testing
@testable import TUI

struct EmphasisTests {
    func roles(_ s: String) -> (String, [Role]) { InlineMarkdown.parse(s, base: .text) }

    /// The characters of `text` in role `r`, as one string.
    func picked(_ p: (String, [Role]), _ r: Role) -> String {
        String(zip(p.0, p.1).filter { $0.1 == r }.map(\.0))
    }

    @Test func markersGoAndTheirTextGetsARole() {
        let p = roles("a *b c* **d** `e*f*` __g__ _h_ end")
        #expect(p.0 == "a b c d e*f* g h end")
        #expect(picked(p, .emphasis) == "b ch" && picked(p, .strong) == "dg" && picked(p, .code) == "e*f*")
        let nested = roles("**bold with `code` and *em* inside**")
        #expect(nested.0 == "bold with code and em inside")
        #expect(picked(nested, .code) == "code" && picked(nested, .emphasis) == "em" && picked(nested, .strong) == "bold with  and  inside")
    }

    @Test func whatIsNotEmphasisStaysAsTyped() {
        for s in ["2 * 3 * 4", "snake_case_name and other_name", "**never closed", "a * b*", "*", "``", "x__y__z", "` unclosed code"] {
            let p = roles(s)
            #expect(p.0 == s && p.1.allSatisfy { $0 == .text }, "\(s) -> \(p.0)")
        }
        #expect(roles("``a ` b``").0 == "a ` b" && roles("``a ` b``").1.allSatisfy { $0 == .code })
    }

    @Test func codeBlocksKeepTheirMarkersAndWrappedLinesKeepTheirRoles() {
        let lines = MessageLayout.styledLines("```\n*x* **y** `z`\n```\nsee *x*", width: 40)
        #expect(lines[1].role == .code && lines[1].runs.map(\.1).joined() == "*x* **y** `z`" && lines[1].runs.count == 1)
        #expect(lines[3].runs.map(\.0) == [.text, .emphasis] && lines[3].runs.map(\.1) == ["see ", "x"])
        // Emphasis across a line break: every emphasised word keeps its role, no line too wide.
        let text = "one *two three four five six seven* eight **nine ten** and `eleven twelve`"
        let wrapped = MessageLayout.styledLines(text, width: 12)
        #expect(wrapped.allSatisfy { TextWidth.of($0.runs.map(\.1).joined()) <= 12 })
        let all = wrapped.flatMap(\.runs)
        func words(_ r: Role) -> [String] { all.filter { $0.0 == r }.flatMap { $0.1.split(separator: " ").map(String.init) } }
        #expect(words(.emphasis) == ["two", "three", "four", "five", "six", "seven"])
        #expect(words(.strong) == ["nine", "ten"] && words(.code) == ["eleven", "twelve"])
        #expect(MessageLayout.lines(text, width: 12).map(\.1) == Wrap.lines("one two three four five six seven eight nine ten and eleven twelve", width: 12))
        // List items: the marker stays plain, the body gets emphasis.
        let item = MessageLayout.styledLines("- a **b**", width: 20)[0]
        #expect(item.runs.map(\.1) == ["- ", "a ", "b"] && item.runs.map(\.0) == [.text, .text, .strong])
    }

    @Test func anAnswerOnScreenShowsItsEmphasisInRoles() throws {
        var s = AppState()
        _ = reduce(&s, .type("How?")); _ = reduce(&s, .enter)
        _ = reduce(&s, .event(.text("Run `ls -la` with **care**, *then* stop."), at: 1))
        let g = render(s, width: 80, height: 20)
        let rows = g.text.split(separator: "\n", omittingEmptySubsequences: false)
        let y = try #require(rows.firstIndex { $0.contains("Run ls -la with care, then stop.") })
        let x0 = try #require(rows[y].range(of: "Run")).lowerBound.utf16Offset(in: rows[y])
        func role(at word: String) -> Role { g[x0 + rows[y].dropFirst(x0).distance(from: rows[y].dropFirst(x0).startIndex, to: rows[y].dropFirst(x0).range(of: word)!.lowerBound), y].role }
        #expect(role(at: "Run") == .text && role(at: "ls -la") == .code && role(at: "care") == .strong && role(at: "then") == .emphasis)
        #expect(Theme.dark.style(.strong).bold == true && Theme(name: "mine", roles: [:]).style(.emphasis).underline == true)
    }

    @Test func theMoreBelowCountGrowsAndTheViewStaysWhileScrolledUp() throws {
        var s = AppState()
        _ = reduce(&s, .type("Tell me."))
        _ = reduce(&s, .enter)
        _ = reduce(&s, .event(.text((1...60).map { "line \($0)\n" }.joined()), at: 1))
        s.scroll = 5
        var f = renderFrame(s, width: 80, height: 20)
        s.scroll = f.scroll; s.linesShown = f.lines
        let top = f.grid.text.split(separator: "\n")[0]
        func below(_ g: CellGrid) -> Int? { g.text.firstMatch(of: /↓ (\d+) more lines/).flatMap { Int($0.1) } }
        let before = try #require(below(f.grid))
        _ = reduce(&s, .event(.text((61...70).map { "line \($0)\n" }.joined()), at: 2))      // ten more lines stream in
        f = renderFrame(s, width: 80, height: 20)
        #expect(f.scroll == 15 && f.grid.text.split(separator: "\n")[0] == top, "\(f.grid.text)")
        #expect(below(f.grid) == before + 10)
        // Following the tail (scroll 0), new lines scroll the view as before.
        s.scroll = 0; s.linesShown = f.lines
        _ = reduce(&s, .event(.text("line 71\n"), at: 3))
        #expect(renderFrame(s, width: 80, height: 20).scroll == 0)
    }
}
