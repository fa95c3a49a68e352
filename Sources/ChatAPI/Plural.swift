/// "1 tile", "3 tiles": a count with its noun in the right number (regular plurals only).
public func counted(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
