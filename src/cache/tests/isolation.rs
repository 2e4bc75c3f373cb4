//! Coalesced misses, per-user partitions, cookies and unkeyed-header poisoning.

use super::*;

#[tokio::test(flavor = "current_thread")]
async fn a_hundred_concurrent_misses_make_one_origin_call() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (gate.clone(), calls.clone());
    let inner = BoxCloneService::new(service_fn(move |_req: Request<()>| {
        let (g, c) = (g.clone(), c.clone());
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            let _permit = g.acquire().await.map_err(|e| Box::new(e) as BoxError)?;
            Ok::<_, BoxError>(resp(200, &[("cache-control", "max-age=60")], "shared"))
        }
    }));
    let layer = CacheLayer::builder()
        .clock(Arc::new(ManualClock::default()))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(inner);
    let tasks: Vec<_> = (0..100)
        .map(|_| tokio::spawn(svc.clone().oneshot(get(&[]))))
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    gate.add_permits(1);
    for t in tasks {
        let res = t.await.unwrap().unwrap();
        assert_eq!(
            res.into_body().collect().await.unwrap().to_bytes(),
            "shared"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(handle.stats().collapsed, 99);
}

#[tokio::test]
async fn a_users_private_response_never_reaches_another_user() {
    let f = fixture_with(CacheLayer::builder().partition(by_user), |req, _| {
        let user = req
            .headers()
            .get("x-user")
            .map_or("nobody", |v| v.to_str().unwrap());
        Ok(resp(
            200,
            &[("cache-control", "private, max-age=60")],
            &format!("data of {user}"),
        ))
    });
    let (_, _, a) = send(&f.svc, get(&[("x-user", "alice")])).await;
    let (_, h, a2) = send(&f.svc, get(&[("x-user", "alice")])).await;
    assert_eq!(
        (a, a2.clone()),
        (Bytes::from("data of alice"), Bytes::from("data of alice"))
    );
    assert!(cache_status(&h).starts_with("protothrive; hit"));
    let (_, _, b) = send(&f.svc, get(&[("x-user", "bob")])).await;
    assert_eq!(b, "data of bob");
    let (_, _, anon) = send(&f.svc, get(&[])).await;
    assert_eq!(anon, "data of nobody");
    let (_, _, anon) = send(&f.svc, get(&[])).await;
    assert_eq!(anon, "data of nobody");
    assert_eq!(
        f.seen.calls(),
        4,
        "alice once, bob once, anonymous twice (private: not stored)"
    );
}

#[tokio::test]
async fn set_cookie_is_never_served_from_the_cache() {
    let f = fixture(|_, n| {
        Ok(resp(
            200,
            &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", &format!("session=user{n}")),
            ],
            "page",
        ))
    });
    let (_, h1, _) = send(&f.svc, get(&[])).await;
    let (_, h2, _) = send(&f.svc, get(&[])).await;
    assert_eq!(h1["set-cookie"], "session=user1");
    assert_eq!(h2["set-cookie"], "session=user2");
    assert_eq!(f.seen.calls(), 2);
    assert_eq!(f.handle.l1_len(), 0);
}

#[tokio::test]
async fn x_forwarded_host_cannot_poison_the_cache() {
    let f = fixture(|req, _| {
        let host = req
            .headers()
            .get("x-forwarded-host")
            .or_else(|| req.headers().get("host"))
            .map_or("", |v| v.to_str().unwrap());
        Ok(resp(
            200,
            &[("cache-control", "max-age=60")],
            &format!("<script src=\"https://{host}/app.js\">"),
        ))
    });
    let (_, _, attacker) = send(
        &f.svc,
        get(&[
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "host=evil.example"),
        ]),
    )
    .await;
    assert!(!f.seen.last().contains_key("x-forwarded-host"));
    assert!(!f.seen.last().contains_key("forwarded"));
    let (_, _, victim) = send(&f.svc, get(&[])).await;
    assert_eq!(attacker, victim);
    assert!(!String::from_utf8_lossy(&victim).contains("evil"));
    // Another Host is another key.
    let other = Request::get("/r")
        .header("host", "other.example")
        .body(())
        .unwrap();
    let (_, _, b) = send(&f.svc, other).await;
    assert!(String::from_utf8_lossy(&b).contains("other.example"));
}
