//! CORS, security headers and CSRF as the running API answers them (development origins:
//! `http://localhost:5173` among them).

use crate::api::{Slot, shared, slot};
use crate::support::{client, send};

static SERVER: Slot = slot();

const ALLOWED: &str = "http://localhost:5173";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_and_refusals_carry_cors_headers() {
    let server = shared(&SERVER);
    let url = server.url("/api/v2/roadmaps/00000000-0000-4000-8000-000000000001");
    let options = |origin: &str, method: &str, headers: &str| {
        client()
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
    };

    // (what, origin, method, headers, status)
    let rows = [
        (
            "allowed PUT",
            ALLOWED,
            "PUT",
            "authorization,content-type",
            204,
        ),
        (
            "other port",
            "http://localhost:5174",
            "PUT",
            "content-type",
            403,
        ),
        (
            "suffix trick",
            "http://localhost:5173.evil.net",
            "GET",
            "",
            403,
        ),
        ("unknown method", ALLOWED, "TRACE", "", 403),
        ("unknown header", ALLOWED, "PUT", "x-evil", 403),
    ];
    for (what, origin, method, headers, status) in rows {
        let a = send(options(origin, method, headers)).await;
        assert_eq!(a.status, status, "{what}");
        assert!(a.header("vary").contains("Origin"), "{what}");
        if status == 204 {
            assert_eq!(a.header("access-control-allow-origin"), ALLOWED, "{what}");
            assert_eq!(a.header("access-control-allow-credentials"), "true");
            assert!(a.header("access-control-allow-methods").contains("PUT"));
            assert!(
                a.header("access-control-allow-headers")
                    .contains("authorization")
            );
            assert!(!a.header("access-control-max-age").is_empty());
        } else {
            assert_eq!(a.code(), "CORS-403", "{what}");
            assert_eq!(a.header("access-control-allow-origin"), "", "{what}");
        }
    }

    // A 401 from the auth layer is readable by the allowed origin.
    let a = send(
        client()
            .get(server.url("/api/v2/roadmaps"))
            .header("origin", ALLOWED),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.header("access-control-allow-origin"), ALLOWED);
    assert!(
        a.header("access-control-expose-headers")
            .contains("x-request-id")
    );
    assert!(a.header("vary").contains("Origin"));
    assert_eq!(a.header("x-content-type-options"), "nosniff");

    // OPTIONS without Access-Control-Request-Method is the application's, not a preflight.
    let a = send(
        client()
            .request(reqwest::Method::OPTIONS, server.url("/api/v2/roadmaps"))
            .header("origin", ALLOWED),
    )
    .await;
    assert_ne!(a.status, 204);
    assert_ne!(a.code(), "CORS-403");
}
