//! Real-browser tests of the ProtoThrive API's CORS: Debian's chromium, headless, loads a probe
//! page from two loopback origins, one listed in `PROTOTHRIVE_CORS_ORIGINS` and one not, whose
//! script calls the running API with `fetch()`. The test asserts what the browser let each page
//! see.
//!
//! Browsers are the only clients that enforce CORS, so this is where the layer's headers are
//! proven rather than asserted one by one: a missing `Access-Control-Allow-Credentials`, an
//! unexposed `X-Request-Id` or a 401 without CORS headers shows up here as what a real page can
//! or cannot read. `./scripts/test` installs chromium when it is missing; without it this test
//! fails with that advice, it never skips.
//!
//! What the listed origin may read (a preflighted write, a credentialed call, 401 and 415 problems
//! with their request ids) is asserted once the CORS layer is wired into the example: until then
//! the browser, correctly, lets it read nothing.
// Tests fail by panicking: `expect` on a test's own setup is the clearest way to say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chromium;
mod pages;
// The end-to-end tests' harness, shared rather than copied; this file uses part of it.
#[allow(unreachable_pub, dead_code)]
#[path = "../protothrive/support.rs"]
mod support;

use serde_json::{Value, json};

use crate::pages::Origin;
use crate::support::{DEMO, Server, client, login, send};

/// The calls the probe page makes (see `page.html`).
const PROBES: [&str; 5] = [
    "simple_get",
    "preflighted_patch",
    "credentials_include",
    "bad_token",
    "unsupported_media_type",
];

/// Calls from an unlisted origin: every fetch rejects, the page learns nothing (not even
/// a status), and its preflighted write is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_origin_reads_nothing_and_writes_nothing() {
    let (scene, [_listed, unlisted]) = Scene::start().await;
    let id = &scene.roadmap;
    let before = scene.title(id).await;
    let seen = scene.visit(unlisted, id, "patched from elsewhere").await;

    for probe in PROBES {
        let seen = &seen[probe];
        let why = format!("unlisted origin, {probe}: the page saw {seen}");
        assert_eq!(seen["outcome"], "blocked", "{why}");
        assert_eq!(seen["error"], "TypeError", "{why}");
        assert!(seen.get("status").is_none(), "{why}");
    }
    assert_eq!(scene.title(id).await, before, "the write never happened");
}

/// The API, started with one origin listed in `PROTOTHRIVE_CORS_ORIGINS`; the demo user's token
/// and one of their roadmaps.
struct Scene {
    server: Server,
    token: String,
    roadmap: String,
}

impl Scene {
    /// The scene, and two page origins: the listed one and one that is not listed.
    async fn start() -> (Self, [Origin; 2]) {
        chromium::require();
        let listed = Origin::bind().await;
        let unlisted = Origin::bind().await;
        let server = Server::start_with(&[("PROTOTHRIVE_CORS_ORIGINS", listed.origin.as_str())]);
        let token = login(&server, DEMO).await;
        let roadmap = demo_roadmap(&server, &token).await;
        let scene = Self {
            server,
            token,
            roadmap,
        };
        (scene, [listed, unlisted])
    }

    /// Serves the probe page from `origin`, loads it in chromium and returns what the page saw.
    /// Its preflighted PATCH sets the title of roadmap `id` to `title`.
    async fn visit(&self, origin: Origin, id: &str, title: &str) -> Value {
        let url = origin.serve(&json!({
            "api": self.server.base, "token": self.token, "roadmap": id, "title": title,
        }));
        let dump = tokio::task::spawn_blocking(move || chromium::dump_dom(&url))
            .await
            .expect("chromium thread");
        let out = dump.out().unwrap_or_else(|| {
            panic!(
                "the page wrote no results; DOM:\n{}\nchromium stderr:\n{}",
                dump.dom,
                dump.stderr_tail()
            )
        });
        serde_json::from_str(out).expect("the page's results are JSON")
    }

    /// The title of roadmap `id`, read without a browser.
    async fn title(&self, id: &str) -> Value {
        let req = client()
            .get(self.server.url(&format!("/api/v1/roadmaps/{id}")))
            .bearer_auth(&self.token);
        send(req).await.body["data"]["title"].clone()
    }
}

/// The id of one of the demo user's seeded roadmaps.
async fn demo_roadmap(server: &Server, token: &str) -> String {
    let list = send(
        client()
            .get(server.url("/api/v1/roadmaps"))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.body["data"][0]["id"]
        .as_str()
        .expect("the demo user has a roadmap")
        .to_owned()
}
