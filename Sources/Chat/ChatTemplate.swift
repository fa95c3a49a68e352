import Tokenizer

/// A conversation template as data: how the system message, each user question and each answer
/// are framed in the prompt, and which tokens end an answer. config.json's `template` names one
/// of `ChatTemplate.all`; a new template is a new entry there.
public struct ChatTemplate: Sendable, Equatable {
    public let name: String
    public var systemMessage: String
    /// Role headers that open the system message, a user question and an answer.
    public let systemHeader: String
    public let userHeader: String
    public let assistantHeader: String
    /// Closes every non-empty message.
    public let separator: String
    /// Special tokens that end an answer (besides the tokenizer's EOS).
    public let stopTokens: [String]

    /// `internlm2-chat` (internvl_chat/internvl/conversation.py, SeparatorStyle.MPT), which the
    /// official chat() fills every turn.
    public static let internLM2Chat = ChatTemplate(
        name: "internlm2-chat",
        systemMessage: "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。",
        systemHeader: "<|im_start|>system\n", userHeader: "<|im_start|>user\n", assistantHeader: "<|im_start|>assistant\n",
        separator: "<|im_end|>", stopTokens: ["<|im_end|>"])

    /// `Hermes-2` (InternVL2-1B, -2B, -4B's Qwen2 and InternLM2 checkpoints): the same ChatML
    /// framing and system message as `internlm2-chat`; chat() stops on `sep.strip()`.
    public static let hermes2 = ChatTemplate(
        name: "Hermes-2",
        systemMessage: internLM2Chat.systemMessage,
        systemHeader: "<|im_start|>system\n", userHeader: "<|im_start|>user\n", assistantHeader: "<|im_start|>assistant\n",
        separator: "<|im_end|>", stopTokens: ["<|im_end|>"])

    /// `internvl2_5` (InternVL2.5): ChatML with a newline after every `<|im_end|>` and the
    /// InternVL2.5 system message.
    public static let internVL25 = ChatTemplate(
        name: "internvl2_5",
        systemMessage: "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。",
        systemHeader: "<|im_start|>system\n", userHeader: "<|im_start|>user\n", assistantHeader: "<|im_start|>assistant\n",
        separator: "<|im_end|>\n", stopTokens: ["<|im_end|>"])

    /// `phi3-chat` (Mini-InternVL-Chat-4B-V1-5, InternVL2-4B).
    public static let phi3Chat = ChatTemplate(
        name: "phi3-chat",
        systemMessage: internLM2Chat.systemMessage,
        systemHeader: "<|system|>\n", userHeader: "<|user|>\n", assistantHeader: "<|assistant|>\n",
        separator: "<|end|>", stopTokens: ["<|end|>"])

    /// Every template the engine knows.
    public static let all = [internLM2Chat, hermes2, internVL25, phi3Chat]

    /// The template config.json names; an unknown name is refused by name.
    public static func named(_ name: String) throws -> ChatTemplate {
        guard let t = all.first(where: { $0.name == name }) else {
            throw ChatError.unknownTemplate(name, known: all.map(\.name))
        }
        return t
    }

    /// This template with another system message.
    public func with(systemMessage: String) -> ChatTemplate {
        var t = self
        t.systemMessage = systemMessage
        return t
    }

    /// A message of a conversation as the template frames it.
    public enum Message: Sendable, Equatable {
        case system(String), user(String), assistant(String)
    }

    /// The prompt text for `question` after `history` of (question, answer) pairs, ending where
    /// the assistant's answer starts.
    public func prompt(history: [(String, String)], question: String) -> String {
        prompt(messages: history.flatMap { [Message.user($0.0), .assistant($0.1)] } + [.user(question)])
    }

    /// The prompt text for `messages` in any order, ending where a new answer starts: the system
    /// message, then each message under its role's header (a system message after the first
    /// under the system header, as chat templates render one), then the assistant's header. As
    /// in conversation.py, an empty message adds its role header without a separator.
    public func prompt(messages: [Message]) -> String {
        var s = systemHeader + systemMessage + separator
        func add(_ role: String, _ message: String?) {
            if let m = message, !m.isEmpty { s += role + m + separator } else { s += role }
        }
        for m in messages {
            switch m {
            case .system(let t): add(systemHeader, t)
            case .user(let t): add(userHeader, t)
            case .assistant(let t): add(assistantHeader, t)
            }
        }
        add(assistantHeader, nil)
        return s
    }

    /// The first of `stopTokens` that `tokenizer` does not define, if any.
    public func missingStopToken(in tokenizer: any Tokenizer) -> String? {
        stopTokens.first { tokenizer.tokenID($0) == nil }
    }

    /// The ids that end an answer with `tokenizer`: its EOS and the `stopTokens` it defines.
    public func stopIDs(_ tokenizer: any Tokenizer) -> Set<Int32> {
        Set(stopTokens.compactMap(tokenizer.tokenID)).union([tokenizer.eosID])
    }
}
