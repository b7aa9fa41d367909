import CNcurses
import ConsoleUI
import OpsCore
#if canImport(Glibc)
import Glibc
#endif

/// Saved terminal modes, restored by the crash handler (async-signal-safe path).
nonisolated(unsafe) var savedTermios = termios()
nonisolated(unsafe) var terminalActive: Int32 = 0

private func restoreTerminalFromSignal(_ sig: Int32) {
    // A crash must not leave the demo's private redis-server behind.
    let demo = demoServerPID.load(ordering: .relaxed)
    if demo > 0 { kill(demo, SIGKILL) }
    if terminalActive != 0 {
        // Leave the alternate screen, show the cursor, reset attributes; restore modes.
        let seq: StaticString = "\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l\r\n"
        _ = write(1, seq.utf8Start, seq.utf8CodeUnitCount)
        tcsetattr(0, TCSANOW, &savedTermios)
    }
    signal(sig, SIG_DFL)
    raise(sig)
}

/// The ncurses backend: the only importer of CNcurses. Draws a CellGrid, changed cells only.
final class Terminal: TerminalBackend {
    private var previous: CellGrid?
    private var attrs: [Role: (attr_t, Int16)] = [:]
    private(set) var hasColor = false
    private var screen: OpaquePointer?

    private let colour: Bool
    var inputFD: Int32 { 0 }

    init(colour: Bool = true) throws {
        self.colour = colour
        prepareLocale()
        setlocale(LC_ALL, "")
        prepareLocale()
        tcgetattr(0, &savedTermios)
        setenv("ESCDELAY", "25", 0)
        guard let out = ro_fdopen(1, "w"), let inp = ro_fdopen(0, "r") else { throw TerminalError("cannot open the terminal") }
        guard let scr = newterm(nil, out, inp) else { throw TerminalError("cannot start the terminal (TERM=\(String(cString: getenv("TERM") ?? strdup("")!)))") }
        screen = scr
        terminalActive = 1
        for sig in [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE] { signal(sig, restoreTerminalFromSignal) }
        cbreak()
        // Flow control off: Ctrl-S must not freeze the console (and Ctrl-Q is just a key).
        var t = termios()
        if tcgetattr(0, &t) == 0 {
            t.c_iflag &= ~tcflag_t(IXON | IXOFF)
            tcsetattr(0, TCSANOW, &t)
            def_prog_mode()
        }
        noecho()
        nonl()
        keypad(ro_stdscr(), true)
        nodelay(ro_stdscr(), true)
        curs_set(0)
        setupColors()
    }

    struct TerminalError: Error, CustomStringConvertible { let description: String; init(_ d: String) { description = d } }

    var size: (width: Int, height: Int) { (Int(getmaxx(ro_stdscr())), Int(getmaxy(ro_stdscr()))) }

    private func setupColors() {
        let bold = ro_A_BOLD(), rev = ro_A_REVERSE(), dim = ro_A_DIM(), ul = ro_A_UNDERLINE(), none = ro_A_NORMAL()
        // Without colour: attributes only.
        let mono: [Role: attr_t] = [
            .normal: none, .dim: dim, .header: rev, .headerBadge: rev | bold, .tabActive: rev | bold, .tabInactive: none,
            .footerKey: rev | bold, .footerText: none, .selected: rev, .escape: ul, .gap: bold | rev, .note: dim,
            .warning: bold, .error: bold | ul, .info: none, .ok: bold, .title: bold, .columnHeader: ul | bold,
            .jsonKey: bold, .jsonString: none, .jsonNumber: none, .jsonLiteral: none, .prompt: bold, .barFull: bold,
            .barEmpty: dim, .readOnly: rev | bold, .danger: bold | ul,
        ]
        for r in Role.allCases { attrs[r] = (mono[r] ?? none, 0) }
        guard colour, has_colors() else { return }
        start_color()
        use_default_colors()
        hasColor = true
        // Foregrounds on the terminal's own background: readable on dark and light themes.
        let spec: [(Role, Int16, Int16, attr_t)] = [
            (.escape, Int16(COLOR_MAGENTA), -1, bold),
            (.gap, Int16(COLOR_BLACK), Int16(COLOR_YELLOW), bold),
            (.note, Int16(COLOR_CYAN), -1, none),
            (.warning, Int16(COLOR_YELLOW), -1, bold),
            (.error, Int16(COLOR_RED), -1, bold),
            (.info, Int16(COLOR_CYAN), -1, none),
            (.ok, Int16(COLOR_GREEN), -1, bold),
            (.headerBadge, Int16(COLOR_WHITE), Int16(COLOR_BLUE), bold),
            (.jsonKey, Int16(COLOR_BLUE), -1, bold),
            (.jsonString, Int16(COLOR_GREEN), -1, none),
            (.jsonNumber, Int16(COLOR_MAGENTA), -1, none),
            (.jsonLiteral, Int16(COLOR_YELLOW), -1, none),
            (.prompt, Int16(COLOR_CYAN), -1, bold),
            (.barFull, Int16(COLOR_RED), -1, bold),
            (.readOnly, Int16(COLOR_WHITE), Int16(COLOR_RED), bold),
            (.danger, Int16(COLOR_RED), -1, bold),
        ]
        var pair: Int16 = 1
        for (role, fg, bg, a) in spec {
            init_pair(pair, fg, bg)
            attrs[role] = (a, pair)
            pair += 1
        }
    }

