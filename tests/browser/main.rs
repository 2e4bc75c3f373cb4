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
// Tests fail by panicking: `expect` on a test's own setup is the clearest way to say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chromium;
mod pages;
#[path = "../support/mod.rs"]
mod support;

use serde_json::{Value, json};

use crate::pages::Origin;
use crate::support::process::Server;
use crate::support::{DEMO, client, login, send};

/// What the allowed page must read of one probe (see `page.html`).
struct Readable {
    probe: &'static str,
    status: u16,
    /// The problem body's `code`, for rejections.
    code: Option<&'static str>,
    /// One `data` field and its value, for successes.
    field: Option<(&'static str, &'static str)>,
}

const fn read(probe: &'static str, status: u16) -> Readable {
    Readable {
        probe,
        status,
        code: None,
        field: None,
    }
}

const ALLOWED: [Readable; 7] = [
    Readable {
        field: Some(("status", "healthy")),
        ..read("simple_get", 200)
    },
    // The title is the one the page sent; checked separately below.
    read("preflighted_put", 200),
    Readable {
        field: Some(("email", DEMO)),
        ..read("credentials_include", 200)
    },
    Readable {
        code: Some("AUTH-401"),
        ..read("bad_token", 401)
    },
    // The gateway's media-type check, before authentication.
    Readable {
        code: Some("VAL-415"),
        ..read("unsupported_media_type", 415)
    },
    // The first register call spends the scene's limit of one (and is invalid: 422)...
    Readable {
        code: Some("VAL-422"),
        ..read("rate_limit_spend", 422)
    },
    // ...the second is the rate limiter's 429, readable with its exposed headers.
    Readable {
        code: Some("RATE-429"),
        ..read("rate_limited", 429)
    },
];

/// The probe whose preflight asks for a request header the API does not allow: blocked for every
/// origin.
const UNLISTED_HEADER: &str = "unlisted_header";

/// The listed origin reads every answer the API gives it: successes, a preflighted write, a
/// credentialed call, and rejections by inner layers, with their problem codes and request ids;
/// only a request header the API does not allow is refused at the preflight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listed_origin_reads_every_answer() {
    let (scene, [listed, _unlisted]) = Scene::start().await;
    let id = &scene.roadmap;
    let title = "replaced from the listed origin";
    let seen = scene.visit(listed, id, title).await;

    for Readable {
        probe,
        status,
        code,
        field,
    } in ALLOWED
    {
        let seen = &seen[probe];
        let why = format!("listed origin, {probe}: the page saw {seen}");
        assert_eq!(seen["outcome"], "read", "{why}");
        assert_eq!(seen["status"], status, "{why}");
        assert_eq!(seen["code"].as_str(), code, "{why}");
        // X-Request-Id is exposed: the page reads it through `res.headers.get`, errors included.
        let rid = seen["request_id"].as_str().unwrap_or("");
        assert!(!rid.is_empty(), "{why}: X-Request-Id not exposed");
        if let Some((key, value)) = field {
            assert_eq!(seen["data"][key], value, "{why}");
        }
    }
    assert_eq!(seen["preflighted_put"]["data"]["title"], title);
    // Retry-After and RateLimit are exposed to the page on the 429.
    let limited = &seen["rate_limited"];
    assert!(
        limited["retry_after"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "Retry-After not readable: {limited}"
    );
    assert!(
        limited["ratelimit"]
            .as_str()
            .is_some_and(|v| v.contains("register")),
        "RateLimit not readable: {limited}"
    );
    let refused = &seen[UNLISTED_HEADER];
    assert_eq!(
        refused["outcome"], "blocked",
        "listed origin, {UNLISTED_HEADER}: {refused}"
    );
    assert_eq!(
        refused["error"], "TypeError",
        "listed origin, {UNLISTED_HEADER}: {refused}"
    );
    assert_eq!(scene.title(id).await, title, "the write happened");
}

/// The same calls from an unlisted origin: every fetch rejects, the page learns nothing (not even
/// a status), and its preflighted write is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_origin_reads_nothing_and_writes_nothing() {
    let (scene, [_listed, unlisted]) = Scene::start().await;
    let id = &scene.roadmap;
    let before = scene.title(id).await;
    let seen = scene.visit(unlisted, id, "replaced from elsewhere").await;

    let probes = ALLOWED.iter().map(|r| r.probe);
    for probe in probes.chain([UNLISTED_HEADER]) {
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
        // Every request is 127.0.0.1: the contract's per-IP limit would refuse most of them. The
        // register limit is tight on purpose: the page reads the 429 it produces.
        let server = Server::start_with(&[
            ("PROTOTHRIVE_CORS_ORIGINS", listed.origin.as_str()),
            (
                "PROTOTHRIVE_RATE_LIMITS",
                "ip=1000000/60s:100000,user=1000000/60s:100000,api_key=1000000/60s:100000,\
                 login=1000000/300s:100000,register=1/900s:1",
            ),
        ]);
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
    /// Its preflighted PUT sets the title of roadmap `id` to `title`.
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
