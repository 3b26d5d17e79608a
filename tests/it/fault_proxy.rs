//! A TCP fault proxy of the tests' own (a small toxiproxy): it listens on a random loopback port,
//! relays every connection to one target (the Monday or NPD simulator, PostgreSQL), and applies
//! the faults switched on at that moment:
//!
//! - latency added before each chunk, per direction (`upstream` = towards the target);
//! - `reset_all`: every open connection is reset (RST, as a crashed peer or a cut cable);
//! - `cut_answer_after`: per connection, the target's answer is cut after N bytes (then reset);
//! - `down`: new connections are reset as soon as they are accepted (the target is gone);
//! - `slow_close`: when the target closes, the client side is closed this much later;
//! - `answer_bytes_per_s`: the target's answer is trickled at this rate (toxiproxy `bandwidth`);
//! - `reset_after_request`: once the request went up, the client side is reset while the target
//!   side stays open, so the target still executes it (a reset in flight).
//!
//! `only_requests_containing` aims the faults: when it is not empty, a connection is healthy
//! until a request containing one of the strings goes up it (a GraphQL `mutation`, a `PATCH`),
//! and the faults apply from then on to that connection only. `faulted()` counts the
//! connections a fault was aimed at.
//!
//! tokio only. Dropping the proxy stops it and resets its connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The faults in force; `Faults::default()` is a healthy link.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Added before each chunk sent from the client to the target.
    pub upstream_latency: Duration,
    /// Added before each chunk sent from the target back to the client.
    pub downstream_latency: Duration,
    /// Per connection, the target's answer is reset after this many bytes.
    pub cut_answer_after: Option<u64>,
    /// New connections are reset at once.
    pub down: bool,
    /// How long after the target closes its side the client's side is closed.
    pub slow_close: Duration,
    /// The target's answer reaches the client at this many bytes per second.
    pub answer_bytes_per_s: Option<u64>,
    /// Once a request went up, the client side is reset; the target side is left to finish.
    pub reset_after_request: bool,
    /// When not empty, faults apply only to connections that carried a request containing one
    /// of these strings, from that request on.
    pub only_requests_containing: &'static [&'static str],
}

