//! Loopback ports: bound here and handed to a `ballast` process (so nothing can take
//! them in between), or picked free for processes that must be told a port (etcd).

use std::net::TcpListener;

/// A listening socket on a loopback port below the ephemeral range, for a process to
/// inherit. Binding it here, before the process starts, leaves no window in which
/// another process could take the port.
pub fn bind_port() -> TcpListener {
    loop {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", free_port())) {
            return listener;
        }
    }
}

/// The port of a bound socket.
pub fn port_of(listener: &TcpListener) -> u16 {
    listener.local_addr().expect("bound socket").port()
}

/// The lowest port handed out; below it sit well-known services.
const PORT_FLOOR: u16 = 10_000;

/// A port that was free a moment ago, below the kernel's ephemeral range: a port from
/// that range can be taken by any outgoing connection (a member dialing its peers)
/// between the pick and the listen. Ports are handed out in turn from a start that
/// differs per process, so no two nodes of one test process get the same one.
pub fn free_port() -> u16 {
    static NEXT: std::sync::Mutex<Option<u16>> = std::sync::Mutex::new(None);
    let ceiling = ephemeral_floor();
    if ceiling <= PORT_FLOOR + 1 {
        return ephemeral_port();
    }
    let span = ceiling - PORT_FLOOR;
    let mut next = NEXT.lock().expect("port counter lock poisoned");
    let mut port = next.unwrap_or_else(|| {
        let seed = std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        PORT_FLOOR + (seed % u32::from(span)) as u16
    });
    for _ in 0..span {
        let candidate = port;
        port = if port + 1 >= ceiling {
            PORT_FLOOR
        } else {
            port + 1
        };
        if TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            *next = Some(port);
            return candidate;
        }
    }
    ephemeral_port()
}

/// The first port of the kernel's ephemeral range (Linux's default when unreadable).
fn ephemeral_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn ephemeral_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}
