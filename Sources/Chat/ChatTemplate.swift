/// The `internlm2-chat` conversation template (internvl_chat/internvl/conversation.py,
/// SeparatorStyle.MPT), which the official chat() fills every turn.
public struct ChatTemplate: Sendable {
    public static let defaultSystemMessage =
        "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
    public static let separator = "<|im_end|>"

    public var systemMessage: String

    public init(systemMessage: String = ChatTemplate.defaultSystemMessage) {
        self.systemMessage = systemMessage
    }

    /// The prompt text for `question` after `history` of (question, answer) pairs, ending where
    /// the assistant's answer starts. As in conversation.py, an empty message adds its role
    /// header without a separator.
    public func prompt(history: [(String, String)], question: String) -> String {
        var s = "<|im_start|>system\n" + systemMessage + Self.separator
        func add(_ role: String, _ message: String?) {
            if let m = message, !m.isEmpty { s += role + m + Self.separator } else { s += role }
        }
        for (q, a) in history {
            add("<|im_start|>user\n", q)
            add("<|im_start|>assistant\n", a)
        }
        add("<|im_start|>user\n", question)
        add("<|im_start|>assistant\n", nil)
        return s
    }
}
