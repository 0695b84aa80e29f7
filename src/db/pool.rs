//! The node's handle on its database: sqlx's pool underneath, with the
//! connection the node used last handed out first and taken back without a
//! round trip.
//!
//! sqlx's pool hands out its idle connections oldest first and pings
//! every connection it takes back. Both cost a busy node: a card payment
//! made six return pings (a send, a wake-up and a switch on both sides
//! for a round trip that does nothing), and oldest-first spreads the
//! statements over every connection of the pool, so each backend runs
//! them on colder caches than a few busy ones would (issue 19's sixth
//! round: pgbench pausing between statements costs the server as much).
//!
//! [`Db`] keeps the connections it has taken from sqlx's pool: a stack of
//! idle ones, newest on top, and a queue of callers waiting for one. A
//! connection finished with goes to the longest-waiting caller, else on
//! top of the stack; without a ping only when what ran on it is known to
//! have ended well (a query through `&Db` that completed, a transaction
//! committed or rolled back). Anything else (an error, a transaction
//! dropped open, a query cancelled halfway, a connection taken with
//! [`Db::acquire`] for arbitrary work) is pinged first, which sends a
//! queued rollback and finds a broken connection, as sqlx's own return
//! does. sqlx's pool stays the factory and the health check: a caller that
//! finds the stack empty waits for a connection handed over, while one
//! task at a time asks sqlx's pool for another (opening one if the pool may
//! grow). A connection parked for [`PING_AFTER_IDLE`] or more is pinged
//! before it is used (the rule `db::pool_options` gives sqlx's own idle
//! connections), and the ones below it go back to sqlx's pool, whose idle timeout
//! closes what a quieter node no longer needs; each connection also goes
//! back there once every [`RECHECK`], for sqlx's lifetime rule.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{TryStreamExt, future::BoxFuture};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Connection, Error, TransactionManager};
use sqlx::{Database, Describe, Either, Execute, Executor, PgConnection, PgPool, Postgres};
use tokio::sync::oneshot;

use super::PING_AFTER_IDLE;

/// A connection taken from sqlx's pool this long ago goes back there on
/// its next return (pinged, and closed if past the pool's maximum
/// lifetime) rather than onto the stack.
const RECHECK: Duration = Duration::from_secs(60);

type Tm = <Postgres as Database>::TransactionManager;

/// The database pool every part of the node shares; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    stack: Mutex<Stack>,
    /// Set by [`Db::close`] before it drains the stack: sqlx's `close`
    /// waits for every connection out of its pool, parked ones included.
    closing: AtomicBool,
    /// Whether a task is asking sqlx's pool for a connection for the
    /// callers waiting ([`Db::grow`]).
    growing: AtomicBool,
}

impl Drop for Inner {
    /// sqlx's pooled connection goes back to its pool by spawning a task on
    /// Tokio, so dropping a parked one where there is no runtime (a `Db`
    /// that outlived its runtime: a test's, a process's at exit) would
    /// panic. There, the parked connections leave the pool and close with
    /// their sockets instead (the server ends their sessions).
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        let stack = self.stack.get_mut().unwrap_or_else(PoisonError::into_inner);
        for parked in stack.idle.drain(..) {
            drop(parked.conn.detach());
        }
    }
}

#[derive(Default)]
struct Stack {
    /// Connections finished with, the most recently used last.
    idle: Vec<Parked>,
    /// Callers waiting for one, the longest-waiting first. `None` tells a
    /// caller to ask sqlx's pool itself: it could not get one for them.
    waiting: VecDeque<oneshot::Sender<Option<Parked>>>,
}

struct Parked {
    conn: PoolConnection<Postgres>,
    since: Instant,
    taken: Instant,
}

enum Popped {
    Fresh(Parked),
    Stale(Parked),
    Wait(oneshot::Receiver<Option<Parked>>),
}

impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                stack: Mutex::new(Stack::default()),
                closing: AtomicBool::new(false),
                growing: AtomicBool::new(false),
            }),
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stack = self.lock();
        f.debug_struct("Db")
            .field("size", &self.inner.pool.size())
            .field("parked", &stack.idle.len())
            .field("waiting", &stack.waiting.len())
            .finish()
    }
}

impl Db {
    /// sqlx's pool underneath, for what needs one (a `LISTEN` connection,
    /// the migrator). Connections taken from it directly bypass the stack.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// A connection for arbitrary work. It is pinged when it comes back:
    /// what was done on it is not known to have ended well.
    pub async fn acquire(&self) -> Result<DbConn, Error> {
        Ok(DbConn(self.checkout().await?))
    }

    /// Starts a transaction on the most recently used connection.
    pub async fn begin(&self) -> Result<DbTx, Error> {
        let mut conn = self.checkout().await?;
        Tm::begin(&mut conn, None).await?;
        Ok(DbTx { conn, open: true })
    }

