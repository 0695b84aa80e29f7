//! The PostgreSQL pool and the embedded migrations.

mod pool;

pub use pool::{Db, DbConn, DbTx};

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// The migrations in `migrations/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens a pool on `url` with `max_connections` connections.
///
/// `url` may name several hosts, as libpq does
/// (`postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write`):
/// the pool then connects to the first host that accepts writes, and a
/// background task moves it to the new primary after a failover (see
/// [`follow_primary`]).
pub async fn connect(url: &str, max_connections: u32) -> Result<Db, sqlx::Error> {
    let targets = Targets::parse(url)?;
    let first = targets.pick().await?;
    let pool: Db = pool_options(max_connections, Duration::from_secs(10), targets.read_write)
        .connect_with(first)
        .await?
        .into();
    if targets.hosts.len() > 1 {
        tokio::spawn(follow_primary(pool.clone(), targets));
    }
    Ok(pool)
}

/// A pooled connection idle for longer than this is pinged before it is
/// handed out; one used more recently is handed out as it is.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

fn pool_options(max_connections: u32, acquire: Duration, read_write: bool) -> PgPoolOptions {
    // sqlx pings every connection it takes from the pool by default: a
    // round trip the server logs nowhere, before every query on the pool
    // and every transaction (seven of a card payment's 23 round trips).
    // A connection that was working a second ago is as likely to have died
    // since as one pinged a microsecond ago is to die before its query;
    // either way the query fails and the connection is dropped. Only a
    // connection that sat idle (a quiet node, a database restarted
    // meanwhile) is checked first.
    let options = PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(acquire)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        });
    if !read_write {
        return options;
    }
    // A standby (or a primary being demoted) must never hold one of the
    // pool's connections: writes there fail with 25006, reads are stale.
    options.after_connect(|conn, _| {
        Box::pin(async move {
            if is_read_only(conn).await? {
                return Err(sqlx::Error::Protocol(
                    "server is read-only (target_session_attrs=read-write)".into(),
                ));
            }
            Ok(())
        })
    })
}

async fn is_read_only(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    let value: String = sqlx::query_scalar("SHOW transaction_read_only")
        .fetch_one(conn)
        .await?;
    Ok(value == "on")
}

/// Whether `url` names several hosts (and so needs a primary follower).
pub fn is_multi_host(url: &str) -> bool {
    Targets::parse(url).is_ok_and(|t| t.hosts.len() > 1)
}

/// The hosts of a database URL and what a session there must allow.
#[derive(Debug, Clone)]
pub struct Targets {
    /// One set of connect options per host, in the URL's order.
    pub hosts: Vec<PgConnectOptions>,
    /// `target_session_attrs=read-write`: only a writable server will do.
    pub read_write: bool,
}

impl Targets {
    /// Splits `url`'s host list (`h1:p1,h2:p2`) into one URL per host.
    pub fn parse(url: &str) -> Result<Self, sqlx::Error> {
        let bad = |why: &str| sqlx::Error::Configuration(format!("database URL: {why}").into());
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected postgres://user@host:port/database"))?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        let mut read_write = false;
        let mut kept = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("target_session_attrs", value)) => match value {
                    "read-write" | "primary" => read_write = true,
                    "any" => read_write = false,
                    other => {
                        return Err(bad(&format!(
                            "target_session_attrs={other} is not supported (read-write, primary or any)"
                        )));
                    }
                },
                _ if pair.is_empty() => {}
                _ => kept.push(pair),
            }
        }
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };
        let mut hosts = Vec::new();
        for host in hostlist.split(',') {
            if host.is_empty() {
                return Err(bad("empty host in the host list"));
            }
            let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
            let one: PgConnectOptions = format!("{scheme}://{user}{host}{path}{query}").parse()?;
            // Statement logging would put request data (and, one day, a
            // mistake) in the logs; slow statements are still reported.
            hosts.push(
                one.log_statements(log::LevelFilter::Off)
                    .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1))
                    .application_name("epg"),
            );
        }
        Ok(Self { hosts, read_write })
    }

    /// The first host that answers and, when `read_write`, accepts writes.
    /// With one host, that host unchecked: the pool's own connect says why
    /// it fails.
    pub async fn pick(&self) -> Result<PgConnectOptions, sqlx::Error> {
        if let [only] = self.hosts.as_slice() {
            return Ok(only.clone());
        }
        let mut last = None;
        for host in &self.hosts {
            match self.probe(host).await {
                Ok(true) => return Ok(host.clone()),
                Ok(false) => {}
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            sqlx::Error::Configuration("no host of the database URL accepts writes".into())
        }))
    }

    /// Whether `host` answers (within 2 s) and suits the URL's needs.
    async fn probe(&self, host: &PgConnectOptions) -> Result<bool, sqlx::Error> {
        let attempt = async {
            let mut conn = host.connect().await?;
            let ok = !self.read_write || !is_read_only(&mut conn).await?;
            let _ = conn.close().await;
            Ok::<_, sqlx::Error>(ok)
        };
        tokio::time::timeout(Duration::from_secs(2), attempt)
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }
}

