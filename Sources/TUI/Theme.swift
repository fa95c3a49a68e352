import FileInput
import Foundation

/// Colours and attributes per semantic role. Files (themes/*.json, or the user's in
/// $XDG_CONFIG_HOME/internvl-chat/themes/) name roles, never screen positions:
/// `{"name": "dark", "roles": {"user": {"fg": "cyan", "bold": true}, ...}}`.
public struct Theme: Codable, Equatable, Sendable {
    public struct Style: Codable, Equatable, Sendable {
        public var fg: String?          // black red green yellow blue magenta cyan white, or absent: default
        public var bold: Bool?
        public var dim: Bool?
        public var reverse: Bool?
        public var underline: Bool?
        public init(fg: String? = nil, bold: Bool? = nil, dim: Bool? = nil, reverse: Bool? = nil, underline: Bool? = nil) {
            self.fg = fg; self.bold = bold; self.dim = dim; self.reverse = reverse; self.underline = underline
        }
    }

    public var name: String
    public var roles: [String: Style]

    public static let colourNames = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]

    /// A role the theme does not name is plain, except emphasis (underlined) and strong (bold).
    public func style(_ r: Role) -> Style {
        if let s = roles[r.rawValue] { return s }
        switch r {
        case .emphasis: return Style(underline: true)
        case .strong: return Style(bold: true)
        default: return Style()
        }
    }

    public static let dark = Theme(name: "dark", roles: [
        "text": Style(), "dim": Style(dim: true), "user": Style(fg: "cyan", bold: true),
        "assistant": Style(fg: "green", bold: true), "error": Style(fg: "red", bold: true),
        "status": Style(reverse: true), "border": Style(dim: true), "title": Style(bold: true),
        "input": Style(), "selection": Style(reverse: true), "phase": Style(fg: "yellow"), "code": Style(fg: "magenta"),
        "emphasis": Style(underline: true), "strong": Style(bold: true),
    ])
    public static let light = Theme(name: "light", roles: [
        "text": Style(), "dim": Style(fg: "blue"), "user": Style(fg: "blue", bold: true),
        "assistant": Style(fg: "magenta", bold: true), "error": Style(fg: "red", bold: true),
        "status": Style(reverse: true), "border": Style(fg: "blue"), "title": Style(bold: true),
        "input": Style(), "selection": Style(reverse: true), "phase": Style(fg: "red"), "code": Style(fg: "green"),
        "emphasis": Style(underline: true), "strong": Style(bold: true),
    ])
    public static let highContrast = Theme(name: "high-contrast", roles: [
        "text": Style(fg: "white", bold: true), "dim": Style(fg: "white"), "user": Style(fg: "yellow", bold: true, underline: true),
        "assistant": Style(fg: "cyan", bold: true), "error": Style(fg: "red", bold: true, reverse: true),
        "status": Style(bold: true, reverse: true), "border": Style(fg: "white", bold: true), "title": Style(bold: true, underline: true),
        "input": Style(fg: "white", bold: true), "selection": Style(reverse: true), "phase": Style(fg: "yellow", bold: true),
        "code": Style(fg: "green", bold: true), "emphasis": Style(fg: "white", underline: true), "strong": Style(fg: "yellow", bold: true),
    ])
    public static let builtIn = [dark, light, highContrast]

    public enum LoadError: LocalizedError {
        case notFound(String, searched: [String])
        case invalid(String, reason: String)
        public var errorDescription: String? {
            switch self {
            case .notFound(let n, let s):
                return "No theme \(n): built in are dark, light and high-contrast; also looked in \(s.joined(separator: ", "))."
            case .invalid(let p, let r): return "\(p) is not a valid theme: \(r)."
            }
        }
    }

    /// A built-in name, a file path, or NAME.json in the user's theme folder.
    public static func load(_ nameOrPath: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Theme {
        if let t = builtIn.first(where: { $0.name == nameOrPath }), !nameOrPath.contains("/") {
            let user = userFolder(environment) + "/\(nameOrPath).json"
            return FileManager.default.fileExists(atPath: user) ? try read(user) : t
        }
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(".json") { return try read(nameOrPath) }
        let user = userFolder(environment) + "/\(nameOrPath).json"
        guard FileManager.default.fileExists(atPath: user) else { throw LoadError.notFound(nameOrPath, searched: [user]) }
        return try read(user)
    }

    static func userFolder(_ env: [String: String]) -> String {
        let base = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ((env["HOME"] ?? NSHomeDirectory()) + "/.config")
        return base + "/internvl-chat/themes"
    }

    /// A theme is a few hundred bytes; a larger file is not one.
    public static let maxFileBytes = 1 << 20

    public static func read(_ path: String) throws -> Theme {
        let data: Data
        do { data = Data(try FileInput.read(path, limit: maxFileBytes)) } catch {
            if error == .missing { throw LoadError.notFound(path, searched: [path]) }
            throw LoadError.invalid(path, reason: error.reason)
        }
        let t: Theme
        do { t = try JSONDecoder().decode(Theme.self, from: data) } catch {
            throw LoadError.invalid(path, reason: "expected {\"name\": ..., \"roles\": {ROLE: {\"fg\": COLOUR, \"bold\": true, ...}}}")
        }
        for (role, style) in t.roles {
            guard Role(rawValue: role) != nil else {
                throw LoadError.invalid(path, reason: "unknown role \(role) (roles: \(Role.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if let fg = style.fg, !colourNames.contains(fg) {
                throw LoadError.invalid(path, reason: "role \(role): unknown colour \(fg) (\(colourNames.joined(separator: ", ")))")
            }
        }
        return t
    }
}
