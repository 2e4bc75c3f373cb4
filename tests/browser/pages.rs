//! The probe page, served from its own loopback origin (a port of its own: another origin than the
//! API's, so every call it makes is cross-origin).

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::Value;
use tokio::net::TcpListener;

const PAGE: &str = include_str!("page.html");

/// A listening socket whose origin is known before the page exists (the API must be started with
/// the allowed origin before the page can hold the token the API issues).
pub(crate) struct Origin {
    listener: TcpListener,
    pub(crate) origin: String,
}

impl Origin {
    pub(crate) async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a page port");
        let port = listener.local_addr().expect("page address").port();
        Self {
            listener,
            origin: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Serves the probe page with `config` (see `page.html`) at `/`; returns its URL. The server
    /// lives until the test's runtime ends.
    pub(crate) fn serve(self, config: &Value) -> String {
        let html = PAGE.replace("/*CONFIG*/", &config.to_string());
        let app = Router::new().route(
            "/",
            get(move || {
                let html = html.clone();
                async move { Html(html) }
            }),
        );
        tokio::spawn(async move { axum::serve(self.listener, app).await });
        format!("{}/", self.origin)
    }
}
