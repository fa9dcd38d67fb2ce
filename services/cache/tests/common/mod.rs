//! Shared test helpers: the order fixtures (`oc_conformance::fixtures`) and a
//! loopback TCP proxy that can be stopped and restarted.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub use oc_conformance::fixtures::{at_version, order, tenant};

/// `(url with host:port replaced by 127.0.0.1:{port}, upstream host:port)` of a redis URL.
pub fn redirect_url(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("redis url has a scheme");
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let upstream = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    };
    (
        format!("{scheme}://{userinfo}127.0.0.1:{port}{path}"),
        upstream,
    )
}

/// A loopback TCP proxy to `upstream`. Stopping it closes the listener and every forwarded
/// connection; restarting listens on the same port again.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    upstream: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on an ephemeral loopback port.
    pub async fn start(upstream: String) -> Proxy {
        let mut proxy = Proxy {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            task: None,
        };
        proxy.listen().await;
        proxy
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Closes the listener and every forwarded connection (and waits until they are closed).
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _cancelled = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        assert!(self.task.is_none(), "stop before restarting");
        self.listen().await;
    }

    async fn listen(&mut self) {
        let mut attempts = 0;
        let listener = loop {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            match socket.bind(self.addr).and_then(|()| socket.listen(128)) {
                Ok(listener) => break listener,
                Err(error) if attempts < 40 => {
                    attempts += 1;
                    eprintln!("proxy: rebinding {}: {error}; retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("proxy: cannot listen on {}: {error}", self.addr),
            }
        };
        self.addr = listener.local_addr().unwrap();
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropped with this task on stop: aborts every connection task.
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut inbound, _peer)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        }));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
