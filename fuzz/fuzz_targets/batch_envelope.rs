//! Arbitrary bytes as a batch envelope through `BatchLayer` over a service that echoes the path:
//! no panic; the batch answers 200 with one result per item, or a 400/413 problem; no item the
//! inner service sees is the batch endpoint, however spelled; every refused item is a 400.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use protothrive::batch::{BatchLayer, canonical_path};
use tower::{Layer, ServiceExt, service_fn};

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(c) = canonical_path(text) {
            assert!(c.starts_with('/'), "{text:?} → {c:?}");
        }
    }
    let layer = BatchLayer::builder("/api/batch")
        .items_under("/api")
        .max_items(8)
        .build()
        .expect("layer");
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        let path = req.uri().path().to_owned();
        assert_ne!(canonical_path(&path).as_deref(), Some("/api/batch"), "{path}");
        let body = serde_json::json!({"path": path}).to_string();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    });
    let svc = layer.layer(inner);
    let req = Request::post("/api/batch")
        .body(Full::new(Bytes::copy_from_slice(data)))
        .expect("request");
    rt().block_on(async {
        let res = svc.oneshot(req).await.expect("infallible");
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON answer");
        match status {
            200 => {
                let items = answer["data"].as_array().expect("data");
                assert!(!items.is_empty() && items.len() <= 8);
                for r in items {
                    let s = r["status"].as_u64().expect("status");
                    assert!(s == 200 || s == 400, "{r}");
                }
            }
            400 | 413 => assert!(answer["code"].as_str().is_some_and(|c| c.starts_with("BATCH-"))),
            other => panic!("status {other}: {answer}"),
        }
    });
});