/// A running proxy to one target.
pub struct FaultProxy {
    pub addr: SocketAddr,
    faults: Arc<Mutex<Faults>>,
    /// Bumped by `reset_all`; dropped with the proxy, which resets every connection too.
    resets: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    faulted: Arc<AtomicU64>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and relays to `target`.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let faults = Arc::new(Mutex::new(Faults::default()));
        let (resets, _) = watch::channel(0);
        let accepted = Arc::new(AtomicU64::new(0));
        let faulted = Arc::new(AtomicU64::new(0));
        let accept_loop = tokio::spawn(accept_loop(
            listener,
            target,
            Arc::clone(&faults),
            resets.clone(),
            (Arc::clone(&accepted), Arc::clone(&faulted)),
        ));
        FaultProxy {
            addr,
            faults,
            resets,
            accepted,
            faulted,
            accept_loop,
        }
    }

    /// Changes the faults in force (for chunks and connections from now on).
    pub fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().expect("faults lock"));
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.set(|f| *f = Faults::default());
    }

    /// Resets every open connection.
    pub fn reset_all(&self) {
        self.resets.send_modify(|n| *n += 1);
    }

    /// The target becomes unreachable: open connections are reset, new ones refused.
    pub fn go_down(&self) {
        self.set(|f| f.down = true);
        self.reset_all();
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections that carried a request `only_requests_containing` aimed the faults at.
    pub fn faulted(&self) -> u64 {
        self.faulted.load(Ordering::Relaxed)
    }

    /// `url` with its host and port replaced by the proxy's (a PostgreSQL or HTTP URL).
    pub fn url_for(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).expect("url");
        parsed.set_host(Some("127.0.0.1")).expect("host");
        parsed.set_port(Some(self.addr.port())).expect("port");
        parsed.to_string()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// The address a URL points at (loopback only, as every target of the tests is).
pub fn target_of(url: &str) -> SocketAddr {
    let parsed = url::Url::parse(url).expect("url");
    let port = parsed.port_or_known_default().expect("port");
    let host = match parsed.host_str() {
        Some("localhost") | None => "127.0.0.1",
        Some(host) => host,
    };
    format!("{host}:{port}")
        .parse()
        .expect("a loopback address")
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    faults: Arc<Mutex<Faults>>,
    resets: watch::Sender<u64>,
    (accepted, faulted): (Arc<AtomicU64>, Arc<AtomicU64>),
) {
    while let Ok((client, _)) = listener.accept().await {
        accepted.fetch_add(1, Ordering::Relaxed);
        let faults = Arc::clone(&faults);
        let resets = resets.subscribe();
        tokio::spawn(relay(client, target, faults, resets, Arc::clone(&faulted)));
    }
}

/// Whether the faults apply to one connection yet (see `only_requests_containing`).
struct Aim {
    armed: AtomicBool,
    faulted: Arc<AtomicU64>,
}

impl Aim {
    fn applies(&self, f: &Faults) -> bool {
        f.only_requests_containing.is_empty() || self.armed.load(Ordering::Relaxed)
    }

    /// Arms the connection when `seen` (the request bytes so far) holds an aimed-at string.
    fn watch(&self, f: &Faults, seen: &[u8]) {
        let hit = f
            .only_requests_containing
            .iter()
            .any(|needle| seen.windows(needle.len()).any(|w| w == needle.as_bytes()));
        if hit && !self.armed.swap(true, Ordering::Relaxed) {
            self.faulted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Why a direction of a connection stopped.
enum End {
    /// The answer was cut on purpose.
    Cut,
    /// The request went up and the client side is to be reset (`reset_after_request`).
    InFlight,
    /// Either side failed.
    Io,
}

async fn relay(
    mut client: TcpStream,
    target: SocketAddr,
    faults: Arc<Mutex<Faults>>,
    mut resets: watch::Receiver<u64>,
    faulted: Arc<AtomicU64>,
) {
    let aim = Aim {
        armed: AtomicBool::new(false),
        faulted,
    };
    let now = |f: &Arc<Mutex<Faults>>| *f.lock().expect("faults lock");
    if now(&faults).down {
        return reset(client);
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return reset(client);
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let end = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let up = pipe(
            &mut client_read,
            &mut server_write,
            (&faults, &aim),
            Direction::Up,
        );
        let down = pipe(
            &mut server_read,
            &mut client_write,
            (&faults, &aim),
            Direction::Down,
        );
        tokio::select! {
            both = async { tokio::try_join!(up, down) } => both.err(),
            _ = resets.changed() => Some(End::Io),
        }
    };
    match end {
        None => {}
        Some(End::InFlight) => {
            // The client sees a reset; the target reads the request to its end and answers
            // into a socket nobody reads, as when the cut is between the two.
            reset(client);
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let drained = server.read_to_end(&mut sink);
                let _ = tokio::time::timeout(Duration::from_secs(10), drained).await;
            });
        }
        Some(End::Cut | End::Io) => {
            reset(client);
            reset(server);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// Copies one direction until its end of file (then closes the other side's write half).
async fn pipe(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    (faults, aim): (&Mutex<Faults>, &Aim),
    direction: Direction,
) -> Result<(), End> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent: u64 = 0;
    // The last bytes of the request before this chunk, so a string split across two chunks
    // still arms the connection.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = from.read(&mut buf).await.map_err(|_| End::Io)?;
        let f = *faults.lock().expect("faults lock");
        if direction == Direction::Up && n > 0 && !f.only_requests_containing.is_empty() {
            tail.extend_from_slice(&buf[..n]);
            aim.watch(&f, &tail);
            let keep = tail.len().saturating_sub(64);
            tail.drain(..keep);
        }
        if !aim.applies(&f) {
            if n == 0 {
                let _ = to.shutdown().await;
                return Ok(());
            }
            to.write_all(&buf[..n]).await.map_err(|_| End::Io)?;
            continue;
        }
        if n == 0 {
            if direction == Direction::Down && !f.slow_close.is_zero() {
                tokio::time::sleep(f.slow_close).await;
            }
            let _ = to.shutdown().await;
            return Ok(());
        }
        let latency = match direction {
            Direction::Up => f.upstream_latency,
            Direction::Down => f.downstream_latency,
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut chunk = &buf[..n];
        let limit = f.cut_answer_after.filter(|_| direction == Direction::Down);
        if let Some(limit) = limit {
            let room = usize::try_from(limit.saturating_sub(sent)).unwrap_or(usize::MAX);
            if room < chunk.len() {
                chunk = &chunk[..room];
                to.write_all(chunk).await.map_err(|_| End::Io)?;
                let _ = to.flush().await;
                return Err(End::Cut);
            }
        }
        match f
            .answer_bytes_per_s
            .filter(|_| direction == Direction::Down)
        {
            Some(rate) => trickle(to, chunk, rate).await?,
            None => to.write_all(chunk).await.map_err(|_| End::Io)?,
        }
        sent += n as u64;
        if direction == Direction::Up && f.reset_after_request {
            return Err(End::InFlight);
        }
    }
}

/// Writes `chunk` at `rate` bytes per second, a tenth of a second's worth at a time.
async fn trickle(to: &mut (impl AsyncWrite + Unpin), chunk: &[u8], rate: u64) -> Result<(), End> {
    let slice = usize::try_from((rate / 10).max(1)).unwrap_or(usize::MAX);
    for part in chunk.chunks(slice) {
        to.write_all(part).await.map_err(|_| End::Io)?;
        let _ = to.flush().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Closes with RST rather than FIN: the peer sees "connection reset".
// tokio deprecates `set_linger` because a non-zero linger blocks the thread on drop; a zero
// linger never blocks: the kernel discards what is unsent and answers RST at once.
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}
