//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds
//! them at compile time but does not tell Cargo to watch the folder, so an
//! edited or renumbered migration would otherwise ship stale.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
