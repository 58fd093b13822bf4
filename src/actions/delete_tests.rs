use super::*;

fn keys(body: &str) -> Result<Vec<(String, String)>, Unclear> {
    delete_needs(b"/b/", body.as_bytes()).map(|needs| {
        needs
            .into_iter()
            .map(|n| (n.action, String::from_utf8(n.path).unwrap()))
            .collect()
    })
}

fn one(action: &str, path: &str) -> Vec<(String, String)> {
    vec![(action.to_string(), path.to_string())]
}

fn ambiguous(body: &str) -> bool {
    matches!(keys(body), Err(Unclear::Ambiguous(_)))
}

#[test]
fn sdk_bodies_are_read() {
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Object><Key>reports/a.csv</Key></Object>
  <Object>
    <Key>reports/b.csv</Key>
    <VersionId>3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo</VersionId>
    <ETag>"abc"</ETag>
  </Object>
  <Quiet>true</Quiet>
</Delete>"#;
    assert_eq!(
        keys(body).unwrap(),
        vec![
            ("s3:DeleteObject".into(), "/b/reports/a.csv".into()),
            ("s3:DeleteObjectVersion".into(), "/b/reports/b.csv".into()),
        ]
    );
    let all = delete_needs(b"/", b"<Delete><Object><Key>k</Key></Object></Delete>").unwrap();
    assert_eq!(all, vec![Need::new("s3:DeleteObject", b"/k", None)]);
    assert!(keys("<Delete ><Object ><Key >x</Key ></Object></Delete >").is_ok());
    assert!(keys("<Delete xmlns='x'><Quiet>false</Quiet><Object><Key>x</Key><Size>1</Size><LastModifiedTime>t</LastModifiedTime></Object></Delete>").is_ok());
    assert!(keys(
        "<?xml version='1.0' standalone='yes'?><Delete><Object><Key>x</Key></Object></Delete>"
    )
    .is_ok());
}

#[test]
fn entities_and_references_are_decoded() {
    assert_eq!(
        keys("<Delete><Object><Key>a&amp;b&lt;c&gt;&quot;&apos;&#65;&#x42;&#xe9;/../</Key></Object></Delete>").unwrap(),
        one("s3:DeleteObject", "/b/a&b<c>\"'ABé/../")
    );
    // A carriage return must be written as a reference; a raw one would be read as a line feed.
    assert_eq!(
        keys("<Delete><Object><Key>a&#13;\nb\tc]d</Key></Object></Delete>").unwrap(),
        one("s3:DeleteObject", "/b/a\r\nb\tc]d")
    );
    assert_eq!(
        keys("<Delete><Object><Key> k </Key></Object></Delete>").unwrap(),
        one("s3:DeleteObject", "/b/ k ")
    );
    assert!(ambiguous(
        "<Delete><Object><Key>a\r\nb</Key></Object></Delete>"
    ));
    for bad in [
        "&nbsp;",
        "&#0;",
        "&#xD800;",
        "&#x110000;",
        "&#xFFFE;",
        "&#;",
        "&#x;",
        "&#1a;",
        "&amp",
        "& ",
        "&#x00000000041;",
    ] {
        let body = format!("<Delete><Object><Key>a{bad}</Key></Object></Delete>");
        assert!(ambiguous(&body), "{bad}");
    }
    assert!(ambiguous(
        "<Delete><Object><Key>a\u{1}</Key></Object></Delete>"
    ));
    assert!(ambiguous(
        "<Delete><Object><Key>a]]>b</Key></Object></Delete>"
    ));
}

