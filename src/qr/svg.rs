//! A [`QrCode`] as an SVG image: one path of unit squares on a white
//! background with the four-module quiet zone readers need.

use std::fmt::Write;

use super::QrCode;

/// Light modules around the symbol.
const QUIET_ZONE: usize = 4;

/// The SVG document of `code`, `title` as its accessible name.
pub fn to_svg(code: &QrCode, title: &str) -> String {
    let side = code.size() + 2 * QUIET_ZONE;
    let mut path = String::new();
    for y in 0..code.size() {
        for x in 0..code.size() {
            if code.is_dark(x, y) {
                // Infallible: writing to a String.
                let _ = write!(path, "M{} {}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE);
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\" role=\"img\"><title>{}</title>\
         <rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>",
        escape(title)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