    /// Draws the grid: only the cells that differ from what is on the screen.
    func draw(_ g: CellGrid) {
        let full = previous == nil || previous!.width != g.width || previous!.height != g.height
        if full { erase() }
        var wbuf = [wchar_t](repeating: 0, count: 8)
        for y in 0..<g.height {
            for x in 0..<g.width {
                let c = g[x, y]
                if !full, let p = previous, p[x, y] == c { continue }
                if c.text.isEmpty { continue }  // right half of a wide character
                var (a, pair) = attrs[c.role] ?? (ro_A_NORMAL(), 0)
                // The selected row: reverse video over the cell's own colour, so a state
                // colour (BLOCKED, STUCK) stays visible on it.
                if c.selected { a ^= ro_A_REVERSE() }
                var n = 0
                for u in c.text.unicodeScalars where n < 5 { wbuf[n] = wchar_t(bitPattern: u.value); n += 1 }
                wbuf[n] = 0
                // The bottom-right cell cannot be written without scrolling on some terminals.
                if y == g.height - 1 && x == g.width - 1 { continue }
                _ = ro_put_cell(Int32(y), Int32(x), wbuf, a, pair)
            }
        }
        previous = g
        refresh()
    }

    func invalidate() { previous = nil }

    /// The next key, if one is waiting.
    func readKey() -> KeyInput? {
        var ch: wint_t = 0
        let r = get_wch(&ch)
        if r == ERR { return nil }
        if r == KEY_CODE_YES {
            switch Int32(ch) {
            case KEY_RESIZE: return .resize
            case KEY_UP: return .key(.up)
            case KEY_DOWN: return .key(.down)
            case KEY_LEFT: return .key(.left)
            case KEY_RIGHT: return .key(.right)
            case KEY_PPAGE: return .key(.pageUp)
            case KEY_NPAGE: return .key(.pageDown)
            case KEY_HOME: return .key(.home)
            case KEY_END: return .key(.end)
            case KEY_BACKSPACE: return .key(.backspace)
            case KEY_DC: return .key(.delete)
            case KEY_BTAB: return .key(.backTab)
            case KEY_ENTER: return .key(.enter)
            default: return .ignored
            }
        }
        switch ch {
        case 9: return .key(.tab)
        case 10, 13: return .key(.enter)
        case 27: return .key(.escape)
        case 127, 8: return .key(.backspace)
        case 1...26: return .key(.ctrl(Character(Unicode.Scalar(UInt8(ch) + 96))))
        default:
            guard let u = Unicode.Scalar(UInt32(ch)), ch >= 32 else { return .ignored }
            return .key(.char(Character(u)))
        }
    }

    func shutdown() {
        if terminalActive == 0 { return }
        endwin()
        if let s = screen { delscreen(s) }
        screen = nil
        terminalActive = 0
        tcsetattr(0, TCSANOW, &savedTermios)
        for sig in [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE] { signal(sig, SIG_DFL) }
    }

    deinit { shutdown() }
}
