/// Text pasted with the end-of-paste marker (ESC[201~) inside it: the terminal passes the marker
/// on (tmux's paste-buffer -p does), so the paste seems to end there and the rest arrives as
/// keys, an Enter among them sending a message nobody meant to send. The keys that follow the
/// end of a paste with no pause between them are taken as more of the pasted text: characters
/// as typed, Enter as a line break; keys that would act (Esc, Ctrl-C, Ctrl-D, Tab completion, the
/// arrows, the wheel) are dropped. A person's own key after a paste comes a pause later.
public enum PasteTail {
    /// The longest pause between two keys of the same paste, in milliseconds: pastes arrive in
    /// one write, so their keys are already waiting or a fraction of a millisecond apart.
    public static let pauseMilliseconds: Int32 = 40
    /// Keys are read as a paste's tail for at most this long (a wheel turned on and on right after
    /// a paste sends keys with no pause, and they are dropped).
    public static let longestNanoseconds: UInt64 = 2_000_000_000
    /// At most this many characters follow a paste (as `Terminal.readPaste` reads at most).
    static let limit = 1_000_000

    /// What follows a paste's end up to the first pause: `next` returns the next key, or `.none`
    /// after a pause.
    public static func read(_ next: () -> Terminal.Key) -> String {
        var out = "", n = 0
        while n < limit {
            switch next() {
            case .none: return out
            case .paste(let t): out += t; n += t.unicodeScalars.count
            case .char(let c):
                if c == "\r" || c == "\n" { out += "\n"; n += 1 }
                else if c == "\t" || c.unicodeScalars.first.map({ $0.value >= 0x20 && $0.value != 0x7F }) == true {
                    out += c; n += c.unicodeScalars.count
                }
            case .alt, .code, .wheel: break
            }
        }
        return out
    }
}
