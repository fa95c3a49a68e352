/// Named rectangles for a terminal size; nil when the terminal is too small to be useful.
public struct Layout: Equatable, Sendable {
    public static let minWidth = 40, minHeight = 10

    public var conversation: Rect
    public var images: Rect          // a side panel when wide, else one line above the input
    public var input: Rect
    public var status: Rect

    public init?(width: Int, height: Int) {
        guard width >= Self.minWidth, height >= Self.minHeight else { return nil }
        status = Rect(x: 0, y: height - 1, width: width, height: 1)
        input = Rect(x: 0, y: height - 4, width: width, height: 3)
        if width >= 100 {
            let panel = min(36, width / 3)
            images = Rect(x: width - panel, y: 0, width: panel, height: height - 4)
            conversation = Rect(x: 0, y: 0, width: width - panel - 1, height: height - 4)
        } else {
            images = Rect(x: 0, y: height - 5, width: width, height: 1)
            conversation = Rect(x: 0, y: 0, width: width, height: height - 5)
        }
    }
}
