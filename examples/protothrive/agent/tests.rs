use protothrive::clock::ManualClock;

use super::*;

fn task() -> AgentRequest {
    AgentRequest {
        task_type: "plan".into(),
        roadmap_id: "r".into(),
        prompt: "p".into(),
        budget_usd: 1.0,
    }
}

async fn client(failure_rate: f64, clock: &ManualClock) -> (AgentClient, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let sim = Sim {
        latency: Duration::ZERO,
        failure_rate,
        calls: calls.clone(),
        ..Sim::default()
    };
    let url = spawn_sim(sim).await.unwrap();
    let clock: SharedClock = Arc::new(clock.clone());
    let client = AgentClient::new(&url, reqwest::Client::new(), &clock, Bounds::default()).unwrap();
    (client, calls)
}

/// Every attempt continues the trace of the request being served, as a span of its own.
#[tokio::test]
async fn attempts_carry_the_callers_trace_with_a_new_span_each() {
    use protothrive::trace::{TraceLayer, TraceParent, to_hex};
    use tower::Layer;
    let clock = ManualClock::default();
    let traceparents = Arc::<std::sync::Mutex<Vec<String>>>::default();
    let sim = Sim {
        latency: Duration::ZERO,
        // Calls 0, 2, ... succeed: the second run needs two attempts.
        failure_rate: 0.5,
        traceparents: traceparents.clone(),
        ..Sim::default()
    };
    let url = spawn_sim(sim).await.unwrap();
    let shared: SharedClock = Arc::new(clock.clone());
    let client =
        AgentClient::new(&url, reqwest::Client::new(), &shared, Bounds::default()).unwrap();
    let handler = TraceLayer::new().layer(service_fn(move |_req: http::Request<()>| {
        let client = client.clone();
        async move {
            client.run(&task()).await;
            client.run(&task()).await;
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        }
    }));
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = http::Request::builder()
        .header("traceparent", caller)
        .body(())
        .unwrap();
    let res = handler.oneshot(req).await.unwrap();
    let server_span = TraceParent::parse(res.headers()["traceparent"].as_bytes()).unwrap();
    let seen: Vec<TraceParent> = traceparents
        .lock()
        .unwrap()
        .iter()
        .map(|t| TraceParent::parse(t.as_bytes()).unwrap())
        .collect();
    assert_eq!(seen.len(), 3, "one run of one attempt, one of two");
    for tp in &seen {
        assert_eq!(to_hex(&tp.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            tp.parent_id, server_span.parent_id,
            "a client span, not the server's"
        );
    }
    let mut ids: Vec<_> = seen.iter().map(|t| t.parent_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "a new span id per attempt");
}

#[tokio::test]
async fn a_failed_attempt_is_retried_and_logged() {
    let clock = ManualClock::default();
    // Calls 0, 2, 4, ... succeed; 1, 3, ... fail.
    let (client, calls) = client(0.5, &clock).await;
    let first = client.run(&task()).await.result.unwrap();
    assert_eq!(first.model, "sim-agent-1");
    assert!(
        first.output.starts_with("[plan] plan for roadmap r: step "),
        "{first:?}"
    );
    let run = client.run(&task()).await;
    let statuses: Vec<_> = run.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [AttemptStatus::Error, AttemptStatus::Success]);
    assert_eq!(run.attempts[1].agent, "sim-agent-1");
    assert_eq!(run.attempts[1].number, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failing_service_opens_the_breaker_and_is_not_called_while_open() {
    let clock = ManualClock::default();
    let (client, calls) = client(1.0, &clock).await;
    for _ in 0..3 {
        let run = client.run(&task()).await;
        assert_eq!(run.attempts.len(), 3);
    }
    // The 10th call opens the breaker: its retry is refused.
    let run = client.run(&task()).await;
    assert_eq!(run.attempts.len(), 1);
    match run.result {
        Err(RunError::Failed { message, .. }) => {
            assert!(message.ends_with("then the circuit opened"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    let run = client.run(&task()).await;
    assert!(matches!(
        run.result,
        Err(RunError::Open { retry_after }) if retry_after == Duration::from_secs(10)
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 10, "not called while open");
}