    /// Whether [`Db::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closing.load(Ordering::SeqCst) || self.inner.pool.is_closed()
    }

    /// Closes every connection, waiting for those in use to come back.
    pub async fn close(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.drain();
        self.inner.pool.close().await;
    }

    /// Connections open, in use or idle, parked ones included.
    pub fn size(&self) -> u32 {
        self.inner.pool.size()
    }

    /// The server new connections go to.
    pub fn connect_options(&self) -> Arc<PgConnectOptions> {
        self.inner.pool.connect_options()
    }

    /// Sends new connections to another server (a failover); parked
    /// connections to the old one go back to sqlx's pool, which pings them
    /// before handing them out again.
    pub fn set_connect_options(&self, options: PgConnectOptions) {
        self.inner.pool.set_connect_options(options);
        self.drain();
    }

    async fn checkout(&self) -> Result<Checkout, Error> {
        let (conn, taken) = self.take().await?;
        Ok(Checkout {
            conn: Some(conn),
            taken,
            clean: false,
            db: self.clone(),
        })
    }

    /// The newest parked connection, or the first one handed over; with
    /// the time it was taken from sqlx's pool.
    async fn take(&self) -> Result<(PoolConnection<Postgres>, Instant), Error> {
        let timeout = self.inner.pool.options().get_acquire_timeout();
        tokio::time::timeout(timeout, async {
            loop {
                if self.is_closed() {
                    return Err(Error::PoolClosed);
                }
                let mut parked = match self.pop() {
                    Popped::Fresh(parked) => return Ok((parked.conn, parked.taken)),
                    Popped::Stale(parked) => parked,
                    Popped::Wait(handover) => {
                        self.grow();
                        match handover.await {
                            Ok(Some(parked)) => parked,
                            // Its error (the database down, say) is the
                            // caller's answer, as soon as sqlx's pool has it.
                            Ok(None) => {
                                return Ok((self.inner.pool.acquire().await?, Instant::now()));
                            }
                            // Dropped unsent by `close`.
                            Err(_) => return Err(Error::PoolClosed),
                        }
                    }
                };
                // A dead one is dropped (sqlx's pool closes it) and the
                // caller asks again.
                if parked.since.elapsed() < PING_AFTER_IDLE || parked.conn.ping().await.is_ok() {
                    return Ok((parked.conn, parked.taken));
                }
            }
        })
        .await
        .map_err(|_| Error::PoolTimedOut)?
    }

    /// The newest parked connection, fresh or not, or a place in the queue
    /// of callers waiting for one. A stale top means everything below it is
    /// stale too: those go back to sqlx's pool.
    fn pop(&self) -> Popped {
        let mut stack = self.lock();
        let Some(top) = stack.idle.pop() else {
            // Callers that timed out left their place behind.
            stack.waiting.retain(|waiter| !waiter.is_closed());
            let (tx, rx) = oneshot::channel();
            stack.waiting.push_back(tx);
            return Popped::Wait(rx);
        };
        if top.since.elapsed() < PING_AFTER_IDLE {
            return Popped::Fresh(top);
        }
        let stale: Vec<Parked> = stack.idle.drain(..).collect();
        drop(stack);
        drop(stale);
        Popped::Stale(top)
    }

    /// Makes sure one task is asking sqlx's pool for connections while
    /// callers wait: it takes an idle one there, or opens one if the pool
    /// may grow, or waits for one to come back to it. Only one, and never
    /// given up halfway: a connection being opened for a caller that got
    /// one handed over meanwhile is parked for the next, not dropped
    /// half-open (dropping them cost the server a backend started and
    /// ended per wait).
    fn grow(&self) {
        if self.inner.growing.swap(true, Ordering::SeqCst) {
            return;
        }
        let db = self.clone();
        tokio::spawn(async move {
            while db.has_waiters() {
                match db.inner.pool.acquire().await {
                    Ok(conn) => db.park(conn, Instant::now()),
                    // Every connection is out and none came back to sqlx's
                    // pool: the callers are served by handovers meanwhile.
                    // Telling them to ask sqlx's pool themselves would have
                    // them wait there for connections that never go back
                    // (the bench's 7 s stalls at 32 connections).
                    Err(Error::PoolTimedOut) => {}
                    Err(_) => {
                        db.release_waiters();
                        break;
                    }
                }
            }
            db.inner.growing.store(false, Ordering::SeqCst);
            // A caller that queued after the last look would have no task
            // asking for it.
            if db.has_waiters() {
                db.grow();
            }
        });
    }

    fn has_waiters(&self) -> bool {
        if self.is_closed() {
            return false;
        }
        let mut stack = self.lock();
        stack.waiting.retain(|waiter| !waiter.is_closed());
        !stack.waiting.is_empty()
    }

    fn park(&self, conn: PoolConnection<Postgres>, taken: Instant) {
        let mut parked = Parked {
            conn,
            since: Instant::now(),
            taken,
        };
        // Checked under the lock that `close`'s drain takes after setting
        // the flag: a connection is either dropped here or drained there.
        let mut stack = self.lock();
        if self.is_closed() {
            return;
        }
        while let Some(waiter) = stack.waiting.pop_front() {
            match waiter.send(Some(parked)) {
                Ok(()) => return,
                // That caller timed out.
                Err(back) => match back {
                    Some(back) => parked = back,
                    None => return,
                },
            }
        }
        stack.idle.push(parked);
    }

    /// Tells every waiting caller to ask sqlx's pool itself, which failed
    /// to give the growing task a connection (the database down, say):
    /// each then gets its own answer at once rather than waiting out its
    /// timeout.
    fn release_waiters(&self) {
        let waiting: Vec<_> = self.lock().waiting.drain(..).collect();
        for waiter in waiting {
            let _ = waiter.send(None);
        }
    }

    /// Takes back a connection whose last use is not known to have ended
    /// well: pinged (which sends a queued rollback and drains a cancelled
    /// query's answer) and parked, or dropped if the ping fails.
    fn settle(&self, mut conn: PoolConnection<Postgres>, taken: Instant) {
        let db = self.clone();
        tokio::spawn(async move {
            if conn.ping().await.is_ok() {
                db.park(conn, taken);
            }
            // Else dropped: sqlx's pool closes it, and its permit lets the
            // growing task open another for whoever waits.
        });
    }

    /// Sends every parked connection back to sqlx's pool. Callers waiting
    /// for one keep waiting unless the pool is closing.
    fn drain(&self) {
        let mut stack = self.lock();
        let idle: Vec<Parked> = stack.idle.drain(..).collect();
        let waiting: Vec<_> = if self.is_closed() {
            stack.waiting.drain(..).collect()
        } else {
            Vec::new()
        };
        drop(stack);
        drop((idle, waiting));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stack> {
        // Nothing panics while the lock is held; were it poisoned, the
        // stack it guards is still whole.
        self.inner
            .stack
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection out of the stack, parked again when it drops: at once if
/// marked clean, after a ping if not.
struct Checkout {
    conn: Option<PoolConnection<Postgres>>,
    taken: Instant,
    clean: bool,
    db: Db,
}

impl std::ops::Deref for Checkout {
    type Target = PgConnection;

    #[allow(clippy::expect_used)] // `conn` is taken only by `drop`
    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("connection present until dropped")
    }
}

impl std::ops::DerefMut for Checkout {
    #[allow(clippy::expect_used)] // `conn` is taken only by `drop`
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("connection present until dropped")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.taken.elapsed() >= RECHECK || self.db.is_closed() {
            // Back to sqlx's pool, which pings it and closes it if broken or
            // past its lifetime. A caller waiting meanwhile already has the
            // growing task asking sqlx's pool (`take` starts it), which
            // this connection reaches.
            drop(conn);
        } else if self.clean {
            self.db.park(conn, self.taken);
        } else {
            self.db.settle(conn, self.taken);
        }
    }
}

