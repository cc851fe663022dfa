//! The URL of a database beside the admin URL's, on the same server with
//! the same options.

/// `admin` with its database replaced by `name`; its query (such as
/// `?sslmode=disable`) is kept, so the server under test connects the way
/// the admin URL says.
pub fn beside(admin: &str, name: &str) -> String {
    let (path, query) = match admin.split_once('?') {
        Some((path, query)) => (path, format!("?{query}")),
        None => (admin, String::new()),
    };
    let server = path.rsplit_once('/').expect("URL with a database").0;
    format!("{server}/{name}{query}")
}
