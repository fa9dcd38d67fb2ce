//! Connections to the Thrift server: a small pool of synchronous `HbaseSyncClient`s, each
//! used by one blocking task at a time.
//!
//! A tokio semaphore bounds the connections in use (waiting at most `acquire_timeout`);
//! idle connections wait in a stack and are reused newest first. A connection that failed on
//! the wire is dropped, never returned, and so are the idle ones (most likely cut by the
//! same outage); the next call opens a fresh one. Every socket has
//! connect, read and write timeouts, so a blocked server cannot hold a blocking thread for
//! longer than `io_timeout` per call.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};

use hbase_thrift::hbase::HbaseSyncClient;
use oc_model::{DomainError, DomainResult};
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol,
    TInputProtocol, TOutputProtocol,
};
use thrift::transport::{
    TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport,
    TIoChannel, TTcpChannel,
};
use tokio::sync::Semaphore;

use super::config::HbaseConfig;
use super::error::{CallError, convert};

pub(crate) type Client =
    HbaseSyncClient<Box<dyn TInputProtocol + Send>, Box<dyn TOutputProtocol + Send>>;

pub(crate) struct Pool {
    config: HbaseConfig,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map(|idle| idle.len()).unwrap_or_default();
        f.debug_struct("Pool")
            .field("address", &self.config.address)
            .field("max_connections", &self.config.max_connections)
            .field("idle", &idle)
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(config: HbaseConfig) -> Arc<Pool> {
        Arc::new(Pool {
            permits: Arc::new(Semaphore::new(config.max_connections)),
            idle: Mutex::new(Vec::with_capacity(config.max_connections)),
            config,
        })
    }

    pub(crate) fn config(&self) -> &HbaseConfig {
        &self.config
    }

    /// Run `call` on a pooled connection, on tokio's blocking pool.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, call: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Client, &HbaseConfig) -> Result<T, CallError> + Send + 'static,
    {
        let permit = tokio::time::timeout(
            self.config.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| {
            tracing::warn!(address = %self.config.address, "no free hbase connection in time");
            DomainError::unavailable("cold store busy: no free connection")
        })?
        .map_err(|_| DomainError::unavailable("cold store closed"))?;
        let pool = Arc::clone(self);
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut client = match pool.take_idle() {
                Some(client) => client,
                None => open(&pool.config)?,
            };
            let outcome = call(&mut client, &pool.config);
            let reusable = match &outcome {
                Ok(_) => true,
                Err(error) => error.connection_is_reusable(),
            };
            if reusable {
                pool.give_back(client);
            } else {
                // A connection that failed on the wire most often means the server or the
                // link went away, and then the idle ones are dead too: dropped now, each of
                // them would fail one more call after the server is back (the soak saw
                // those failures dead-letter orders).
                pool.drop_idle();
            }
            outcome
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "cold store task failed");
            DomainError::internal("cold store task failed")
        })?;
        outcome.map_err(convert)
    }

    fn take_idle(&self) -> Option<Client> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn drop_idle(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn give_back(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.config.max_connections {
            idle.push(client);
        }
    }
}

/// Open one connection with the configured transport and protocol.
fn open(config: &HbaseConfig) -> Result<Client, CallError> {
    let stream = connect(config)?;
    let channel = TTcpChannel::with_stream(stream);
    let (read_half, write_half) = channel.split()?;
    let (input, output) = if config.framed {
        protocols(
            TFramedReadTransport::new(read_half),
            TFramedWriteTransport::new(write_half),
            config.compact,
        )
    } else {
        protocols(
            TBufferedReadTransport::new(read_half),
            TBufferedWriteTransport::new(write_half),
            config.compact,
        )
    };
    Ok(HbaseSyncClient::new(input, output))
}

fn connect(config: &HbaseConfig) -> Result<TcpStream, thrift::Error> {
    let mut last_error = None;
    for address in config.address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, config.connect_timeout) {
            Ok(stream) => {
                stream.set_read_timeout(Some(config.io_timeout))?;
                stream.set_write_timeout(Some(config.io_timeout))?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{} resolves to no address", config.address),
            )
        })
        .into())
}

fn protocols<R, W>(
    read: R,
    write: W,
    compact: bool,
) -> (
    Box<dyn TInputProtocol + Send>,
    Box<dyn TOutputProtocol + Send>,
)
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    if compact {
        (
            Box::new(TCompactInputProtocol::new(read)),
            Box::new(TCompactOutputProtocol::new(write)),
        )
    } else {
        (
            Box::new(TBinaryInputProtocol::new(read, true)),
            Box::new(TBinaryOutputProtocol::new(write, true)),
        )
    }
}
