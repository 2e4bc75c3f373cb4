//! `HEAD`, the L2 tier, builder errors, bodies past the limit, and the encoding's properties.

use super::*;

#[tokio::test]
async fn head_is_answered_from_a_stored_get() {
    let f = fixture(|_, _| Ok(resp(200, &[("cache-control", "max-age=60")], "body")));
    send(&f.svc, get(&[])).await;
    let head = Request::head("/r")
        .header("host", "api.example.com")
        .body(())
        .unwrap();
    let (code, h, body) = send(&f.svc, head).await;
    assert_eq!((code, body.len()), (StatusCode::OK, 0));
    assert!(cache_status(&h).starts_with("protothrive; hit"));
    assert_eq!(f.seen.calls(), 1);
}

#[tokio::test]
async fn the_l2_tier_is_filled_and_promotes_to_a_new_l1() {
    let tier = Arc::new(MemoryTier::default());
    let make = |tier: Arc<MemoryTier>| {
        fixture_with(
            CacheLayer::builder().tier(tier).partition(by_user),
            |req, _| {
                let user = req
                    .headers()
                    .get("x-user")
                    .map_or("nobody", |v| v.to_str().unwrap());
                Ok(resp(
                    200,
                    &[
                        ("cache-control", "max-age=60, stale-if-error=30"),
                        ("vary", "accept"),
                    ],
                    &format!("for {user}"),
                ))
            },
        )
    };
    let one = make(tier.clone());
    send(&one.svc, get(&[("x-user", "alice")])).await;
    assert_eq!(tier.len(), 2, "the Vary marker and the variant");
    let key = CacheKey::new(&Method::GET, "http://api.example.com/r", Some("alice"));
    let variant = key.with_vary(&["accept".parse().unwrap()], &HeaderMap::new());
    assert_eq!(tier.ttl(variant.as_str()), Some(Duration::from_secs(90)));
    assert_eq!(
        tier.ttl(key.as_str()),
        Some(Duration::from_secs(90)),
        "the Vary marker too"
    );
    let two = make(tier.clone());
    let (_, h, body) = send(&two.svc, get(&[("x-user", "alice")])).await;
    assert_eq!(body, "for alice");
    assert!(cache_status(&h).starts_with("protothrive; hit"));
    assert_eq!(two.seen.calls(), 0);
    let (_, _, body) = send(&two.svc, get(&[("x-user", "bob")])).await;
    assert_eq!(body, "for bob");
    assert_eq!(two.seen.calls(), 1);
    two.handle.invalidate_uri("/r").await;
    assert!(tier.is_empty());
}

#[test]
fn builder_errors_say_how_to_fix() {
    let e = CacheLayer::builder().max_bytes(0).build().unwrap_err();
    assert!(e.message().contains("max_bytes"));
    let e = CacheLayer::builder().scheme("ftp").build().unwrap_err();
    assert!(e.message().contains("https"));
    let e = CacheLayer::builder()
        .unkeyed_headers(["bad header"])
        .build()
        .unwrap_err();
    assert!(e.message().contains("bad header"));
}

/// A body of several chunks that does not say its size.
struct Chunks(std::collections::VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }
}

use std::convert::Infallible;

#[tokio::test]
async fn a_body_past_the_limit_streams_through_whole_and_unstored() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = service_fn(move |_req: Request<()>| {
        c.fetch_add(1, Ordering::SeqCst);
        let chunks = ["abc", "defg", "hij", "k"]
            .map(|s: &str| Bytes::copy_from_slice(s.as_bytes()))
            .into_iter()
            .collect();
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=60")
                    .body(Chunks(chunks))
                    .unwrap(),
            )
        }
    });
    for (max, stored) in [(5, false), (11, true)] {
        let layer = CacheLayer::builder().max_body(max).build().unwrap();
        let svc = layer.layer(inner.clone());
        for _ in 0..2 {
            let res = svc.clone().oneshot(get(&[])).await.unwrap();
            assert_eq!(
                res.into_body().collect().await.unwrap().to_bytes(),
                "abcdefghijk"
            );
        }
        assert_eq!(
            layer.handle().stats().stored,
            u64::from(stored),
            "max {max}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_one_byte_l1_leaves_everything_to_the_tier() {
    let tier = Arc::new(MemoryTier::default());
    let f = fixture_with(
        CacheLayer::builder().max_bytes(1).tier(tier.clone()),
        |_, _| {
            Ok(resp(
                200,
                &[("cache-control", "max-age=60")],
                "from the origin",
            ))
        },
    );
    send(&f.svc, get(&[])).await;
    let (_, h, body) = send(&f.svc, get(&[])).await;
    assert_eq!(body, "from the origin");
    assert!(cache_status(&h).starts_with("protothrive; hit"));
    assert_eq!((f.seen.calls(), f.handle.l1_len(), tier.len()), (1, 0, 1));
}

proptest::proptest! {
    /// What an L2 tier stores reads back as it was written.
    #[test]
    fn stored_responses_round_trip_through_the_encoding(
        status in 200u16..600,
        headers in proptest::collection::vec(("[a-z][a-z0-9-]{0,12}", "[ -~]{0,24}"), 0..8),
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        tags in proptest::collection::vec("[a-z0-9:_-]{1,10}", 0..4),
        secs in 0u64..4_000_000_000,
        partition in proptest::bool::ANY,
    ) {
        let mut h = HeaderMap::new();
        for (n, v) in &headers {
            h.append(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), v.trim().parse().unwrap());
        }
        let t = std::time::UNIX_EPOCH + Duration::from_secs(secs);
        let scope = if partition { Scope::Partition } else { Scope::Shared };
        let stored = StoredResponse::new(StatusCode::from_u16(status).unwrap(), h, Bytes::from(body), t, t, scope)
            .with_tags(tags);
        let entry = CacheEntry::Response(Arc::new(stored.clone()));
        let Some(CacheEntry::Response(back)) = CacheEntry::decode(&entry.encode()) else {
            panic!("did not decode");
        };
        proptest::prop_assert_eq!(back.status(), stored.status());
        proptest::prop_assert_eq!(back.headers(), stored.headers());
        proptest::prop_assert_eq!(back.body(), stored.body());
        proptest::prop_assert_eq!(back.tags(), stored.tags());
        proptest::prop_assert_eq!(back.lifetime(), stored.lifetime());
        proptest::prop_assert_eq!(back.scope(), stored.scope());
        proptest::prop_assert_eq!(back.age(t), stored.age(t));
    }
}

