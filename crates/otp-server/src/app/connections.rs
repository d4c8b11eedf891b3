//! The accept loop of [`serve`](super::serve): axum's `serve`, with one thing it cannot be told
//! (axum 0.8): a time limit on reading a request's headers.
//!
//! axum gives hyper no timer, and without one hyper ignores its header read timeout: a client
//! that sends half a request line and then one byte now and then (slowloris), or opens
//! connections and sends nothing, holds each connection, and its file descriptor, for as long
//! as it likes. The request timeout of [`layers`](super::layers) cannot help, since it starts
//! once the headers are in. Here each connection is served by hyper's HTTP/1 builder with a
//! Tokio timer and `header_read_timeout`, which also bounds how long an idle keep-alive
//! connection is kept; the peer address goes into each request as axum's
//! `ConnectInfo<SocketAddr>` for the rate limiter; and a shutdown stops accepting, lets every
//! connection finish the request in flight, and waits for them all.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The router as one connection's hyper service, with the peer address.
#[derive(Clone)]
struct PeerService {
    router: Router,
    peer: SocketAddr,
}

impl hyper::service::Service<http::Request<Incoming>> for PeerService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        // A `Router` is always ready: no `poll_ready` needed.
        tower::Service::call(&mut self.router.clone(), request)
    }
}

/// Serves `router` on `listener` until `shutdown` completes, reading each request's headers
/// within `header_timeout` (else the connection is closed); then waits for the connections
/// to finish their requests in flight.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    // Tells the connections to finish; each holds a `closed` receiver until it has.
    let (stop_tx, stop_rx) = watch::channel(());
    let (closed_tx, closed_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = PeerService {
            router: router.clone(),
            peer,
        };
        let mut stop = stop_rx.clone();
        let closed = closed_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(err) = served {
                        tracing::trace!(error = %err, %peer, "connection ended");
                    }
                }
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            drop(closed);
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    drop(closed_rx);
    closed_tx.closed().await;
}

/// What axum does when `accept` fails: nothing for a connection that went away before it was
/// accepted; otherwise (out of file descriptors, say) an ERROR and a second's pause, so as not
/// to spin.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
