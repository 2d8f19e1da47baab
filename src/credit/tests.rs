use super::*;

fn caller(name: &str) -> Caller {
    Caller {
        name: name.into(),
        id: format!("key:{name}"),
        scopes: vec![],
        method: "api_key",
    }
}

#[test]
fn the_caller_tag_and_marker_fit_within_tencents_limit() {
    let long = Remark::parse(&"é".repeat(256)).unwrap();
    let marker = "[pgw:0123456789abcdef0123456789abcdef]";
    let tagged = tencent_remark(Some(&long), &caller("billing"), true, Some(marker)).unwrap();
    assert_eq!(tagged.chars().count(), 256);
    assert!(
        tagged.ends_with(&format!(" [by billing] {marker}")),
        "{tagged}"
    );
    // A caller name too long for the remark is cut; the marker stays whole and last.
    let huge = tencent_remark(None, &caller(&"n".repeat(400)), true, Some(marker)).unwrap();
    assert!(
        huge.chars().count() <= 256 && marker::ends_with(&huge, marker),
        "{huge}"
    );
    assert_eq!(
        tencent_remark(None, &caller("svc"), true, None).unwrap(),
        "[by svc]"
    );
    assert_eq!(
        tencent_remark(None, &caller("svc"), false, Some(marker)).unwrap(),
        marker
    );
    assert_eq!(
        tencent_remark(
            Some(&Remark::parse("Q3").unwrap()),
            &caller("svc"),
            false,
            None
        )
        .unwrap(),
        "Q3"
    );
    assert_eq!(tencent_remark(None, &caller("svc"), false, None), None);
}