/// A connection from [`Db::acquire`].
pub struct DbConn(Checkout);

impl std::fmt::Debug for DbConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConn").finish_non_exhaustive()
    }
}

impl std::ops::Deref for DbConn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.0
    }
}

impl std::ops::DerefMut for DbConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.0
    }
}

/// A transaction on a [`Db`] connection. Dropped without `commit` or
/// `rollback`, it is rolled back (the rollback is queued, and sent by the
/// ping the connection gets on its way back).
pub struct DbTx {
    conn: Checkout,
    open: bool,
}

impl std::fmt::Debug for DbTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTx").field("open", &self.open).finish()
    }
}

impl DbTx {
    /// Commits; the connection is parked for the next caller.
    pub async fn commit(mut self) -> Result<(), Error> {
        Tm::commit(&mut self.conn).await?;
        self.open = false;
        self.conn.clean = true;
        Ok(())
    }

    /// Rolls back; the connection is parked for the next caller.
    pub async fn rollback(mut self) -> Result<(), Error> {
        Tm::rollback(&mut self.conn).await?;
        self.open = false;
        self.conn.clean = true;
        Ok(())
    }
}

impl std::ops::Deref for DbTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for DbTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl Drop for DbTx {
    fn drop(&mut self) {
        if self.open {
            Tm::start_rollback(&mut self.conn);
        }
    }
}

impl<'p> Executor<'p> for &'_ Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let db = self.clone();
        Box::pin(async_stream::try_stream! {
            let mut conn = db.checkout().await?;
            {
                let mut rows = (&mut *conn).fetch_many(query);
                while let Some(row) = rows.try_next().await? {
                    yield row;
                }
            }
            conn.clean = true;
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let db = self.clone();
        Box::pin(async move {
            let mut conn = db.checkout().await?;
            let row = (&mut *conn).fetch_optional(query).await?;
            conn.clean = true;
            Ok(row)
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, Error>>
    where
        'p: 'e,
    {
        let db = self.clone();
        Box::pin(async move {
            let mut conn = db.checkout().await?;
            let statement = (&mut *conn).prepare_with(sql, parameters).await?;
            conn.clean = true;
            Ok(statement)
        })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Postgres>, Error>>
    where
        'p: 'e,
    {
        let db = self.clone();
        Box::pin(async move {
            let mut conn = db.checkout().await?;
            let described = (&mut *conn).describe(sql).await?;
            conn.clean = true;
            Ok(described)
        })
    }
}
