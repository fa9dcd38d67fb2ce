//! The plumbing every sandbox of an external party shares — this crate's payment provider
//! ([`crate::sandbox`]) and the logistics sandbox carrier (`oc-logistics-http`, which depends
//! on this crate for it): the lock that survives a panicked holder, the problem answer, the
//! server task, and the `GET`/`PUT /sandbox/faults` routes over the sandbox's own faults.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The guarded value, even if a holder panicked (a sandbox's state stays usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A problem answer: `{"status": …, "detail": …}`.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "status": status.as_u16(), "detail": detail.into() })),
    )
        .into_response()
}

/// Serve `router` on `listener` until the returned task is aborted; answers the bound
/// address. `what` names the sandbox in the log if the server stops.
pub fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    what: &'static str,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let address = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "{what} stopped");
        }
    });
    Ok((address, task))
}

/// A sandbox whose misbehaviour is set at `/sandbox/faults`.
pub trait WithFaults: Clone + Send + Sync + 'static {
    /// What the faults are (default: it behaves).
    type Faults: Clone + Serialize + DeserializeOwned + Send + 'static;

    /// Where the faults in force are held.
    fn faults(&self) -> &Mutex<Self::Faults>;
}

/// `GET` (the faults in force) and `PUT` (new faults, answered back; 422 if the body is not
/// faults) for `/sandbox/faults`.
pub fn faults_route<S: WithFaults>() -> MethodRouter<S> {
    get(get_faults::<S>).put(put_faults::<S>)
}

async fn get_faults<S: WithFaults>(State(sandbox): State<S>) -> Response {
    axum::Json(lock(sandbox.faults()).clone()).into_response()
}

async fn put_faults<S: WithFaults>(State(sandbox): State<S>, body: Bytes) -> Response {
    match serde_json::from_slice::<S::Faults>(&body) {
        Ok(faults) => {
            *lock(sandbox.faults()) = faults.clone();
            axum::Json(faults).into_response()
        }
        Err(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    use super::*;
    use crate::sandbox::{Faults, Sandbox};

    #[tokio::test]
    async fn faults_are_set_and_read_over_http_and_a_bad_body_changes_nothing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (_sandbox, address, task) = Sandbox::serve(Default::default(), listener).await.unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let url = format!("http://{address}/sandbox/faults");
        let call = |method: &str, body: &str| {
            let request = hyper::Request::builder()
                .method(method)
                .uri(&url)
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap();
            let client = client.clone();
            async move {
                let response = client.request(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (status, body)
            }
        };
        let (status, body) = call("PUT", r#"{"fail_queries": true, "duplicates": 2}"#).await;
        assert_eq!(status, StatusCode::OK);
        let set = Faults {
            fail_queries: true,
            duplicates: 2,
            ..Faults::default()
        };
        assert_eq!(serde_json::from_slice::<Faults>(&body).unwrap(), set);
        let (status, _) = call("PUT", r#"{"fail_everything": true}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, body) = call("GET", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(serde_json::from_slice::<Faults>(&body).unwrap(), set);
        task.abort();
    }
}
