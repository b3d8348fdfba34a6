//! The links account mails carry: which client URLs an allow list admits
//! (Directus: `api/src/utils/is-url-allowed.ts`) and how a token is put into a link
//! (`api/src/utils/url.ts`, `Url.setQuery`/`addPath`); where an SSO login may send the browser
//! afterwards (`api/src/auth/utils/resolve-login-redirect.ts`).

/// The dummy origin Directus resolves relative redirects against.
const DUMMY_ORIGIN: &str = "http://dummy.local";

/// Validates an SSO login's `redirect` as Directus's `resolveLoginRedirect` does, returning the
/// normalised target: empty is `/`; a relative value must stay on the origin it is resolved
/// against (`//evil`, `/\evil` leave it) and comes back as path, query and fragment; an
/// absolute one must be `http:` or `https:` and either match `allow_list` plus `public_url`
/// (when the provider has `REDIRECT_ALLOW_LIST` at all) or have `PUBLIC_URL`'s origin.
///
/// SECURITY: stricter than Directus (docs/compatibility.md): control characters (tabs and
/// newlines, which WHATWG parsing silently drops, so `/\t/evil` would become `//evil`) and
/// values over 2048 bytes are refused outright.
pub fn resolve_login_redirect(
    redirect: &str,
    public_url: &str,
    allow_list: Option<&[String]>,
) -> Option<String> {
    if redirect.is_empty() {
        return Some("/".into());
    }
    if redirect.len() > 2048 || redirect.chars().any(char::is_control) {
        return None;
    }
    let absolute = match url::Url::parse(redirect) {
        Ok(u) => u,
        Err(_) => {
            let base = url::Url::parse(DUMMY_ORIGIN).ok()?;
            let joined = base.join(redirect).ok()?;
            if joined.scheme() != base.scheme()
                || joined.host_str() != base.host_str()
                || joined.port() != base.port()
                || !joined.username().is_empty()
                || joined.password().is_some()
            {
                return None;
            }
            return Some(joined.as_str()[DUMMY_ORIGIN.len()..].to_string());
        }
    };
    if !matches!(absolute.scheme(), "http" | "https") {
        return None;
    }
    if let Some(list) = allow_list {
        let mut list = list.to_vec();
        list.push(public_url.to_string());
        if is_url_allowed(redirect, &list) {
            return Some(absolute.to_string());
        }
    }
    let public = url::Url::parse(public_url).ok()?;
    let origin = |u: &url::Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_string),
            u.port_or_known_default(),
        )
    };
    if origin(&public) != origin(&absolute) {
        return None;
    }
    Some(absolute.to_string())
}

/// Whether `url` may be used as a link target: it equals an entry, or its origin and path
/// equal an entry's (query and fragment are the client's own), as Directus matches.
///
/// SECURITY: stricter than Directus (docs/compatibility.md): the origin-and-path match needs
/// a real origin (`http`, `https`, ...). WHATWG URLs of other schemes (`myapp://host/path`)
/// have the opaque origin `null`, so Directus lets `myapp://evil/path` through an entry
/// `myapp://good/path`; such entries admit only the exact URL here.
pub fn is_url_allowed(url: &str, allow_list: &[String]) -> bool {
    if allow_list.iter().any(|a| a == url) {
        return true;
    }
    let Some(key) = origin_and_path(url) else {
        return false;
    };
    allow_list
        .iter()
        .filter_map(|a| origin_and_path(a))
        .any(|a| a == key)
}

/// `origin + pathname` of an absolute URL with a tuple origin.
fn origin_and_path(text: &str) -> Option<String> {
    let u = url::Url::parse(text).ok()?;
    let origin = u.origin();
    if !origin.is_tuple() {
        return None;
    }
    Some(format!("{}{}", origin.ascii_serialization(), u.path()))
}

