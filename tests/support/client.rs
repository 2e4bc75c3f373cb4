//! What every test of the ProtoThrive API shares, whether the app runs in process or as a
//! process: the demo users, the configuration of a test server, an HTTP client and answers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

pub const PASSWORD: &str = "Demo-Password-1!";
pub const DEMO: &str = "demo@protothrive.dev";
pub const ENGINEER: &str = "engineer@protothrive.dev";
pub const ADMIN: &str = "admin@protothrive.dev";
/// The JWT secret of test servers.
pub const SECRET: &str = "e2e-secret-0123456789abcdef0123456789abcdef";

/// A server of the API under test: where its paths are.
pub trait Url {
    /// The full URL of `path`.
    fn url(&self, path: &str) -> String;
}

impl<T: Url + ?Sized> Url for std::sync::Arc<T> {
    fn url(&self, path: &str) -> String {
        T::url(self, path)
    }
}

/// The environment of a test server on `database_url` (tests add their own variables).
pub fn base_env(database_url: &str) -> Vec<(String, String)> {
    [
        ("PROTOTHRIVE_ADDR", "127.0.0.1:0"),
        ("PROTOTHRIVE_DATABASE_URL", database_url),
        ("PROTOTHRIVE_DEMO_PASSWORD", PASSWORD),
        ("PROTOTHRIVE_JWT_SECRET", SECRET),
        ("PROTOTHRIVE_AGENT_LATENCY_MS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// An empty directory of its own for one server's files.
pub fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "protothrive-e2e-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// An HTTP client for loopback servers (no proxy from the environment).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Logs in and returns the access token.
pub async fn login(server: &impl Url, email: &str) -> String {
    let res = client()
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login request");
    assert_eq!(res.status(), 200, "login of {email}");
    let body: Value = res.json().await.expect("login body");
    body["data"]["tokens"]["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// The id of the newest of the roadmaps `token`'s user sees (the demo users have seeded ones).
pub async fn first_roadmap(server: &impl Url, token: &str) -> String {
    let list = send(
        client()
            .get(server.url("/api/v1/roadmaps?limit=1"))
            .bearer_auth(token),
    )
    .await;
    list.body["data"][0]["id"]
        .as_str()
        .expect("a seeded roadmap")
        .to_owned()
}

/// A request's status, headers and JSON body (Null when not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Answer {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}
