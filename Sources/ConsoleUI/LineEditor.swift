/// The one line editor of every prompt: Left/Right, Home/End (Ctrl-A/Ctrl-E), Backspace,
/// Delete, Ctrl-W (the word before the cursor), Ctrl-U (everything before it), Ctrl-K
/// (everything after it). Offered text is selected: typing replaces it, Backspace clears
/// it, the movement keys keep it and start editing it.
enum LineEditor {
    /// Applies one key; false when the key is not an editing key.
    static func edit(_ p: inout Prompt, _ k: Key) -> Bool {
        var chars = Array(p.text)
        var c = max(0, min(p.cursor, chars.count))
        let wasSuggested = p.suggested
        switch k {
        case .char(let ch):
            if wasSuggested { chars = []; c = 0 }
            chars.insert(ch, at: c); c += 1
        case .backspace:
            if wasSuggested { chars = []; c = 0 }
            else if c > 0 { chars.remove(at: c - 1); c -= 1 }
        case .delete:
            if wasSuggested { chars = []; c = 0 }
            else if c < chars.count { chars.remove(at: c) }
        case .left: c = wasSuggested ? 0 : max(0, c - 1)
        case .right: c = wasSuggested ? chars.count : min(chars.count, c + 1)
        case .home, .ctrl("a"): c = 0
        case .end, .ctrl("e"): c = chars.count
        case .ctrl("w"):
            if wasSuggested { chars = []; c = 0; break }
            var i = c
            while i > 0 && chars[i - 1] == " " { i -= 1 }
            while i > 0 && chars[i - 1] != " " { i -= 1 }
            chars.removeSubrange(i..<c); c = i
        case .ctrl("u"):
            if wasSuggested { chars = []; c = 0; break }
            chars.removeSubrange(0..<c); c = 0
        case .ctrl("k"):
            if wasSuggested { chars = []; c = 0; break }
            chars.removeSubrange(c..<chars.count)
        default:
            return false
        }
        p.suggested = false
        p.text = String(chars)
        p.cursor = c
        return true
    }

    /// What the prompt line shows at `width` columns after the label: a window of the text
    /// that keeps the cursor in view (`…` where text is hidden), and the cursor's column.
    static func view(_ p: Prompt, width: Int) -> (text: String, cursorColumn: Int) {
        let chars = Array(p.text)
        let c = max(0, min(p.cursor, chars.count))
        let room = max(4, width - 1)
        let total = chars.reduce(0) { $0 + displayWidth(String($1)) }
        if total < room { return (p.text, chars[..<c].reduce(0) { $0 + displayWidth(String($1)) }) }
        // Start so that the cursor sits within the window, with some text after it when there is.
        var start = c
        var w = 0
        let after = min(room / 3, chars[c...].reduce(0) { $0 + displayWidth(String($1)) })
        while start > 0 && w + displayWidth(String(chars[start - 1])) <= room - 2 - after { start -= 1; w += displayWidth(String(chars[start])) }
        var out = start > 0 ? "…" : ""
        var col = start > 0 ? 1 : 0
        var cursorCol = col
        var i = start
        while i < chars.count {
            let cw = displayWidth(String(chars[i]))
            if col + cw > room - (i + 1 < chars.count ? 1 : 0) { out += "…"; break }
            if i == c { cursorCol = col }
            out.append(chars[i]); col += cw; i += 1
        }
        if c >= i { cursorCol = col }
        return (out, cursorCol)
    }
}
