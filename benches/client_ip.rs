//! `client_ip`: the pure walk, next to the `client-ip` crate's rightmost-entry extractor, and the
//! layer's cost over a bare inner service.
//!
//! `client-ip` only reads the rightmost `X-Forwarded-For` entry (one trusted proxy, no CIDR list),
//! so the like-for-like row is the 1-hop chain; the 3-hop rows show what walking a trusted chain
//! costs on top.

use std::convert::Infallible;
use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use http::{HeaderMap, HeaderValue, Request};
use protothrive::client_ip::{ClientIp, ClientIpLayer, ForwardingHeader};
use tower::{Layer, ServiceExt, service_fn};

const TRUSTED: [&str; 2] = ["10.0.0.0/8", "2001:db8:ffff::/48"];
const XFF_1_HOP: &str = "203.0.113.66, 198.51.100.7";
const XFF_3_HOPS: &str = "203.0.113.66, 198.51.100.7, 10.0.0.3, 10.0.0.2";
const FORWARDED_3_HOPS: &str =
    "for=203.0.113.66, for=198.51.100.7;proto=https, for=\"[2001:db8:ffff::3]:443\", for=10.0.0.2";

fn layer(header: ForwardingHeader) -> ClientIpLayer {
    let builder = ClientIpLayer::builder().trusted_proxies(TRUSTED);
    match builder.header(header).build() {
        Ok(layer) => layer,
        Err(e) => panic!("{e}"),
    }
}

fn headers(name: &'static str, value: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(name, HeaderValue::from_static(value));
    headers
}

fn walk(c: &mut Criterion) {
    let peer = IpAddr::from([10, 0, 0, 1]);
    let xff = layer(ForwardingHeader::XForwardedFor);
    let fwd = layer(ForwardingHeader::Forwarded);
    let one_hop = headers("x-forwarded-for", XFF_1_HOP);
    let three_hops = headers("x-forwarded-for", XFF_3_HOPS);
    let forwarded = headers("forwarded", FORWARDED_3_HOPS);

    let mut g = c.benchmark_group("client_ip/walk");
    g.throughput(Throughput::Elements(1));
    g.bench_function("protothrive/xff_1_hop", |b| {
        b.iter(|| xff.resolver().resolve(black_box(peer), black_box(&one_hop)));
    });
    g.bench_function("client-ip/rightmost_xff", |b| {
        b.iter(|| client_ip::rightmost_x_forwarded_for(black_box(&one_hop)));
    });
    g.bench_function("protothrive/xff_3_hops", |b| {
        b.iter(|| {
            xff.resolver()
                .resolve(black_box(peer), black_box(&three_hops))
        });
    });
    g.bench_function("protothrive/forwarded_3_hops", |b| {
        b.iter(|| {
            fwd.resolver()
                .resolve(black_box(peer), black_box(&forwarded))
        });
    });
    g.finish();
}

/// Polls a future that the inner service completes at once (no runtime in the measurement).
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the benchmark's inner service is synchronous"),
    }
}

fn request() -> Request<()> {
    let mut req = Request::new(());
    req.headers_mut()
        .insert("x-forwarded-for", HeaderValue::from_static(XFF_3_HOPS));
    req.extensions_mut()
        .insert(SocketAddr::from(([10, 0, 0, 1], 40_000)));
    req
}

fn through_layer(c: &mut Criterion) {
    let inner = service_fn(|req: Request<()>| async move {
        Ok::<_, Infallible>(ClientIp::of(req.extensions()))
    });
    let wrapped = layer(ForwardingHeader::XForwardedFor).layer(inner);

    let mut g = c.benchmark_group("client_ip/layer");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare_inner_service", |b| {
        b.iter_batched(
            request,
            |req| now(inner.oneshot(req)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("protothrive/xff_3_hops", |b| {
        b.iter_batched(
            request,
            |req| now(wrapped.clone().oneshot(req)),
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = walk, through_layer
}
