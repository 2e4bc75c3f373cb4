//! Users: accounts, logins with lockout, profiles, the role behind a token.

use sqlx::AnyConnection;

use super::{Counted, Db};

/// id, email, name, role, created, updated, last login.
pub type UserRow = (String, String, String, String, i64, i64, Option<i64>);

const USER_COLUMNS: &str = "id, email, name, role, created_at, updated_at, last_login";

/// What a login checks: id, password hash, failures so far, locked until.
pub type LoginRow = (String, String, i64, Option<i64>);

/// Inserts a `vibe_coder` account on `tx`; `false` when the email is taken (whatever its case).
pub async fn insert(
    tx: &mut AnyConnection,
    id: &str,
    email: &str,
    password_hash: &str,
    name: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash, name, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'vibe_coder', $5, $6) ON CONFLICT(email) DO NOTHING",
    )
    .bind(id)
    .bind(email)
    .bind(password_hash)
    .bind(name)
    .bind(now)
    .bind(now)
    .execute(Counted(tx))
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The live account with `email` (compared without case), as a login sees it.
pub async fn for_login(db: &Db, email: &str) -> Result<Option<LoginRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, password_hash, failed_logins, locked_until FROM users \
         WHERE email = $1 AND deleted_at IS NULL",
    )
    .bind(email)
    .fetch_optional(db.reader())
    .await
}

/// Counts a failed login and locks the account for `lock_seconds` at the `max`-th: one statement
/// on the writer, so parallel wrong guesses each count, whatever the read before saw.
pub async fn count_failure(
    db: &Db,
    id: &str,
    max: i64,
    lock_until: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET \
         failed_logins = CASE WHEN failed_logins + 1 >= $1 THEN 0 ELSE failed_logins + 1 END, \
         locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END \
         WHERE id = $3",
    )
    .bind(max)
    .bind(lock_until)
    .bind(id)
    .execute(db.writer())
    .await
    .map(drop)
}

/// Records a successful login on `tx` — only if no parallel failure has locked the account since
/// the read before — and returns the profile.
pub async fn logged_in(
    tx: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login = $1 \
         WHERE id = $2 AND (locked_until IS NULL OR locked_until <= $1) RETURNING {USER_COLUMNS}"
    ))
    .bind(now)
    .bind(id)
    .fetch_optional(Counted(tx))
    .await
}

/// Whether the account `id` is live, on `tx`.
pub async fn is_live(tx: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let live: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(Counted(tx))
            .await?;
    Ok(live.is_some())
}

/// The live account `id`'s profile.
pub async fn profile(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(db.reader())
    .await
}

/// The live account `id`'s role (authentication: not counted for the request).
pub async fn role(db: &Db, id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT role FROM users WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .fetch_optional(&db.read)
        .await
}
