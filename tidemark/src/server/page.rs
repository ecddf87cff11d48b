//! The live page at `/` and its assets, compiled into the binary so the demo needs no files
//! beside it. uPlot is vendored from npm with its license (`assets/vendor/uplot/`), and the
//! OpenAPI description is served from `docs/openapi.yaml` so clients can fetch the contract
//! the server is tested against.

use warp::Filter;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use warp::reply::Response;

/// Every embedded file: URL path, content type, bytes.
const ASSETS: [(&str, &str, &str); 5] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    ("style.css", "text/css; charset=utf-8", include_str!("assets/style.css")),
    (
        "vendor/uplot/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "vendor/uplot/uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("assets/vendor/uplot/uPlot.min.css"),
    ),
    (
        "vendor/uplot/LICENSE",
        "text/plain; charset=utf-8",
        include_str!("assets/vendor/uplot/LICENSE"),
    ),
];

const INDEX: &str = include_str!("assets/index.html");
const OPENAPI: &str = include_str!("../../../docs/openapi.yaml");

fn reply(content_type: &'static str, body: &'static str) -> Response {
    let mut response = Response::new(body.into());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, content_type.parse().expect("valid header"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, "no-cache".parse().expect("valid header"));
    response
}

/// `GET /`, `GET /assets/…` and `GET /api/v1/openapi.yaml`.
pub fn routes() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let index = warp::path::end()
        .and(warp::get())
        .map(|| reply("text/html; charset=utf-8", INDEX));
    let openapi = warp::path!("api" / "v1" / "openapi.yaml")
        .and(warp::get())
        .map(|| reply("application/yaml; charset=utf-8", OPENAPI));
    let assets = warp::path("assets")
        .and(warp::path::tail())
        .and(warp::get())
        .and_then(|tail: warp::path::Tail| async move { asset(tail.as_str()).ok_or_else(warp::reject::not_found) });
    index.or(openapi).unify().or(assets).unify()
}

fn asset(path: &str) -> Option<Response> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, content_type, body)| reply(content_type, body))
}
