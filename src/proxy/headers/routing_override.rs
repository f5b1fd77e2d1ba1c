//! Headers that make common frameworks route or dispatch differently from
//! the path and method Portcullis judged: `X-Original-URL` and
//! `X-Rewrite-URL` (Symfony, IIS, some Java filters) and the method
//! overrides (Rails, Express `method-override`, Spring, ASP.NET). Removed
//! from every request, in every spelling.

pub const EXACT: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
