//! Unit tests of [`super`]: paths and queries as they are signed and sent.

use super::*;

fn t(path: &str, query: Option<&str>) -> String {
    upstream_target(path, query, None, "", PathRules::Normalized).unwrap()
}

#[test]
fn escaped_unreserved_characters_are_decoded_so_dot_segments_resolve() {
    assert_eq!(t("/a/%2e%2E/b", None), "/b");
    assert_eq!(t("/a/.%2e/b", None), "/b");
    assert_eq!(t("/%61%7E%2D", None), "/a~-");
    // Reserved and other escapes stay as they are.
    assert_eq!(t("/a%2Fb/%20", None), "/a%2Fb/%20");
}

#[test]
fn a_climb_hidden_behind_an_escaped_slash_is_refused_outside_s3() {
    for path in [
        "/v1/..%2Fadmin",
        "/a/%2E%2E%2Fb",
        "/a/.%5Cb/..%5C..",
        "/x/%2F..%2F",
        "/public/..;/admin",
        "/public/%2e%2e;/admin",
        "/public/.;/x",
        "/public/%252e%252e%252fadmin",
        "/public/%255C",
    ] {
        let e = resolve(path, PathRules::Normalized).unwrap_err();
        assert_eq!(e.status(), 400, "{path}");
    }
    // A plain escaped slash is data, and S3 keys are literal.
    assert_eq!(
        resolve("/a%2Fb", PathRules::Normalized).unwrap().decoded,
        b"/a/b"
    );
    assert_eq!(
        resolve("/b/..%2Fk", PathRules::S3).unwrap().encoded,
        "/b/../k"
    );
}

#[test]
fn a_query_of_only_separators_is_dropped() {
    assert_eq!(t("/a", Some("&&")), "/a");
    assert_eq!(t("/a", Some("&x=1&")), "/a?x=1");
}

fn s3(path: &str) -> String {
    upstream_target(path, None, None, "", PathRules::S3).unwrap()
}

#[test]
fn plain_paths_are_untouched() {
    assert_eq!(t("/orders/42", None), "/orders/42");
    assert_eq!(t("/", None), "/");
    assert_eq!(t("/a%20b/%2F/c", None), "/a%20b/%2F/c");
}

#[test]
fn dot_and_empty_segments_are_removed() {
    assert_eq!(t("/a/./b/../c", None), "/a/c");
    assert_eq!(t("//a//b//", None), "/a/b/");
    assert_eq!(t("/a/..", None), "/");
    assert_eq!(t("/../..", None), "/");
    assert_eq!(t("/a/.", None), "/a/");
}

#[test]
fn characters_not_allowed_in_paths_are_encoded() {
    assert_eq!(t("/a\"b{c}", None), "/a%22b%7Bc%7D");
    assert_eq!(t("/é", None), "/%C3%A9");
}

#[test]
fn broken_escapes_are_rejected() {
    assert_eq!(
        upstream_target("/a%zz", None, None, "", PathRules::Normalized)
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        upstream_target("/a", Some("x=%4"), None, "", PathRules::Normalized)
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        upstream_target("/a", Some("x=%ff"), None, "", PathRules::Normalized)
            .unwrap_err()
            .status(),
        400
    );
}

#[test]
fn query_is_canonically_encoded_in_client_order() {
    assert_eq!(
        t("/", Some("b=2&a=1&a=0&empty=&flag")),
        "/?b=2&a=1&a=0&empty=&flag"
    );
    assert_eq!(t("/", Some("q=a+b%20c%2Bd")), "/?q=a%20b%20c%2Bd");
    assert_eq!(t("/", Some("p=%2f%2F/")), "/?p=%2F%2F%2F");
    assert_eq!(t("/", Some("u=%C3%A9")), "/?u=%C3%A9");
    assert_eq!(t("/", Some("k=v~-_.*")), "/?k=v~-_.%2A");
    assert_eq!(t("/x", Some("")), "/x");
}

#[test]
fn plus_is_a_space_on_signed_routes_and_kept_on_pass_through() {
    let q = |query, plus| target_from("/", "", Some(query), plus).unwrap();
    // What s5cmd and rclone send to list under `sp dir/`.
    assert_eq!(
        q("prefix=sp+dir%2F", QueryPlus::Space),
        "/?prefix=sp%20dir%2F"
    );
    assert_eq!(q("a+b=c+%2B", QueryPlus::Space), "/?a%20b=c%20%2B");
    assert_eq!(
        q("prefix=sp+dir%2F", QueryPlus::AsSent),
        "/?prefix=sp+dir%2F"
    );
    assert_eq!(q("q=+%2b+&+", QueryPlus::AsSent), "/?q=+%2B+&+");
    for plus in [QueryPlus::Space, QueryPlus::AsSent] {
        let broken = target_from("/", "", Some("q=a+%zz"), plus).unwrap_err();
        assert_eq!(broken.status(), 400);
    }
}

#[test]
fn either_way_the_query_sent_is_its_own_canonical_form() {
    for plus in [QueryPlus::Space, QueryPlus::AsSent] {
        for query in ["a+b=c+d", "+&++=+", "x=%2B+%20", "k=caf%C3%A9+~*", "p+=%2f"] {
            let once = target_from("/", "", Some(query), plus).unwrap();
            let sent = once.split_once('?').map(|(_, q)| q);
            let again = target_from("/", "", sent, plus).unwrap();
            assert_eq!(again, once, "{plus:?} {query}");
        }
    }
}

#[test]
fn prefix_is_stripped_and_base_added() {
    let r = upstream_target(
        "/orders/42",
        Some("a=1"),
        Some("/orders/"),
        "/base",
        PathRules::Normalized,
    )
    .unwrap();
    assert_eq!(r, "/base/42?a=1");
    let r = upstream_target("/orders", None, Some("/orders/"), "", PathRules::Normalized).unwrap();
    assert_eq!(r, "/");
    let r = upstream_target(
        "/orders/",
        None,
        Some("/orders/"),
        "",
        PathRules::Normalized,
    )
    .unwrap();
    assert_eq!(r, "/");
}

#[test]
fn s3_keys_are_kept_as_is_and_encoded_as_s3_does() {
    assert_eq!(s3("/bucket/a b"), "/bucket/a%20b");
    assert_eq!(s3("/bucket/a%20b+c"), "/bucket/a%20b%2Bc");
    assert_eq!(s3("/bucket/x//y/../z/./w"), "/bucket/x//y/../z/./w");
    assert_eq!(
        s3("/bucket/k&=:~@!$'()*,;"),
        "/bucket/k%26%3D%3A~%40%21%24%27%28%29%2A%2C%3B"
    );
    assert_eq!(s3("/bucket/a%2Fb"), "/bucket/a/b");
    assert_eq!(s3("/bucket/caf%c3%a9"), "/bucket/caf%C3%A9");
    assert_eq!(
        upstream_target("/b/%zz", None, None, "", PathRules::S3)
            .unwrap_err()
            .status(),
        400
    );
}