/// `base` (`PUBLIC_URL`, absolute or root-relative) with `path` appended below its own path:
/// `https://x.example/cms/` + `admin/reset-password` is
/// `https://x.example/cms/admin/reset-password`, and the default `/` gives the root-relative
/// `/admin/reset-password`, as Directus's `addPath` does. A query or fragment of `base` is
/// dropped: `PUBLIC_URL` names where the app lives.
pub fn below(base: &str, path: &str) -> String {
    let end = base.find(['?', '#']).unwrap_or(base.len());
    let base = base[..end].trim_end_matches('/');
    format!("{base}/{}", path.trim_start_matches('/'))
}

/// `link` with `token=<token>` in its query: the link's other query parameters are kept as
/// they were written (Directus re-encodes them and keeps one value per name), every earlier
/// `token` is replaced, and a fragment stays last, so `https://app.example/#/reset` becomes
/// `https://app.example/?token=…#/reset`: the query a browser sends and a hash-routed
/// client reads from `location.search` (docs/compatibility.md).
///
/// `token` must be URL-safe already (a JWT is: base64url segments and dots).
pub fn with_token(link: &str, token: &str) -> String {
    let (rest, fragment) = match link.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (link, None),
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let mut pairs: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !is_token_pair(p))
        .collect();
    let token_pair = format!("token={token}");
    pairs.push(&token_pair);
    let mut out = format!("{path}?{}", pairs.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Whether a query pair's name is `token` (in any percent-encoding of it).
fn is_token_pair(pair: &str) -> bool {
    let name = pair.split('=').next().unwrap_or("");
    percent_encoding::percent_decode_str(&name.replace('+', " ")).decode_utf8_lossy() == "token"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_redirects_table() {
        let public = "https://cms.example/app";
        let allow = list(&["https://front.example/after", "http://localhost:3000/cb"]);
        // (redirect, allow list in use, expected)
        let cases: &[(&str, bool, Option<&str>)] = &[
            ("", false, Some("/")),
            ("/admin", false, Some("/admin")),
            ("./admin", false, Some("/admin")),
            ("admin/content?x=1#f", false, Some("/admin/content?x=1#f")),
            ("/a/../b", false, Some("/b")),
            ("/a b", false, Some("/a%20b")),
            ("?x=1", false, Some("/?x=1")),
            ("//evil.example", false, None),
            ("//evil.example/x", false, None),
            ("/\\evil.example", false, None),
            ("\\\\evil.example", false, None),
            ("\\/evil.example", false, None),
            ("/\t/evil.example", false, None),
            ("/\n/evil.example", false, None),
            ("/ok\r\nSet-Cookie: x", false, None),
            ("javascript:alert(1)", false, None),
            ("JavaScript:alert(1)", false, None),
            ("data:text/html,<script>x</script>", false, None),
            ("vbscript:x", false, None),
            ("ftp://cms.example/app", false, None),
            ("myapp://cb", true, None),
            ("mailto:a@cms.example", false, None),
            (
                "https://cms.example/app/done",
                false,
                Some("https://cms.example/app/done"),
            ),
            (
                "https://cms.example/elsewhere",
                false,
                Some("https://cms.example/elsewhere"),
            ),
            (
                "https://cms.example:443/x",
                false,
                Some("https://cms.example/x"),
            ),
            (
                "https://CMS.example/x",
                false,
                Some("https://cms.example/x"),
            ),
            ("http://cms.example/x", false, None),
            ("https://cms.example:8443/x", false, None),
            ("https://cms.example.evil.example/x", false, None),
            ("https://cms.example@evil.example/x", false, None),
            ("https://evil.example/?https://cms.example", false, None),
            ("https://front.example/after", false, None),
            (
                "https://front.example/after",
                true,
                Some("https://front.example/after"),
            ),
            (
                "https://front.example/after?lang=de#top",
                true,
                Some("https://front.example/after?lang=de#top"),
            ),
            ("https://front.example/after/sub", true, None),
            ("https://front.example/other", true, None),
            (
                "http://localhost:3000/cb",
                true,
                Some("http://localhost:3000/cb"),
            ),
            ("http://localhost:3001/cb", true, None),
            ("https://cms.example/x", true, Some("https://cms.example/x")),
        ];
        for (redirect, with_list, want) in cases {
            let got =
                resolve_login_redirect(redirect, public, with_list.then_some(allow.as_slice()));
            assert_eq!(got.as_deref(), *want, "redirect {redirect:?}");
        }
        let long = format!("/{}", "a".repeat(3000));
        assert!(resolve_login_redirect(&long, public, None).is_none());
        // With the default PUBLIC_URL (`/`) only relative redirects pass.
        assert!(resolve_login_redirect("https://cms.example/x", "/", None).is_none());
        assert_eq!(
            resolve_login_redirect("/x", "/", None).as_deref(),
            Some("/x")
        );
    }

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_lists_match_exactly_or_by_origin_and_path() {
        let l = list(&["https://app.example/reset", "http://localhost:3000/a/b?x=1"]);
        assert!(is_url_allowed("https://app.example/reset", &l));
        assert!(is_url_allowed("https://app.example/reset?lang=de#top", &l));
        assert!(is_url_allowed("http://localhost:3000/a/b", &l));
        assert!(is_url_allowed("HTTPS://APP.EXAMPLE/reset", &l));
        assert!(is_url_allowed("https://app.example:443/reset", &l));
        assert!(!is_url_allowed("https://app.example/reset/", &l));
        assert!(!is_url_allowed("https://app.example/other", &l));
        assert!(!is_url_allowed("https://evil.example/reset", &l));
        assert!(!is_url_allowed("http://app.example/reset", &l));
        assert!(!is_url_allowed(
            "https://app.example.evil.example/reset",
            &l
        ));
        assert!(!is_url_allowed(
            "https://app.example@evil.example/reset",
            &l
        ));
        assert!(!is_url_allowed("/reset", &l));
        assert!(!is_url_allowed("not a url", &l));
        assert!(!is_url_allowed("https://app.example/reset", &[]));
    }

    #[test]
    fn opaque_origins_match_only_exactly() {
        let l = list(&["myapp://good/reset"]);
        assert!(is_url_allowed("myapp://good/reset", &l));
        assert!(!is_url_allowed("myapp://evil/reset", &l));
        assert!(!is_url_allowed("otherapp://good/reset", &l));
    }

    #[test]
    fn links_below_public_url_keep_its_sub_path() {
        assert_eq!(below("/", "admin/reset-password"), "/admin/reset-password");
        assert_eq!(
            below("https://x.example/cms/", "admin/reset-password"),
            "https://x.example/cms/admin/reset-password"
        );
        assert_eq!(
            below("https://x.example/cms", "/admin/accept-invite"),
            "https://x.example/cms/admin/accept-invite"
        );
        assert_eq!(
            below("https://x.example", "users/register/verify-email"),
            "https://x.example/users/register/verify-email"
        );
    }

    #[test]
    fn the_token_goes_into_the_query_before_the_fragment() {
        assert_eq!(
            with_token("https://a.example/r", "T.K.N"),
            "https://a.example/r?token=T.K.N"
        );
        assert_eq!(
            with_token("https://a.example/r?lang=de&x=a%20b", "T"),
            "https://a.example/r?lang=de&x=a%20b&token=T"
        );
        assert_eq!(
            with_token("https://a.example/r?token=old&to%6Ben=old2&a=1", "T"),
            "https://a.example/r?a=1&token=T"
        );
        assert_eq!(
            with_token("https://a.example/#/reset?x=1", "T"),
            "https://a.example/?token=T#/reset?x=1"
        );
        assert_eq!(
            with_token("https://a.example/r?a=1#frag", "T"),
            "https://a.example/r?a=1&token=T#frag"
        );
        assert_eq!(
            with_token("/admin/reset-password", "T"),
            "/admin/reset-password?token=T"
        );
        assert_eq!(
            with_token("https://a.example/r?", "T"),
            "https://a.example/r?token=T"
        );
    }
}