fn same_host(a: &PgConnectOptions, b: &PgConnectOptions) -> bool {
    a.get_host() == b.get_host() && a.get_port() == b.get_port()
}

/// Keeps `pool` on the writable host of `targets`: twice a second it asks
/// the current host whether it still accepts writes; when it does not (it
/// died, or was demoted by the HA engine), the next one that does becomes
/// the pool's host. Requests in the gap fail fast with errors that
/// [`is_unavailable`] recognises. Ends when the pool is closed.
pub async fn follow_primary(pool: Db, targets: Targets) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        tick.tick().await;
        let current = (*pool.connect_options()).clone();
        if matches!(targets.probe(&current).await, Ok(true)) {
            continue;
        }
        for host in &targets.hosts {
            if same_host(host, &current) {
                continue;
            }
            if matches!(targets.probe(host).await, Ok(true)) {
                tracing::warn!(
                    from = %format!("{}:{}", current.get_host(), current.get_port()),
                    to = %format!("{}:{}", host.get_host(), host.get_port()),
                    "database primary moved; reconnecting there"
                );
                pool.set_connect_options(host.clone());
                break;
            }
        }
    }
}

/// Whether `e` is a deadlock (40P01) or a serialization failure (40001).
/// PostgreSQL rolled the whole transaction back, so nothing of it was
/// written and running it again is safe; two transactions that waited on
/// each other's rows lose one of them this way however carefully locks are
/// ordered (two statements of one transaction need not take them in one
/// order).
pub fn is_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "40P01" || c == "40001"))
}

/// Whether `e` means the database cannot serve right now (restarting,
/// failing over, unreachable, or a standby answered) rather than a bug:
/// the API answers these with 503 and `Retry-After`, jobs retry later.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // What sqlx says when the server closes the socket mid-message, and
        // what the read-write check above says.
        sqlx::Error::Protocol(message) => {
            message.contains("read-only")
                || message.contains("connection")
                || message.contains("unexpected end")
                || message.contains("EOF")
        }
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-57P03: admin/crash shutdown,
            // cannot connect now (starting up, in recovery); 25006: a
            // read-only transaction (a standby, or a demoted primary);
            // 53300: too many connections.
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "25006" | "53300")
        }),
        _ => false,
    }
}

/// A second, small pool on the same database as `pool`, for the public
/// routes (checkout streams, the transparency log): however many
/// strangers read, they wait for these few connections and never for the
/// merchants' ones. Connects lazily. With `follow` (a multi-host URL), it
/// follows `pool` to each new primary.
pub fn sibling(pool: &Db, max_connections: u32, follow: bool) -> Db {
    let options = (*pool.connect_options()).clone();
    let sibling: Db = pool_options(max_connections, Duration::from_secs(5), follow)
        .connect_lazy_with(options)
        .into();
    if !follow {
        return sibling;
    }
    let (parent, child) = (pool.clone(), sibling.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        while !parent.is_closed() && !child.is_closed() {
            tick.tick().await;
            let want = parent.connect_options();
            if !same_host(&want, &child.connect_options()) {
                child.set_connect_options((*want).clone());
            }
        }
    });
    sibling
}

