//! Arbitrary bodies to every JSON endpoint of the ProtoThrive API, through the whole app (version
//! negotiation, body limits, auth, validation, handlers, SQLite) in-process: never a 5xx, never a
//! panic. The example's modules are compiled into this target as they are.
#![no_main]
#![allow(dead_code, unused_imports, unreachable_pub, clippy::all)]

#[path = "../../examples/protothrive/main.rs"]
mod api;

// The example's modules refer to each other as `crate::…`.
use api::{
    agent, app, cache, config, db, http as app_http, loaders, passwords, revocations, routes, state,
};
mod http {
    pub use super::app_http::*;
}

use std::collections::HashMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct World {
    rt: tokio::runtime::Runtime,
    app: app::App,
    token: String,
    roadmap: String,
}

const SECRET: &str = "fuzz-secret-0123456789abcdef0123456789abcdef";
const PASSWORD: &str = "Fuzz-Password-1!";

fn request(method: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> ::http::Request<axum::body::Body> {
    let mut b = ::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let mut req = b.body(axum::body::Body::from(body)).expect("request");
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))));
    req
}

async fn json(app: &app::App, req: ::http::Request<axum::body::Body>) -> (u16, serde_json::Value) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!("protothrive-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut vars = HashMap::new();
        vars.insert(
            "PROTOTHRIVE_DATABASE_URL".to_owned(),
            format!("sqlite://{}", dir.join("fuzz.db").display()),
        );
        vars.insert("PROTOTHRIVE_JWT_SECRET".to_owned(), SECRET.to_owned());
        vars.insert("PROTOTHRIVE_AGENT_LATENCY_MS".to_owned(), "0".to_owned());
        vars.insert("PROTOTHRIVE_DEMO_PASSWORD".to_owned(), PASSWORD.to_owned());
        let config = config::Config::from_vars(&vars).expect("config");
        let (app, token, roadmap) = rt.block_on(async {
            let built = app::build(config, protothrive::clock::system(), None)
                .await
                .expect("app");
            let app = built.service;
            let login = serde_json::json!({"email": "admin@protothrive.dev", "password": PASSWORD});
            let (status, body) =
                json(&app, request("POST", "/api/v1/auth/login", None, login.to_string().into_bytes())).await;
            assert_eq!(status, 200, "{body}");
            let token = body["data"]["tokens"]["access_token"].as_str().expect("token").to_owned();
            let graph = serde_json::json!({"nodes": [{"id": "a"}], "edges": []}).to_string();
            let create = serde_json::json!({"title": "fuzz", "json_graph": graph, "visibility": "public"});
            let (status, body) =
                json(&app, request("POST", "/api/v1/roadmaps", Some(&token), create.to_string().into_bytes())).await;
            assert_eq!(status, 201, "{body}");
            let roadmap = body["data"]["id"].as_str().expect("id").to_owned();
            (app, token, roadmap)
        });
        World { rt, app, token, roadmap }
    })
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    endpoint: u8,
    v2: bool,
    authenticated: bool,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let w = world();
    let v = if input.v2 { "v2" } else { "v1" };
    let id = &w.roadmap;
    let endpoints: [(&str, String); 14] = [
        ("POST", format!("/api/{v}/auth/register")),
        ("POST", format!("/api/{v}/auth/login")),
        ("POST", format!("/api/{v}/auth/refresh")),
        ("POST", format!("/api/{v}/auth/logout")),
        ("POST", format!("/api/{v}/roadmaps")),
        ("PUT", format!("/api/{v}/roadmaps/{id}")),
        ("PATCH", format!("/api/{v}/roadmaps/{id}")),
        ("POST", format!("/api/{v}/snippets")),
        ("POST", format!("/api/{v}/agent-logs")),
        ("POST", format!("/api/{v}/insights")),
        ("POST", format!("/api/{v}/agent/run")),
        ("POST", format!("/api/{v}/admin/api-keys")),
        ("POST", format!("/api/{v}/batch")),
        ("POST", format!("/api/{v}/roadmaps/{id}/thrive-score")),
    ];
    let (method, path) = &endpoints[usize::from(input.endpoint) % endpoints.len()];
    // Logging out would revoke the shared token; send it anonymously.
    let token = (input.authenticated && !path.ends_with("/logout")).then_some(w.token.as_str());
    let req = request(method, path, token, input.body.to_vec());
    let (status, body) = w.rt.block_on(json(&w.app, req));
    assert!(status < 500, "{method} {path} answered {status}: {body}");
});