proptest::proptest! {
    /// Whatever an L2 tier hands back, decoding never panics.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = CacheEntry::decode(&bytes);
        let mut tagged = vec![b'R', 1];
        tagged.extend_from_slice(&bytes);
        let _ = CacheEntry::decode(&tagged);
    }
}

#[tokio::test]
async fn a_miss_asks_the_tier_once() {
    let tier = Arc::new(MemoryTier::default());
    let f = fixture_with(CacheLayer::builder().tier(tier.clone()), |_, _| {
        Ok(resp(200, &[("cache-control", "max-age=60")], "x"))
    });
    send(&f.svc, get(&[])).await;
    assert_eq!(tier.calls(), 2, "one get, one put");
    send(&f.svc, get(&[])).await;
    assert_eq!(tier.calls(), 2, "an L1 hit never reaches the tier");
}

#[tokio::test(flavor = "current_thread")]
async fn an_uncacheable_uri_is_neither_coalesced_nor_asked_of_the_tier() {
    let tier = Arc::new(MemoryTier::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (gate.clone(), calls.clone());
    let inner = BoxCloneService::new(service_fn(move |req: Request<()>| {
        let (g, c) = (g.clone(), c.clone());
        async move {
            let n = c.fetch_add(1, Ordering::SeqCst);
            if n > 0 {
                let _permit = g.acquire().await.map_err(|e| Box::new(e) as BoxError)?;
            }
            let cc = if req.headers().contains_key("x-cacheable") {
                "max-age=60"
            } else {
                "no-store"
            };
            Ok::<_, BoxError>(resp(200, &[("cache-control", cc)], "x"))
        }
    }));
    let clock = ManualClock::default();
    let layer = CacheLayer::builder()
        .tier(tier.clone())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let svc = layer.layer(inner);
    // The first answer says no-store: the key is remembered as pass.
    svc.clone().oneshot(get(&[])).await.unwrap();
    let tier_calls = tier.calls();
    let tasks: Vec<_> = (0..10)
        .map(|_| tokio::spawn(svc.clone().oneshot(get(&[]))))
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        11,
        "all ten reached the origin at once"
    );
    assert_eq!(tier.calls(), tier_calls, "and none asked the tier");
    gate.add_permits(10);
    for t in tasks {
        let res = t.await.unwrap().unwrap();
        assert_eq!(
            res.headers()["cache-status"],
            "protothrive; fwd=uri-miss; fwd-status=200"
        );
    }
    // Once the response is storable again, it is stored and the pass ends.
    gate.add_permits(10);
    svc.clone()
        .oneshot(get(&[("x-cacheable", "1")]))
        .await
        .unwrap();
    let res = svc.clone().oneshot(get(&[])).await.unwrap();
    assert!(
        res.headers()["cache-status"]
            .to_str()
            .unwrap()
            .starts_with("protothrive; hit")
    );
}

/// An inner service that counts its clones.
struct Counted {
    svc: Svc,
    clones: Arc<AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Self {
            svc: self.svc.clone(),
            clones: self.clones.clone(),
        }
    }
}

impl tower::Service<Request<()>> for Counted {
    type Response = Res;
    type Error = BoxError;
    type Future = <Svc as tower::Service<Request<()>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.svc.poll_ready(cx)
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        self.svc.call(req)
    }
}

#[tokio::test]
async fn a_fresh_l1_hit_is_ready_at_once_without_calling_or_cloning_the_origin() {
    use std::future::Future;
    use tower::Service;
    let (svc, seen) = origin(|_, _| Ok(resp(200, &[("cache-control", "max-age=60")], "x")));
    let clones = Arc::new(AtomicUsize::new(0));
    let layer = CacheLayer::builder()
        .clock(Arc::new(ManualClock::default()))
        .build()
        .unwrap();
    let mut svc = layer.layer(Counted {
        svc,
        clones: clones.clone(),
    });
    let first = svc.ready().await.unwrap().call(get(&[])).await.unwrap();
    assert!(cache_status(first.headers()).contains("stored"));
    let after_miss = clones.load(Ordering::SeqCst);
    assert!(after_miss >= 1, "a miss calls the origin through a clone");

    let mut future = std::pin::pin!(svc.ready().await.unwrap().call(get(&[])));
    let waker = std::task::Waker::noop();
    let std::task::Poll::Ready(Ok(hit)) = future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    else {
        panic!("a fresh hit is answered on the first poll");
    };
    assert_eq!(cache_status(hit.headers()), "protothrive; hit; ttl=60");
    assert_eq!(hit.headers()["age"], "0");
    assert_eq!(seen.calls(), 1, "the origin is not asked again");
    assert_eq!(
        clones.load(Ordering::SeqCst),
        after_miss,
        "nor cloned to be called"
    );
}