/// Applies every pending migration, then gives planner statistics to the
/// tables that never had any ([`analyze_new_tables`]).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await?;
    analyze_new_tables(pool)
        .await
        .map_err(sqlx::migrate::MigrateError::Execute)
}

/// Analyzes every table PostgreSQL has never analyzed (`reltuples < 0`: a
/// new database, or a table a migration just made).
///
/// Such a table is planned as if it had ten pages, whatever it holds. With
/// those guesses the planner found a payment by id through the
/// `(merchant_id, status)` index, reading every payment of the merchant
/// instead of one primary-key entry, in each of the five statements that
/// lock, read or update a payment; on a new node each of them grew with
/// the table until autovacuum's first analyze, a minute or more later
/// (issue 19: 200 to 1,800 buffers per statement within ten seconds of
/// load). An empty table once analyzed is planned from its real size as it
/// grows.
///
/// One connection does it all and is closed at the end rather than given
/// back: a pool closed right after migrating (a test's template database,
/// renamed once nobody is connected) must find no connection of this
/// still on its way back, pinged by sqlx on return.
async fn analyze_new_tables(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND c.reltuples < 0
            AND n.nspname = ANY (current_schemas(false))",
    )
    .fetch_all(&mut *conn)
    .await?;
    for table in tables {
        sqlx::raw_sql(&format!("ANALYZE {table}"))
            .execute(&mut *conn)
            .await?;
    }
    conn.close().await
}

/// A round trip to the database, for readiness checks.
pub async fn ping(pool: &Db) -> Result<(), sqlx::Error> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await
        .map(drop)
}

/// `CREATE DATABASE name` unless it exists (connected to another database
/// of the same server).
pub async fn create_database_if_missing(admin: &Db, name: &str) -> Result<(), sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(admin)
            .await?;
    if !exists {
        // Identifiers cannot be bound as parameters; quote it.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(admin)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_host_list_becomes_one_target_per_host() {
        let t = Targets::parse(
            "postgres://epg:pw@db1:5432,db2:5433/pay?target_session_attrs=read-write&sslmode=prefer",
        )
        .unwrap();
        assert!(t.read_write);
        let hosts: Vec<_> = t
            .hosts
            .iter()
            .map(|h| (h.get_host().to_owned(), h.get_port(), h.get_database()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("db1".to_owned(), 5432, Some("pay")),
                ("db2".to_owned(), 5433, Some("pay"))
            ]
        );
        assert_eq!(t.hosts[1].get_username(), "epg");
    }

    #[test]
    fn one_host_and_no_attrs_is_as_before() {
        let t = Targets::parse("postgres://postgres@127.0.0.1:5432/epg").unwrap();
        assert!(!t.read_write);
        assert_eq!(t.hosts.len(), 1);
        assert!(!is_multi_host("postgres://postgres@127.0.0.1:5432/epg"));
        assert!(is_multi_host("postgres://a:1,b:2/epg"));
    }

    #[test]
    fn unknown_session_attrs_and_empty_hosts_are_refused() {
        let e = Targets::parse("postgres://a:1/epg?target_session_attrs=standby").unwrap_err();
        assert!(
            e.to_string().contains("target_session_attrs=standby"),
            "{e}"
        );
        assert!(Targets::parse("postgres://a:1,,b:2/epg").is_err());
        assert!(Targets::parse("db1:5432").is_err());
    }

    #[test]
    fn connection_loss_and_standbys_mean_unavailable_not_a_bug() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_unavailable(&io));
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("x".into())));
    }
}
