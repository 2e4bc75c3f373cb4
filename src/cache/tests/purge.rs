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

/// An origin whose first answer waits until `release` fires, counting calls.
fn held_origin(release: Arc<tokio::sync::Notify>, asked: Arc<tokio::sync::Notify>) -> (Svc, Seen) {
    let seen = Seen::default();
    let s = seen.clone();
    let svc = service_fn(move |_req: Request<()>| {
        let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let (release, asked) = (release.clone(), asked.clone());
        async move {
            if n == 1 {
                asked.notify_one();
                release.notified().await;
            }
            Ok::<_, BoxError>(resp(
                200,
                &[("cache-control", "max-age=60"), ("surrogate-key", "t")],
                &format!("v{n}"),
            ))
        }
    });
    (BoxCloneService::new(svc), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_fetched_across_a_purge_is_not_stored() {
    for tier in [false, true] {
        let (release, asked) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let mut builder = CacheLayer::builder().clock(Arc::new(ManualClock::default()));
        if tier {
            builder = builder.tier(Arc::new(MemoryTier::default()));
        }
        let layer = builder.build().unwrap();
        let handle = layer.handle();
        let (origin, seen) = held_origin(release.clone(), asked.clone());
        let svc = layer.layer(origin);
        // A read asks the origin (which read the old data) ...
        let reader = tokio::spawn(svc.clone().oneshot(get(&[])));
        asked.notified().await;
        // ... a write purges meanwhile ...
        handle.invalidate(Purge::Tag("t".into())).await;
        release.notify_one();
        let body = reader.await.unwrap().unwrap().into_body().collect().await;
        assert_eq!(body.unwrap().to_bytes(), "v1", "the reader gets its answer");
        // ... and the old answer is not what the next read gets.
        let (_, _, body) = send(&svc, get(&[])).await;
        assert_eq!(body, "v2", "tier: {tier}");
        assert_eq!(seen.calls(), 2);
        // Unrelated purges do not stop storing.
        handle.invalidate(Purge::Tag("other".into())).await;
        let (_, h, body) = send(&svc, get(&[])).await;
        assert_eq!(body, "v2");
        assert!(cache_status(&h).contains("hit"), "{}", cache_status(&h));
    }
}
