//! A TCP fault proxy on loopback: it sits between a client and a real server and injects the
//! faults of a network or a dependency — latency, a blackhole, resets, half-open connections
//! (the request arrives, the answer never comes back), a bandwidth limit — switchable at run
//! time with [`FaultProxy::set`]. It counts the chunks it forwarded to the server, so a test can
//! tell how much load reached it, and, when the traffic is Redis's protocol (RESP), the commands.

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
    commands: AtomicU64,
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
            commands: AtomicU64::new(0),
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

    /// Redis commands forwarded to the server so far, whole ones only (each command of a
    /// pipeline counts; meaningless unless the traffic is RESP).
    pub fn commands(&self) -> u64 {
        self.shared.commands.load(Ordering::SeqCst)
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
    let mut resp = Commands::default();
    let mut forwarded = |chunk: &[u8]| {
        if upward {
            s.forwarded.fetch_add(1, Ordering::SeqCst);
            s.commands.fetch_add(resp.feed(chunk), Ordering::SeqCst);
        }
    };
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
                forwarded(&buf[..n]);
                continue;
            }
        }
        forwarded(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Counts the commands in a client's RESP stream, fed chunk by chunk: each command is an array
/// (`*<n>\r\n`) of `n` bulk strings (`$<len>\r\n<len bytes>\r\n`), the form every client
/// library sends. Anything else stops the count for that connection.
#[derive(Debug, Default)]
struct Commands {
    /// The line read so far (a header split across chunks).
    line: Vec<u8>,
    /// Bulk strings left in the current command.
    items: u64,
    /// Bytes of the current bulk string (and its CRLF) still to skip.
    skip: u64,
    broken: bool,
}

impl Commands {
    /// Reads `chunk`; returns the commands it completed.
    fn feed(&mut self, mut chunk: &[u8]) -> u64 {
        let mut done = 0;
        while !chunk.is_empty() && !self.broken {
            if self.skip > 0 {
                let n = self.skip.min(chunk.len() as u64);
                self.skip -= n;
                chunk = &chunk[n as usize..];
                if self.skip == 0 {
                    self.items -= 1;
                    done += u64::from(self.items == 0);
                }
                continue;
            }
            let Some(end) = chunk.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(chunk);
                return done;
            };
            self.line.extend_from_slice(&chunk[..=end]);
            chunk = &chunk[end + 1..];
            let line = std::mem::take(&mut self.line);
            let number = std::str::from_utf8(&line[1..line.len().saturating_sub(2).max(1)])
                .ok()
                .and_then(|n| n.parse::<u64>().ok());
            match (line.first(), number, self.items) {
                (Some(b'*'), Some(0), 0) => done += 1,
                (Some(b'*'), Some(n), 0) => self.items = n,
                (Some(b'$'), Some(len), 1..) => self.skip = len + 2,
                _ => self.broken = true,
            }
        }
        done
    }
}

#[test]
fn commands_are_counted_across_chunks() {
    let stream = b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\nb!\r\n";
    for split in 0..stream.len() {
        let mut c = Commands::default();
        let (a, b) = stream.split_at(split);
        assert_eq!(c.feed(a) + c.feed(b), 2, "split at {split}");
    }
    let mut http = Commands::default();
    assert_eq!(http.feed(b"GET / HTTP/1.1\r\n*1\r\n$4\r\nPING\r\n"), 0);
}
