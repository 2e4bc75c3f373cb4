//! A TCP fault proxy on loopback: it sits between a client and a real server and injects the
//! faults of a network or a dependency — latency, a blackhole, resets, half-open connections
//! (the request arrives, the answer never comes back), a bandwidth limit — switchable at run
//! time with [`FaultProxy::set`]. It counts the chunks it forwarded to the server, so a test can
//! tell how much load reached it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards both ways untouched.
    None,
    /// Delays every chunk, both ways.
    Latency(Duration),
    /// Forwards nothing either way and stops reading (the peers' buffers fill up, as on a dead
    /// path): calls hang. What was held back is delivered, late, once the fault clears.
    Blackhole,
    /// Resets every connection (RST) on its next chunk, and new ones at once.
    Reset,
    /// Forwards requests to the server but holds its answers back: the server does the work,
    /// the client does not hear back (until the fault clears).
    HalfOpen,
    /// Forwards both ways at most this many bytes a second.
    Bandwidth(u64),
}

/// The proxy; dropping it stops accepting (connections in flight end with their peers).
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    fault: watch::Sender<Fault>,
    upstream: SocketAddr,
    forwarded: AtomicU64,
    connections: AtomicU64,
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.borrow()
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `upstream`, forwarding untouched.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            fault: watch::Sender::new(Fault::None),
            upstream,
            forwarded: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(connection(client, s.clone()));
            }
        });
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// The proxy's address (give it to the client instead of the server's).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the fault, for new and open connections alike.
    pub fn set(&self, fault: Fault) {
        self.shared.fault.send_replace(fault);
    }

    /// Chunks forwarded to the server so far (a request is usually one chunk).
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Makes the socket's close send RST (linger 0; the close never blocks: nothing is unsent).
#[allow(deprecated)]
fn reset(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

async fn connection(client: TcpStream, s: Arc<Shared>) {
    if s.fault() == Fault::Reset {
        reset(&client);
        return;
    }
    let Ok(server) = TcpStream::connect(s.upstream).await else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let kill = tokio::sync::Notify::new();
    let both = async {
        tokio::join!(
            pump(cr, sw, &s, true, &kill),
            pump(sr, cw, &s, false, &kill)
        )
    };
    // On a reset, both directions are dropped at once: the socket closes with linger 0 (RST).
    tokio::select! {
        _ = both => {}
        () = kill.notified() => {}
    }
}

/// Whether `fault` stops traffic in this direction.
fn dead(fault: Fault, upward: bool) -> bool {
    fault == Fault::Blackhole || (fault == Fault::HalfOpen && !upward)
}

/// Copies `from` to `to` chunk by chunk, applying the fault of the moment to each chunk.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    s: &Shared,
    upward: bool,
    kill: &tokio::sync::Notify,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Hold the chunk (and stop reading) while the path is dead in this direction.
        let mut changes = s.fault.subscribe();
        let _ = changes.wait_for(|f| !dead(*f, upward)).await;
        match s.fault() {
            Fault::None | Fault::Blackhole | Fault::HalfOpen => {}
            Fault::Latency(d) => tokio::time::sleep(d).await,
            Fault::Reset => {
                reset(if upward { from.as_ref() } else { to.as_ref() });
                kill.notify_one();
                return;
            }
            Fault::Bandwidth(bytes_per_sec) => {
                let mut sent = 0;
                while sent < n {
                    let slice = ((bytes_per_sec / 10).max(1) as usize).min(n - sent);
                    if to.write_all(&buf[sent..sent + slice]).await.is_err() {
                        return;
                    }
                    sent += slice;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if upward {
                    s.forwarded.fetch_add(1, Ordering::SeqCst);
                }
                continue;
            }
        }
        if upward {
            s.forwarded.fetch_add(1, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