#[test]
fn anything_two_parsers_could_read_differently_is_refused() {
    let k = "<Object><Key>k</Key></Object>";
    let bodies = [
        "<Delete><!-- c -->{k}</Delete>",
        "<Delete>{k}<Object><Key><![CDATA[x]]></Key></Object></Delete>",
        "<!DOCTYPE d [<!ENTITY e \"x\">]><Delete>{k}</Delete>",
        "<Delete><Object><Key>&e;</Key></Object></Delete>",
        "<?xml-stylesheet href='a'?><Delete>{k}</Delete>",
        "<Delete><?pi x?>{k}</Delete>",
        " <?xml version='1.0'?><Delete>{k}</Delete>",
        "<?xml version='1.0' encoding='ISO-8859-1'?><Delete>{k}</Delete>",
        "<?xml version='1.1'?><Delete>{k}</Delete>",
        "<?xml version='1.0'<Delete>{k}</Delete>",
        "\u{feff}<Delete>{k}</Delete>",
        "<s3:Delete xmlns:s3='x'>{k}</s3:Delete>",
        "<Delete><Object><s3:Key>k</s3:Key></Object></Delete>",
        "<Delete xmlns:s3='x'>{k}</Delete>",
        "<Delete><Object xmlns='x'><Key>k</Key></Object></Delete>",
        "<Delete><Object><Key a='1'>k</Key></Object></Delete>",
        "<Delete><Object><Key>k</Key><Key>j</Key></Object></Delete>",
        "<Delete><Object><Key>k</Key><VersionId>1</VersionId><VersionId>2</VersionId></Object></Delete>",
        "<Delete><Object><Key>k</Key><Owner>x</Owner></Object></Delete>",
        "<Delete>{k}<Extra/></Delete>",
        "<Delete><Quiet>true</Quiet><Quiet>false</Quiet>{k}</Delete>",
        "<Delete><Quiet>yes</Quiet>{k}</Delete>",
        "<Delete>{k}</Delete><Delete>{k}</Delete>",
        "<Delete>{k}</Delete>trailing",
        "<Delete>text{k}</Delete>",
        "<Delete>{k}",
        "<Delete>{k}</Deleted>",
        "<Delete><Object><Key>k</Key></Delete>",
        "<Delete><Object><Key>k<b/></Key></Object></Delete>",
        "<Delete><Object><Key>k</Key></Object ></Delete",
        "<Delete><Object><Key>k</Key><VersionId/></Object></Delete>",
        "<Delete><Object><Key>k</Key><VersionId></VersionId></Object></Delete>",
        "<Delete x='1'>{k}</Delete>",
        "<Delete xmlns='a' xmlns='b'>{k}</Delete>",
        "<Delete xmlns=a>{k}</Delete>",
        "<Delete xmlns='&amp;'>{k}</Delete>",
        "<Objects>{k}</Objects>",
        "<Delete><Object><Key></Key></Object></Delete>",
        "<Delete><Object><Key/></Object></Delete>",
        "<Delete><Object/></Delete>",
        "<Delete><Object><VersionId>1</VersionId></Object></Delete>",
        "<Delete></Delete>",
        "<Delete><Quiet>true</Quiet></Delete>",
        "<Delete/>",
        "",
        "<",
        "<Delete",
        "<Delete><Object><Key>k",
    ];
    for body in bodies {
        let body = body.replace("{k}", k);
        assert!(ambiguous(&body), "{body:?} gave {:?}", keys(&body));
    }
    assert!(matches!(
        delete_needs(b"/b/", b"<Delete><Object><Key>\xff</Key></Object></Delete>"),
        Err(Unclear::Ambiguous(_))
    ));
}

#[test]
fn at_most_a_thousand_objects() {
    let body = |n: usize| {
        let objects: String = (0..n)
            .map(|i| format!("<Object><Key>k{i}</Key></Object>"))
            .collect();
        format!("<Delete>{objects}</Delete>")
    };
    assert_eq!(keys(&body(MAX_OBJECTS)).unwrap().len(), MAX_OBJECTS);
    assert!(ambiguous(&body(MAX_OBJECTS + 1)));
}

#[test]
fn random_bodies_never_panic_and_never_yield_empty_keys() {
    let tokens = [
        "<Delete>",
        "</Delete>",
        "<Object>",
        "</Object>",
        "<Key>",
        "</Key>",
        "<VersionId>",
        "</VersionId>",
        "<Quiet>",
        "</Quiet>",
        "<?xml version='1.0'?>",
        "<!--",
        "-->",
        "&amp;",
        "&#x",
        "&#",
        ";",
        "&",
        "<",
        ">",
        "/>",
        "/",
        " ",
        "\r",
        "\n",
        "k",
        "é",
        "]]>",
        "=",
        "'",
        "xmlns",
        "<Delete xmlns='x'>",
        "<Key/>",
        "\u{1}",
    ];
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..20_000 {
        let body: String = (0..rng.usize(0..24))
            .map(|_| tokens[rng.usize(0..tokens.len())])
            .collect();
        if let Ok(needs) = delete_needs(b"/b/", body.as_bytes()) {
            assert!(!needs.is_empty(), "{body:?}");
            assert!(needs.iter().all(|n| n.path.len() > 3), "{body:?}");
        }
    }
}
