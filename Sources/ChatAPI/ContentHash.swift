import Crypto
import Foundation

/// How images are named by content (in the session and in saved conversations).
public enum ContentHash {
    /// SHA-256, lowercase hex.
    public static func sha256(_ bytes: some DataProtocol) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}
