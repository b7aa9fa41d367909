import Foundation
import RedisProtocol
import OpsCore

/// The Doctor overlay (`:doctor`): the same walk as `redis-ops doctor` (dns, tcp, ssh, tls,
/// auth, acl, latency, cluster, pubsub), each step shown as it is found, with its hint.
enum DoctorModule {
    static func open(_ s: inout AppState) -> [Effect] {
        if let d = s.doctor, d.running { return [] }
        s.doctor = DoctorUI()
        return [.runDoctor]
    }

    static func key(_ s: inout AppState, _ k: Key) -> [Effect] {
        guard var d = s.doctor else { return [] }
        switch k {
        case .escape, .char("q"), .enter: s.doctor = nil; return []
        case .down, .char("j"): d.scroll += 1
        case .up, .char("k"): d.scroll = max(0, d.scroll - 1)
        case .pageDown: d.scroll += max(1, s.height / 2)
        case .pageUp: d.scroll = max(0, d.scroll - max(1, s.height / 2))
        case .char("R"):
            if d.running { return [] }
            s.doctor = DoctorUI()
            return [.runDoctor]
        default: break
        }
        s.doctor = d
        return []
    }

    /// The lines of the walk at `width` columns: `ok   tls      detail…`, wrapped under the
    /// detail column, and a failure's hint under it.
    static func lines(_ d: DoctorUI, width: Int) -> [[TextRun]] {
        var out: [[TextRun]] = []
        let indent = 14
        let w = max(10, width - indent)
        for st in d.steps {
            let (label, role): (String, Role) = st.status == .ok ? ("ok", .ok) : st.status == .fail ? ("FAIL", st.needed ? .error : .warning) : ("skip", .dim)
            // Details hold the server's words (errors): escaped.
            let detail = wrapWords(Escaper.string(Bytes(utf8: st.detail)), width: w)
            for (i, l) in detail.enumerated() {
                if i == 0 {
                    out.append([TextRun(label.padding(toLength: 5, withPad: " ", startingAt: 0), role: role),
                                TextRun(st.step.padding(toLength: 9, withPad: " ", startingAt: 0), role: .title),
                                TextRun(l, role: st.status == .skip ? .dim : .normal)])
                } else {
                    out.append([TextRun(String(repeating: " ", count: indent)), TextRun(l, role: st.status == .skip ? .dim : .normal)])
                }
            }
            if st.status == .fail, let h = st.hint {
                for (i, l) in wrapWords(Escaper.string(Bytes(utf8: h)), width: w - 2).enumerated() {
                    out.append([TextRun(String(repeating: " ", count: indent)), TextRun((i == 0 ? "→ " : "  ") + l, role: .info)])
                }
            }
        }
        return out
    }

    static func render(_ g: inout CellGrid, _ s: AppState, _ d: DoctorUI) {
        let verdict: String
        if d.running { verdict = "checking… (\(d.steps.count) of 9 steps)" }
        else if Doctor.healthy(d.steps) { verdict = "every step the console needs is ok" }
        else { verdict = "the console cannot work here: " + d.steps.filter { $0.status == .fail && $0.needed }.map(\.step).joined(separator: ", ") + " failed" }
        let inner = Modal.frame(&g, title: "Doctor · \(verdict) · R again · Esc closes", width: g.width, height: g.height - 2)
        guard inner.h > 1 else { return }
        TextPane.draw(&g, top: inner.y, height: inner.h, title: " the path to \(s.session.endpoint), step by step", lines: lines(d, width: inner.w),
                      scroll: d.scroll, x: inner.x, width: inner.w)
    }
}
