//! §4.4 invalidation after unsafe methods and purges through the handle.

use super::*;

#[tokio::test]
async fn unsafe_methods_invalidate_the_target_and_location() {
    let f = fixture(|req, n| match *req.method() {
        Method::POST => Ok(resp(
            201,
            &[
                ("location", "/items/2"),
                ("content-location", "https://elsewhere.example/r"),
            ],
            "",
        )),
        _ => Ok(resp(
            200,
            &[("cache-control", "max-age=60")],
            &format!("v{n}"),
        )),
    });
    let at = |path: &str| {
        Request::get(path)
            .header("host", "api.example.com")
            .body(())
            .unwrap()
    };
    send(&f.svc, at("/items")).await;
    send(&f.svc, at("/items/2")).await;
    send(&f.svc, at("/items/3")).await;
    let post = Request::post("/items")
        .header("host", "api.example.com")
        .body(())
        .unwrap();
    let (code, h, _) = send(&f.svc, post).await;
    assert_eq!(
        (code, cache_status(&h)),
        (StatusCode::CREATED, "protothrive; fwd=method")
    );
    let calls = f.seen.calls();
    send(&f.svc, at("/items")).await;
    send(&f.svc, at("/items/2")).await;
    send(&f.svc, at("/items/3")).await;
    assert_eq!(
        f.seen.calls(),
        calls + 2,
        "/items and /items/2 refetched, /items/3 kept"
    );
}

#[tokio::test]
async fn tags_prefixes_and_uris_invalidate_through_the_handle() {
    let f = fixture(|req, n| {
        let tag = if req.uri().path().starts_with("/snippets") {
            "snippets"
        } else {
            "other"
        };
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("surrogate-key", tag)],
            &format!("v{n}"),
        ))
    });
    let at = |path: &str| {
        Request::get(path)
            .header("host", "api.example.com")
            .body(())
            .unwrap()
    };
    for p in ["/snippets/1", "/snippets/2", "/roadmaps/1", "/roadmaps/2"] {
        let (_, h, _) = send(&f.svc, at(p)).await;
        assert!(!h.contains_key("surrogate-key"));
    }
    f.handle.invalidate_tag("snippets").await;
    f.handle.invalidate_uri("/roadmaps/1").await;
    let before = f.seen.calls();
    for p in ["/snippets/1", "/snippets/2", "/roadmaps/1", "/roadmaps/2"] {
        send(&f.svc, at(p)).await;
    }
    assert_eq!(f.seen.calls(), before + 3);
    f.handle
        .invalidate_prefix("https://API.example.com/road")
        .await; // not normalized: no match
    f.handle
        .invalidate_prefix("http://api.example.com/road")
        .await;
    send(&f.svc, at("/roadmaps/2")).await;
    assert_eq!(f.seen.calls(), before + 4);
}

#[tokio::test]
async fn a_key_purge_takes_the_vary_variants_along() {
    let f = fixture(|req, n| {
        let accept = req
            .headers()
            .get("accept")
            .map_or("", |v| v.to_str().unwrap());
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept")],
            &format!("{accept} v{n}"),
        ))
    });
    send(&f.svc, get(&[("accept", "a")])).await;
    send(&f.svc, get(&[("accept", "b")])).await;
    let primary = CacheKey::new(&Method::GET, "http://api.example.com/r", None);
    f.handle
        .invalidate(Purge::Key(primary.as_str().to_owned()))
        .await;
    assert_eq!(f.handle.l1_len(), 0);
    let (_, _, body) = send(&f.svc, get(&[("accept", "a")])).await;
    assert_eq!(body, "a v3");
    let (_, _, body) = send(&f.svc, get(&[("accept", "b")])).await;
    assert_eq!(body, "b v4", "not the variant from before the purge");
}
