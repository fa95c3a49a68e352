import Foundation

/// Where the app keeps a file of its state: `$OVERRIDE` when set, else
/// `$XDG_STATE_HOME/internvl-chat/NAME` (default `~/.local/state/internvl-chat/NAME`).
enum StateFile {
    static func path(_ name: String, override variable: String, environment: [String: String]) -> String {
        if let p = environment[variable], !p.isEmpty { return p }
        let base = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".local/state")
        return (base as NSString).appendingPathComponent("internvl-chat/" + name)
    }
}
