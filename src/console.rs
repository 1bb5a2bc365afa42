//! The migration console: one static page served at `/` on the metrics
//! port, for people who would rather look than curl. It is HTML, CSS and a
//! little JavaScript embedded in the binary (no build step, no CDN, works
//! offline), and it draws itself from `/status` and `/readyz`, which it
//! polls; it holds no figure of its own.

/// The page, as served.
pub const PAGE: &str = include_str!("console/index.html");
