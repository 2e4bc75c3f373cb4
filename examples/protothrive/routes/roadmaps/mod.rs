//! Roadmaps: the caller's list, create, read, replace, patch, soft delete, the thrive score, and
//! a roadmap's logs and insights (contract: `shared/docs/protothrive-api.md`, "Endpoints").
//!
//! * Ids in paths are checked to be UUIDs before any statement; anything else is a 404, as is a
//!   roadmap the caller may not see (existence is not leaked). `team` visibility reads as private
//!   until there is a team model; `public` roadmaps are readable by every authenticated user.
//! * Every request is at most two SQL statements: one for its rows (the list total comes from a
//!   CTE; a write's answer from its `RETURNING`) and one batch of the request's loader for the
//!   nested data of all of them — owner, log count, latest insight, and in the detail view the
//!   recent logs and insights (`repr.rs`, `crate::loaders`). A refused write costs one read to
//!   choose 403 or 404 instead. Reads use the reader pool, writes the single writer.
//! * v1 speaks the graph as a JSON string (`json_graph`) and pages by `limit`/`offset`; v2 as an
//!   object (`graph`) and pages by an opaque keyset cursor (`cursor.rs`).
//! * The graph rules are pure functions in `graph.rs`; the body's two validation passes are in
//!   `input.rs`.

pub mod cursor;
mod graph;
mod input;
mod read;
mod repr;
mod write;

use crate::cache;
use crate::state::AppState;

use super::table::{
    Route,
    Who::{Owner, User},
    Wrap, ep,
};

pub fn routes() -> Vec<Route> {
    use crate::routes::docs::{PAGE, ROADMAP_FILTERS, roadmap_patch_schema, roadmap_schema};
    // The cache inside the owner check: nothing cached reaches an anonymous caller. Every roadmap
    // read is the caller's own (partitioned by subject); PUT, PATCH and DELETE also purge their
    // URI by RFC 9111 §4.4, and the handlers purge the tags of everything they change.
    let cached: Wrap = |r, state| r.route_layer(cache::cached(state));
    vec![
        Route::to(
            ep(
                "GET",
                "/api/roadmaps",
                "The caller's roadmaps with owner, log count and latest insight",
                User,
                "roadmaps",
            )
            .query(ROADMAP_FILTERS),
            read::list,
        ),
        Route::to(
            ep(
                "POST",
                "/api/roadmaps",
                "Create a roadmap (the graph is validated)",
                User,
                "roadmaps",
            )
            .body(roadmap_schema)
            .created(),
            write::create,
        ),
        Route::to(
            ep(
                "GET",
                "/api/roadmaps/{id}",
                "One roadmap with owner, log count, latest insight, recent logs and insights",
                Owner,
                "roadmaps",
            ),
            read::get_one,
        ),
        Route::to(
            ep(
                "PUT",
                "/api/roadmaps/{id}",
                "Replace a roadmap",
                Owner,
                "roadmaps",
            )
            .body(roadmap_schema),
            write::replace,
        ),
        Route::to(
            ep(
                "PATCH",
                "/api/roadmaps/{id}",
                "Update part of a roadmap (an empty update is 422)",
                Owner,
                "roadmaps",
            )
            .body(roadmap_patch_schema),
            write::patch,
        ),
        Route::to(
            ep(
                "DELETE",
                "/api/roadmaps/{id}",
                "Soft-delete a roadmap",
                Owner,
                "roadmaps",
            )
            .no_content(),
            write::delete,
        ),
        Route::to(
            ep(
                "POST",
                "/api/roadmaps/{id}/thrive-score",
                "Recompute the thrive score from insights",
                Owner,
                "roadmaps",
            ),
            write::thrive_score,
        ),
        Route::to(
            ep(
                "GET",
                "/api/roadmaps/{id}/logs",
                "A roadmap's agent logs",
                Owner,
                "roadmaps",
            )
            .query(PAGE),
            read::logs,
        ),
        Route::to(
            ep(
                "GET",
                "/api/roadmaps/{id}/insights",
                "A roadmap's insights",
                Owner,
                "roadmaps",
            )
            .query(PAGE),
            read::insights,
        ),
    ]
    .into_iter()
    .map(|route| route.wrap(cached))
    .collect()
}

/// The tags of what a write of roadmap `id` (or a list page of `owner`) changes: the roadmap's
/// reads (its entry, its logs and insights, and every list page it is on), the owner's list pages
/// and the dashboard.
fn tags(id: &str, owner: &str) -> [String; 3] {
    [
        format!("roadmap:{id}"),
        format!("roadmaps:{owner}"),
        "dashboard".to_owned(),
    ]
}

/// Called by every write that changes what a read of roadmap `id` (or a list page of `owner`)
/// answers and does not hand the cache its new state (`write::through`), before the write
/// answers: purges [`tags`] in every tier and on every instance.
pub async fn invalidate_roadmap(state: &AppState, id: &str, owner: &str) {
    metrics::counter!("protothrive_roadmap_invalidations_total").increment(1);
    cache::purge(state, &tags(id, owner)).await;
}
