//! Roadmaps: the caller's list, create, read, replace, patch, soft delete, the thrive score, and
//! a roadmap's logs and insights (contract: `shared/docs/protothrive-api.md`, "Endpoints").
//!
//! * Ids in paths are checked to be UUIDs before any statement; anything else is a 404, as is a
//!   roadmap the caller may not see (existence is not leaked). `team` visibility reads as private
//!   until there is a team model; `public` roadmaps are readable by every authenticated user.
//! * Every request is one SQL statement (a refused write adds one read to choose 403 or 404):
//!   related data is built by correlated subqueries and the list total comes from a CTE (`read.rs`,
//!   `repr.rs`). Reads use the reader pool, writes the single writer.
//! * v1 speaks the graph as a JSON string (`json_graph`) and pages by `limit`/`offset`; v2 as an
//!   object (`graph`) and pages by an opaque keyset cursor (`cursor.rs`).
//! * The graph rules are pure functions in `graph.rs`; the body's two validation passes are in
//!   `input.rs`.

mod cursor;
mod graph;
mod input;
mod read;
mod repr;
mod write;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/roadmaps", get(read::list).post(write::create))
        .route(
            "/api/roadmaps/{id}",
            get(read::get_one)
                .put(write::replace)
                .patch(write::patch)
                .delete(write::delete),
        )
        .route("/api/roadmaps/{id}/thrive-score", post(write::thrive_score))
        .route("/api/roadmaps/{id}/logs", get(read::logs))
        .route("/api/roadmaps/{id}/insights", get(read::insights))
        .route_layer(super::user())
}

/// Called by every write that changes what a read of roadmap `id` (or a list page of `owner`)
/// answers. There is no read cache yet: the cache layer will wire its invalidation (the entry of
/// the roadmap, the owner's list pages) into this function. Until then it only counts, so the
/// metric shows how often invalidation will run.
pub fn invalidate_roadmap(_state: &AppState, id: &str, owner: &str) {
    metrics::counter!("protothrive_roadmap_invalidations_total").increment(1);
    tracing::debug!(
        roadmap = id,
        owner,
        "roadmap writes: cached reads to invalidate"
    );
}
