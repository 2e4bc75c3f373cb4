//! What the SQL of SQLite and PostgreSQL differs in, in one place: JSON built in SQL, a JSON
//! array of ids as a table, and statements whose text differs ([`Sql`]). (The schema differs
//! too: `schema.sql` and `schema.postgres.sql`; and the migrations' bookkeeping and
//! `Db::begin_write`, in `mod.rs`.)

use std::sync::LazyLock;

use super::Db;

/// Which database a [`Db`] speaks to: what its SQL may differ in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite = 0,
    Postgres = 1,
}

impl Dialect {
    /// Both, in the order [`Sql`] keeps their texts.
    pub const BOTH: [Self; 2] = [Self::Sqlite, Self::Postgres];

    /// The dialect of a database URL: `postgres://` or `postgresql://` is PostgreSQL.
    pub fn of(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::Postgres
        } else {
            Self::Sqlite
        }
    }

    /// A JSON object of `pairs` (`'key', expr, …`), as JSON.
    pub fn object(self, pairs: &str) -> String {
        match self {
            Self::Sqlite => format!("json_object({pairs})"),
            Self::Postgres => format!("json_build_object({pairs})"),
        }
    }

    /// The JSON text in column `expr`, as JSON (not as a string) inside [`Self::object`].
    pub fn json(self, expr: &str) -> String {
        match self {
            Self::Sqlite => format!("json({expr})"),
            Self::Postgres => format!("CAST({expr} AS JSON)"),
        }
    }

    /// A JSON value as text (what the rows carry: both drivers decode text).
    pub fn text(self, json: &str) -> String {
        match self {
            Self::Sqlite => json.to_owned(),
            Self::Postgres => format!("CAST({json} AS TEXT)"),
        }
    }

    /// The aggregate of the JSON values `item` in the order `order` (of the rows of a subquery
    /// that names `item` and the columns of `order`), as JSON text: `[]` when there are none.
    pub fn array(self, item: &str, order: &str) -> String {
        match self {
            // SQLite aggregates in the order of the subquery's rows.
            Self::Sqlite => format!("json_group_array(json({item}))"),
            Self::Postgres => {
                format!("CAST(COALESCE(json_agg({item} ORDER BY {order}), '[]') AS TEXT)")
            }
        }
    }

    /// A table `k` with one text column `value`: the strings of the JSON array bound at `$n`.
    pub fn each(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!("json_each(${n}) k"),
            Self::Postgres => format!("json_array_elements_text(CAST(${n} AS JSON)) AS k(value)"),
        }
    }
}

/// A statement whose text differs between the dialects, built once per dialect on first use.
pub struct Sql(LazyLock<[String; 2]>);

impl Sql {
    /// The texts `build` makes for each dialect (`|| Dialect::BOTH.map(text)`).
    pub const fn new(build: fn() -> [String; 2]) -> Self {
        Self(LazyLock::new(build))
    }

    /// The text for `db`'s dialect.
    pub fn get(&self, db: &Db) -> &str {
        &self.0[db.dialect as usize]
    }
}
