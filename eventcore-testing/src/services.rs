//! Tests that need a server (PostgreSQL, Redis, NATS) find it through an environment variable.

/// Set to `1` (or `true`) to make a test whose server URL is unset fail instead of skipping.
pub const REQUIRE_SERVICES_ENV: &str = "EVENTCORE_REQUIRE_SERVICES";

/// The URL in the environment variable `var` (such as `EVENTCORE_POSTGRES_URL`), for a test that
/// needs that server.
///
/// When `var` is unset or empty, prints one line, `skipped: {var} is not set`, and returns `None`
/// so the test can return early; with `EVENTCORE_REQUIRE_SERVICES=1` (as in CI) it panics instead,
/// so a missing server cannot pass as a skipped test.
///
/// ```no_run
/// # async fn test() {
/// let Some(url) = eventcore_testing::service_url("EVENTCORE_POSTGRES_URL") else {
///     return;
/// };
/// # let _ = url;
/// # }
/// ```
///
/// # Panics
/// If `var` is unset or empty and `EVENTCORE_REQUIRE_SERVICES` is `1` or `true`.
#[track_caller]
pub fn service_url(var: &str) -> Option<String> {
    let value = std::env::var(var).ok();
    let require = std::env::var(REQUIRE_SERVICES_ENV).ok();
    match resolve(var, value, require.as_deref()) {
        Ok(Some(url)) => Some(url),
        Ok(None) => {
            println!("skipped: {var} is not set");
            None
        }
        Err(message) => panic!("{message}"),
    }
}

/// What [`service_url`] does with the values of `var` and `EVENTCORE_REQUIRE_SERVICES`.
fn resolve(var: &str, value: Option<String>, require: Option<&str>) -> Result<Option<String>, String> {
    match value.filter(|url| !url.trim().is_empty()) {
        Some(url) => Ok(Some(url)),
        None if require.is_some_and(|r| r.trim() == "1" || r.trim().eq_ignore_ascii_case("true")) => {
            Err(format!(
                "{var} is not set, and {REQUIRE_SERVICES_ENV}=1 makes tests that need its server fail \
             instead of skipping: set {var} to the server's URL, or unset {REQUIRE_SERVICES_ENV}"
            ))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAR: &str = "EVENTCORE_POSTGRES_URL";

    #[test]
    fn a_set_url_is_returned_whatever_is_required() {
        let url = || Some("postgres://localhost/test".to_owned());
        assert_eq!(resolve(VAR, url(), None), Ok(url()));
        assert_eq!(resolve(VAR, url(), Some("1")), Ok(url()));
    }

    #[test]
    fn an_unset_url_skips_unless_services_are_required() {
        assert_eq!(resolve(VAR, None, None), Ok(None));
        assert_eq!(resolve(VAR, Some(String::new()), Some("0")), Ok(None));
        assert_eq!(resolve(VAR, None, Some("")), Ok(None));
        for require in ["1", "true"] {
            let error = resolve(VAR, None, Some(require)).unwrap_err();
            assert!(
                error.starts_with("EVENTCORE_POSTGRES_URL is not set, and EVENTCORE_REQUIRE_SERVICES=1"),
                "{error}"
            );
        }
        assert!(resolve(VAR, Some(" ".into()), Some("1")).is_err());
    }
}
