//! A TCP proxy the test controls, to take a service (PostgreSQL) away from one server without
//! stopping it for the others: cut (connections dropped, new ones refused) or hung (connections stay
//! open and nothing is forwarded either way, like a server that stopped answering).

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Down,
    Hung,
}

/// The proxy's mode, and how many cuts there were (a connection older than the last cut is closed
/// even if the proxy was restored since).
#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    cuts: u64,
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    state: watch::Sender<State>,
}

impl TcpProxy {
    /// Forwards connections on a free local port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (state, _) = watch::channel(State {
            mode: Mode::Up,
            cuts: 0,
        });
        let proxy = Self {
            addr,
            state: state.clone(),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watch = state.subscribe();
                let born = *watch.borrow_and_update();
                if born.mode == Mode::Down {
                    // Down: the connection is accepted and closed at once, like a dead server.
                    continue;
                }
                tokio::spawn(async move {
                    // Hung: the client waits, connected to nothing, until the proxy is restored.
                    if !wait_while_hung(&mut watch, born.cuts).await {
                        return;
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let upstream = pump(client_read, server_write, state_rx(&watch), born.cuts);
                    let downstream = pump(server_read, client_write, state_rx(&watch), born.cuts);
                    tokio::select! {
                        () = upstream => {}
                        () = downstream => {}
                    }
                });
            }
        });
        proxy
    }

    /// Drops every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.state.send_modify(|s| {
            s.mode = Mode::Down;
            s.cuts += 1;
        });
    }

    /// Stops forwarding anything, either way, on open and new connections alike, while keeping
    /// them open, until [`TcpProxy::restore`] (which forwards again what waited).
    pub fn hang(&self) {
        self.state.send_modify(|s| s.mode = Mode::Hung);
    }

    pub fn restore(&self) {
        self.state.send_modify(|s| s.mode = Mode::Up);
    }

    /// `url` (a `postgres://` URL) with its host and port replaced by this proxy's.
    pub fn rewrite_url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let user = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        format!("{scheme}://{user}{}/{path}", self.addr)
    }
}

fn state_rx(watch: &watch::Receiver<State>) -> watch::Receiver<State> {
    let mut copy = watch.clone();
    copy.mark_unchanged();
    copy
}

/// Waits until the proxy is not hung; false if the connection must close (a cut since `cuts`).
async fn wait_while_hung(watch: &mut watch::Receiver<State>, cuts: u64) -> bool {
    loop {
        let state = *watch.borrow_and_update();
        if state.cuts != cuts || state.mode == Mode::Down {
            return false;
        }
        if state.mode == Mode::Up {
            return true;
        }
        if watch.changed().await.is_err() {
            return false;
        }
    }
}

/// Copies `from` to `to` until either closes or a cut; holds what it read while the proxy hangs.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut watch: watch::Receiver<State>,
    cuts: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !wait_while_hung(&mut watch, cuts).await {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            // The mode changed: check it again before reading on (reads are cancel-safe).
            _ = watch.changed() => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !wait_while_hung(&mut watch, cuts).await || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
