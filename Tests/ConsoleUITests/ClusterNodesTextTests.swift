import XCTest
@testable import ConsoleUI
import OpsCore

/// The node table of `redis-ops info` in cluster mode: what CLUSTER NODES says is escaped.
final class ClusterNodesTextTests: XCTestCase {
    func testPrimariesThenTheirReplicasAndHostileTextEscaped() {
        let text = """
        a1 10.0.0.1:6379@16379,node-a.example\u{1B}]0;pwned\u{07} myself,master - 0 0 1 connected 0-8191
        b2 10.0.0.2:6379@16379,node-b.example master,fail\u{1B}[2J - 0 0 2 connected 8192-16383
        c3 10.0.0.3:6379@16379,node-c.example slave a1 0 0 1 connected
        """
        let nodes = ClusterNodes.parse(text)
        XCTAssertEqual(nodes.map(\.id), ["a1", "c3", "b2"], "each primary followed by its replicas")
        let lines = ClusterNodesText.lines(nodes)
        XCTAssertEqual(lines.count, 4)
        for l in lines { XCTAssertFalse(l.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, l) }
        XCTAssertTrue(lines[1].hasPrefix(#"node-a.example\e]0;pwn"#), lines[1])
        XCTAssertTrue(lines[1].contains("primary") && lines[1].contains("8192"), lines[1])
        XCTAssertTrue(lines[2].contains("replica") && lines[2].contains("10.0.0.1:6379 · lag"), lines[2])
        XCTAssertTrue(lines[3].contains(#"[fail\e[2J]"#), lines[3])
    }
}
