//! A loopback TCP proxy a fault test controls: it stands between the code under test and a
//! real service, and can cut the service off ([`TcpProxy::block`]) and let it back
//! ([`TcpProxy::restore`]) without touching the service itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Listens on `127.0.0.1:0` and forwards every connection to `target`.
///
/// While blocked, new connections are accepted and closed at once (the client sees a reset
/// or an immediate EOF, like a service that refuses), and every forwarded connection is cut.
/// The listening port never changes, so the code under test keeps its configuration.
#[derive(Debug)]
pub struct TcpProxy {
    address: SocketAddr,
    blocked: Arc<AtomicBool>,
    /// Bumped on every block: connection tasks watch it and close when it moves.
    cut: watch::Sender<u64>,
    forwarded: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// A proxy to `target` (`host:port`), forwarding.
    pub async fn start(target: impl Into<String>) -> anyhow::Result<TcpProxy> {
        Self::start_on(0, target).await
    }

    /// A proxy on the fixed port `127.0.0.1:<port>` (0: any free port). For a service
    /// that tells its clients where to connect (a Kafka listener advertising the proxy's
    /// address), the port must be known before the service starts.
    pub async fn start_on(port: u16, target: impl Into<String>) -> anyhow::Result<TcpProxy> {
        let target = target.into();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|error| {
                anyhow::anyhow!("binding the test proxy to 127.0.0.1:{port}: {error}")
            })?;
        let address = listener.local_addr()?;
        let blocked = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let forwarded = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            target,
            Arc::clone(&blocked),
            cut.clone(),
            Arc::clone(&forwarded),
            Arc::clone(&refused),
        ));
        Ok(TcpProxy {
            address,
            blocked,
            cut,
            forwarded,
            refused,
            task,
        })
    }

    /// Where the code under test should connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `127.0.0.1:<port>`.
    pub fn host_port(&self) -> String {
        self.address.to_string()
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Refuse new connections and cut every open one.
    pub fn block(&self) {
        self.blocked.store(true, Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Forward again.
    pub fn restore(&self) {
        self.blocked.store(false, Ordering::SeqCst);
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::SeqCst)
    }

    /// Connections forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }

    /// Connections refused while blocked so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut.send_modify(|generation| *generation += 1);
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: String,
    blocked: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    forwarded: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
) {
    loop {
        let Ok((mut inbound, _peer)) = listener.accept().await else {
            continue;
        };
        if blocked.load(Ordering::SeqCst) {
            refused.fetch_add(1, Ordering::SeqCst);
            // linger 0: the client gets a reset, not a half-open socket
            let _ = inbound.set_zero_linger();
            drop(inbound);
            continue;
        }
        forwarded.fetch_add(1, Ordering::SeqCst);
        let mut generation = cut.subscribe();
        let target = target.clone();
        tokio::spawn(async move {
            generation.mark_unchanged();
            let Ok(mut outbound) = TcpStream::connect(&target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = generation.changed() => {
                    let _ = inbound.set_zero_linger();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        stream.write_all(b"ping").await?;
        let mut answer = [0u8; 4];
        stream.read_exact(&mut answer).await?;
        Ok(answer.to_vec())
    }

    #[tokio::test]
    async fn forwards_blocks_cuts_and_restores() {
        let target = echo_server().await;
        let proxy = TcpProxy::start(target.to_string()).await.unwrap();
        let mut open = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(round_trip(&mut open).await.unwrap(), b"ping");

        proxy.block();
        // the open connection is cut
        let cut = tokio::time::timeout(std::time::Duration::from_secs(5), round_trip(&mut open))
            .await
            .expect("a cut connection answers at once");
        assert!(cut.is_err());
        // a new one is refused
        let mut refused = TcpStream::connect(proxy.address()).await.unwrap();
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(5), round_trip(&mut refused))
                .await
                .expect("a refused connection answers at once");
        assert!(answer.is_err());
        assert!(proxy.refused() >= 1);

        proxy.restore();
        let mut again = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(round_trip(&mut again).await.unwrap(), b"ping");
        assert_eq!(proxy.forwarded(), 2);
    }
}
