//! A PostgreSQL schema of a test's own, for the tests and benchmarks of the
//! `postgres` storage: they talk to a real server, the one at
//! `FORESIGHT_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`,
//! the local server CI starts).

use postgres::{Client, NoTls};

/// A fresh schema (dropped with the guard) and the URL whose connections
/// use it.
pub struct Schema {
    pub url: String,
    name: String,
    admin: String,
}

impl Schema {
    /// A schema named after `tag`, this process and a counter.
    pub fn new(tag: &str) -> Schema {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("fs_{tag}_{}_{n}", std::process::id());
        let admin = std::env::var("FORESIGHT_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let mut client = Client::connect(&admin, NoTls).unwrap_or_else(|e| {
            panic!(
                "the tests of the PostgreSQL storage need a server: {admin} ({e}); \
                 set FORESIGHT_TEST_POSTGRES to another database's URL"
            )
        });
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .expect("a schema of the test's own");
        let joiner = if admin.contains('?') { '&' } else { '?' };
        Schema {
            url: format!("{admin}{joiner}options=-c%20search_path%3D{name}"),
            name,
            admin,
        }
    }

    /// A connection that does not use the schema (to kill others, say).
    #[allow(dead_code)] // not every file that includes this one needs it
    pub fn admin(&self) -> Client {
        Client::connect(&self.admin, NoTls).expect("the test server")
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&self.admin, NoTls) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
