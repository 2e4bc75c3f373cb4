//! Demo data for development: three users with fixed ids, and a few roadmaps, snippets, agent logs
//! and insights. Seeded once, into an empty database, never in production.

use serde_json::json;

use super::{Db, new_id};
use crate::passwords;

pub const DEMO_USERS: [(&str, &str, &str, &str); 3] = [
    (
        "00000000-0000-4000-8000-000000000001",
        "demo@protothrive.dev",
        "Demo Vibe Coder",
        "vibe_coder",
    ),
    (
        "00000000-0000-4000-8000-000000000002",
        "engineer@protothrive.dev",
        "Demo Engineer",
        "engineer",
    ),
    (
        "00000000-0000-4000-8000-000000000003",
        "admin@protothrive.dev",
        "Demo Admin",
        "super_admin",
    ),
];

/// Seeds the demo data when there are no users yet; returns whether it did.
pub async fn seed(db: &Db, password: &str, now: i64) -> Result<bool, Box<dyn std::error::Error>> {
    let hash = passwords::hash(password).map_err(|e| e.to_string())?;
    // Instances starting together on one PostgreSQL database seed once.
    let mut tx = db.begin_write("seed").await?;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *tx)
        .await?;
    if users > 0 {
        return Ok(false);
    }
    for (id, email, name, role) in DEMO_USERS {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, name, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(email)
        .bind(&hash)
        .bind(name)
        .bind(role)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let roadmaps = [
        (
            DEMO_USERS[0].0,
            "Launch a landing page",
            "active",
            "public",
            0.72,
        ),
        (
            DEMO_USERS[0].0,
            "Auth for the side project",
            "draft",
            "private",
            0.35,
        ),
        (
            DEMO_USERS[1].0,
            "Migrate the API to Rust",
            "active",
            "team",
            0.81,
        ),
        (
            DEMO_USERS[1].0,
            "Observability rollout",
            "completed",
            "private",
            0.93,
        ),
    ];
    for (i, (owner, title, status, visibility, score)) in roadmaps.into_iter().enumerate() {
        let id = new_id();
        let graph = json!({
            "nodes": [
                {"id": "n1", "label": "Plan"}, {"id": "n2", "label": "Build"}, {"id": "n3", "label": "Ship"}
            ],
            "edges": [{"from": "n1", "to": "n2"}, {"from": "n2", "to": "n3"}]
        });
        let at = now - 3600 * (10 - i64::try_from(i).unwrap_or(0));
        sqlx::query(
            "INSERT INTO roadmaps (id, user_id, title, description, json_graph, status, vibe_mode, thrive_score, visibility, tags, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(owner)
        .bind(title)
        .bind(format!("Demo roadmap: {title}"))
        .bind(graph.to_string())
        .bind(status)
        .bind(i64::from(i % 2 == 0))
        .bind(score)
        .bind(visibility)
        .bind(json!(["demo"]).to_string())
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        for (j, (task, st, cost)) in [
            ("plan", "success", 0.012),
            ("codegen", "success", 0.054),
            ("review", "fail", 0.008),
        ]
        .into_iter()
        .enumerate()
        {
            sqlx::query(
                "INSERT INTO agent_logs (id, roadmap_id, task_type, output, status, model_used, token_count, cost_usd, duration_ms, timestamp) \
                 VALUES ($1, $2, $3, $4, $5, 'sim-1', $6, $7, $8, $9)",
            )
            .bind(new_id())
            .bind(&id)
            .bind(task)
            .bind(format!("{task} output"))
            .bind(st)
            .bind(400 + i64::try_from(j).unwrap_or(0) * 150)
            .bind(cost)
            .bind(900 + i64::try_from(j).unwrap_or(0) * 300)
            .bind(at + i64::try_from(j).unwrap_or(0) * 60)
            .execute(&mut *tx)
            .await?;
        }
        for (kind, trend, s) in [("quality", "improving", score), ("cost", "stable", 0.5)] {
            sqlx::query(
                "INSERT INTO insights (id, roadmap_id, type, data, score, trend, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(new_id())
            .bind(&id)
            .bind(kind)
            .bind(json!({"source": "seed"}).to_string())
            .bind(s)
            .bind(trend)
            .bind(at + 600)
            .execute(&mut *tx)
            .await?;
        }
    }
    let snippets = [
        (
            "ui",
            "Responsive hero section",
            "tsx",
            "export const Hero = () => <section className=\"hero\" />;",
        ),
        (
            "ui",
            "Dark mode toggle",
            "tsx",
            "export const Toggle = () => <button>Toggle</button>;",
        ),
        (
            "auth",
            "JWT middleware with protothrive",
            "rust",
            "ServiceBuilder::new().layer(AuthLayer::new(auth))",
        ),
        (
            "auth",
            "Password strength check",
            "ts",
            "export const strong = (p: string) => p.length >= 12;",
        ),
        (
            "deploy",
            "Dockerfile for a Rust API",
            "dockerfile",
            "FROM rust:1 AS build\nRUN cargo build --release",
        ),
        (
            "deploy",
            "Health check probe",
            "yaml",
            "livenessProbe:\n  httpGet: { path: /api/v1/health/live, port: 8787 }",
        ),
    ];
    for (category, title, language, code) in snippets {
        sqlx::query(
            "INSERT INTO snippets (id, category, title, code, language, version, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(category)
        .bind(title)
        .bind(code)
        .bind(language)
        .bind(DEMO_USERS[1].0)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}
