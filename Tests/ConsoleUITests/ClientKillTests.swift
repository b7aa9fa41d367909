import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisProtocol

/// The Server view's client list: biggest output buffer first, k disconnects the selected
/// client after a question that names it, audited; refused in read-only mode.
final class ClientKillTests: XCTestCase {
    func reading(_ list: String, at t: Double = t0) -> AppEvent {
        let ov = ServerOverview(info: ServerInfo(text: serverInfo(1000, 100, 0, 1_500_000)), infoError: nil, maxmemoryPolicy: "allkeys-lru", maxmemoryPolicySource: "INFO")
        var r = ServerReading(sample: ServerSample(at: t, overview: ov))
        r.clients = ClientSummary(clientList: list)
        return .server(r)
    }
    let list = "id=3 addr=10.0.0.9:5000 name=api-1 age=100 idle=0 cmd=get omem=0 sub=0 psub=0\n"
        + "id=4 addr=10.0.0.9:5001 name= age=7200 idle=7000 cmd=blpop omem=0 sub=0 psub=0\n"
        + "id=5 addr=10.0.0.10:6000 name=stuck\u{1B}[2J age=50 idle=1 cmd=psubscribe omem=9437184 sub=0 psub=1\n"

    func testTheStuckSubscriberIsFirstAndKIsAskedFirst() {
        var s = makeState(120, 40)
        _ = Reducer.reduce(&s, .key(.char("5")), tail: ChannelTail())
        _ = Reducer.reduce(&s, reading(list), tail: ChannelTail())
        let ids = s.server.reading!.clients!.clients.map(\.id)
        XCTAssertEqual(ids, [5, 4, 3], "biggest output buffer first, then the longest idle")
        let g = Screen.render(s, tail: ChannelTail(), timeZone: utc)
        assertSnapshot(g, named: "server-clients")
        XCTAssertTrue(g.text.contains("stuck\\e[2J"), "escaped")
        send(&s, [.down], ChannelTail())
        XCTAssertEqual(send(&s, [.char("k")], ChannelTail()), [])
        XCTAssertEqual(s.confirm?.subject, "id 4 · 10.0.0.9:5001 · (no name)")
        XCTAssertTrue(s.confirm!.detail.contains("idle 1h56m") && s.confirm!.detail.contains("last command blpop"), s.confirm!.detail)
        guard case .execute(_, let plan)? = send(&s, [.char("y")], ChannelTail()).first, case .kill(let ref) = plan.request.action else { return XCTFail() }
        XCTAssertEqual(ref.id, 4)
        XCTAssertEqual(ref.address, "10.0.0.9:5001")
        var r = WriteReport(action: plan.request.action, matched: 1)
        r.deleted = 1
        _ = WriteFlowModule.singleWriteDone(r, &s)
        XCTAssertEqual(s.server.reading!.clients!.clients.map(\.id), [5, 3], "gone at once")
        // A new reading keeps the selection on the same client.
        send(&s, [.down], ChannelTail())
        XCTAssertEqual(s.server.selectedClient, 3)
        _ = Reducer.reduce(&s, reading("id=9 addr=1.1.1.1:1 name=new age=1 idle=0 cmd=get omem=99999999\n" + list, at: t0 + 2), tail: ChannelTail())
        XCTAssertEqual(s.server.reading!.clients!.clients[s.server.clientCursor].id, 3)
        // Read-only: refused.
        var ro = makeState(120, 40)
        ro.session.readOnly = true
        _ = Reducer.reduce(&ro, .key(.char("5")), tail: ChannelTail())
        _ = Reducer.reduce(&ro, reading(list), tail: ChannelTail())
        XCTAssertEqual(send(&ro, [.char("k"), .char("y")], ChannelTail()), [])
        XCTAssertNil(ro.confirm)
    }
}
