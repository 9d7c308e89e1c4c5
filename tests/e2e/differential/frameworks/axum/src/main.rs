//! axum, default routing: one handler per protected path. Every handler invocation appends
//! "<route> <x-fw-seq>\n" to $LF_FW_LOG.
use std::io::Write;

use axum::{http::HeaderMap, routing::post, Router};

fn record(route: &str, headers: &HeaderMap) -> String {
    let seq = headers.get("x-fw-seq").and_then(|v| v.to_str().ok()).unwrap_or("-");
    let log = std::env::var("LF_FW_LOG").unwrap_or_default();
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "{route} {seq}");
    }
    format!("LF-HANDLER {route}\n")
}

async fn sms(headers: HeaderMap) -> String {
    record("md5", &headers)
}

async fn notify(headers: HeaderMap) -> String {
    record("cube", &headers)
}

fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    rt.block_on(async {
        let app = Router::new().route("/linksfield/sms", post(sms)).route("/cube/notify", post(notify));
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
        axum::serve(listener, app).await
    })
}
