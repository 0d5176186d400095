//! The message bodies: each target's exact JSON for one notice, hostile payload text
//! against every target, the length limits and the timestamps.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::*;

const SHA: &str = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
/// 2026-12-02T04:41:00.123Z
const AT_SECS: u64 = 1_796_186_460;

fn notice() -> Notice<'static> {
    Notice {
        hook: "website",
        rule: "0",
        repository: "acme/website",
        git_ref: "refs/heads/main",
        sha: SHA,
        pusher: Some("alice"),
        kind: EventKind::Failed,
        reason: "command 2 failed: exit status 1",
        summary: None,
        duration: Some(Duration::from_secs(12)),
        link: Some("https://deploy.example.com/ui/jobs/12"),
        job: 12,
        attempt: 1,
        at: UNIX_EPOCH + Duration::from_millis(AT_SECS * 1000 + 123),
        test: false,
    }
}

const HOSTILE_PUSHER: &str = "@everyone <!channel> <script>";
const HOSTILE_SUMMARY: &str =
    "done\nFAKE: deploy succeeded\r\u{202E}exe.txt [x](http://evil) **bold** @here <@123>";

fn hostile() -> Notice<'static> {
    Notice {
        pusher: Some(HOSTILE_PUSHER),
        summary: Some(HOSTILE_SUMMARY),
        git_ref: "refs/heads/_x_\u{2066}",
        ..notice()
    }
}

fn json_of(b: &Body) -> Value {
    assert_eq!(b.content_type, "application/json");
    assert!(b.headers.is_empty());
    serde_json::from_slice(&b.body).unwrap()
}

fn text(b: &Body) -> String {
    String::from_utf8(b.body.clone()).unwrap()
}

const HEADLINE: &str = "website/0: deploy of main @ 1a2b3c4 by alice failed after 12s: \
                        command 2 failed: exit status 1";

#[test]
fn the_headline_says_who_what_and_why_on_one_line() {
    assert_eq!(headline(&notice()), HEADLINE);
    let quiet = Notice {
        pusher: None,
        duration: None,
        reason: "",
        kind: EventKind::Queued,
        git_ref: "refs/tags/v1.2",
        ..notice()
    };
    assert_eq!(
        headline(&quiet),
        "website/0: deploy of v1.2 @ 1a2b3c4 is queued"
    );
    let both = Notice {
        kind: EventKind::Succeeded,
        reason: "3 commands ran",
        summary: Some("deployed v1.2.3"),
        git_ref: "refs/pull/4/head",
        duration: Some(Duration::from_secs(65)),
        ..notice()
    };
    assert_eq!(
        headline(&both),
        "website/0: deploy of refs/pull/4/head @ 1a2b3c4 by alice succeeded after 1m 5s: \
         3 commands ran — deployed v1.2.3"
    );
}

#[test]
fn a_test_message_says_so_and_claims_no_deploy() {
    let n = Notice {
        test: true,
        reason: "",
        ..notice()
    };
    let line = headline(&n);
    assert_eq!(
        line,
        "website/0: test message from deployhook, no deploy ran"
    );
    assert!(!line.contains("failed"), "{line}");
    assert_eq!(json_of(&webhook(&n, "msg_1"))["type"], "deploy.test");
    let ntfy = ntfy(&n);
    assert_eq!(ntfy.headers[0].1, "website: test message");
    assert_eq!(ntfy.headers[1].1, "test_tube");
}

#[test]
fn state_words_for_every_kind() {
    let words: Vec<_> = EventKind::ALL.into_iter().map(state_words).collect();
    assert_eq!(
        words,
        [
            "is queued",
            "was superseded",
            "started",
            "succeeded",
            "failed",
            "timed out",
            "was cancelled",
            "was interrupted",
            "was queued again",
            "is held (the hook is paused)",
            "is queued (the hook was resumed)",
        ]
    );
}

#[test]
fn webhook_types_for_every_kind() {
    let types: Vec<_> = EventKind::ALL
        .into_iter()
        .map(|kind| json_of(&webhook(&Notice { kind, ..notice() }, "m"))["type"].clone())
        .collect();
    assert_eq!(
        types,
        [
            "deploy.queued",
            "deploy.superseded",
            "deploy.started",
            "deploy.succeeded",
            "deploy.failed",
            "deploy.timed_out",
            "deploy.cancelled",
            "deploy.interrupted",
            "deploy.requeued",
            "deploy.held",
            "deploy.released",
        ]
    );
}

#[test]
fn durations_read_as_people_say_them() {
    let cases = [
        (Duration::from_millis(350), "350ms"),
        (Duration::from_secs(12), "12s"),
        (Duration::from_millis(12_900), "12s"),
        (Duration::from_secs(60), "1m"),
        (Duration::from_secs(245), "4m 5s"),
        (Duration::from_secs(7200), "2h"),
        (Duration::from_secs(7380 + 59), "2h 3m"),
    ];
    for (d, want) in cases {
        assert_eq!(for_people(d), want, "{d:?}");
    }
}

#[test]
fn slack_shape() {
    assert_eq!(
        json_of(&slack(&notice())),
        json!({ "text": format!("{HEADLINE} <https://deploy.example.com/ui/jobs/12|job 12>") })
    );
}

#[test]
fn discord_shape() {
    assert_eq!(
        json_of(&discord(&notice())),
        json!({
            "content": "website/0: deploy of main @ 1a2b3c4 by alice failed after 12s: \
                        command 2 failed\\: exit status 1 <https://deploy.example.com/ui/jobs/12>",
            "allowed_mentions": { "parse": [] },
            "flags": 4,
        })
    );
}

#[test]
fn teams_shape() {
    assert_eq!(
        json_of(&teams(&notice())),
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        { "type": "RichTextBlock", "inlines": [{
                            "type": "TextRun", "text": "website/0: deploy failed",
                            "weight": "Bolder", "size": "Medium", "color": "Attention",
                        }]},
                        { "type": "RichTextBlock", "inlines": [
                            { "type": "TextRun", "text": HEADLINE },
                        ]},
                        { "type": "RichTextBlock", "inlines": [{
                            "type": "TextRun", "text": "acme/website · job 12",
                            "isSubtle": true, "size": "Small",
                        }]},
                    ],
                    "actions": [{
                        "type": "Action.OpenUrl",
                        "title": "Open job 12",
                        "url": "https://deploy.example.com/ui/jobs/12",
                    }],
                },
            }],
        })
    );
    let unlinked = json_of(&teams(&Notice {
        link: None,
        attempt: 2,
        ..notice()
    }));
    let card = &unlinked["attachments"][0]["content"];
    assert!(card.get("actions").is_none(), "{card}");
    assert_eq!(
        card["body"][2]["inlines"][0]["text"],
        "acme/website · job 12 · attempt 2"
    );
}

#[test]
fn matrix_shape_and_path() {
    assert_eq!(
        json_of(&matrix(&notice())),
        json!({
            "msgtype": "m.notice",
            "body": format!("{HEADLINE} — https://deploy.example.com/ui/jobs/12"),
            "m.mentions": {},
        })
    );
    assert_eq!(
        json_of(&matrix(&Notice {
            link: None,
            ..notice()
        }))["body"],
        HEADLINE
    );
    assert_eq!(
        matrix_path("!abc123:example.org", "deployhook-12-3"),
        "/_matrix/client/v3/rooms/%21abc123%3Aexample.org/send/m.room.message/deployhook-12-3"
    );
    assert_eq!(
        matrix_path("!a/b?c#d e:ex.org", "t/1"),
        "/_matrix/client/v3/rooms/%21a%2Fb%3Fc%23d%20e%3Aex.org/send/m.room.message/t%2F1"
    );
}

#[test]
fn ntfy_shape() {
    let b = ntfy(&notice());
    assert_eq!(b.content_type, "text/plain; charset=utf-8");
    assert_eq!(text(&b), HEADLINE);
    let headers: Vec<(&str, &str)> = b
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        headers,
        [
            ("Title", "website: deploy failed"),
            ("Tags", "x"),
            ("Priority", "high"),
            ("Click", "https://deploy.example.com/ui/jobs/12"),
        ]
    );
    let b = ntfy(&Notice {
        kind: EventKind::Succeeded,
        link: None,
        ..notice()
    });
    let names: Vec<&str> = b.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["Title", "Tags", "Priority"]);
    assert_eq!(b.headers[1].1, "white_check_mark");
    assert_eq!(b.headers[2].1, "default");
}

#[test]
fn webhook_shape() {
    let n = Notice {
        summary: Some("deployed v1.2.3"),
        ..notice()
    };
    assert_eq!(
        json_of(&webhook(&n, "msg_2Kz")),
        json!({
            "type": "deploy.failed",
            "timestamp": "2026-12-02T04:41:00.123Z",
            "data": {
                "job": 12,
                "hook": "website",
                "rule": "0",
                "repository": "acme/website",
                "ref": "refs/heads/main",
                "sha": SHA,
                "pusher": "alice",
                "state": "failed",
                "reason": "command 2 failed: exit status 1",
                "summary": "deployed v1.2.3",
                "duration_ms": 12000,
                "url": "https://deploy.example.com/ui/jobs/12",
                "attempt": 1,
                "id": "msg_2Kz",
            },
        })
    );
    let bare = json_of(&webhook(
        &Notice {
            pusher: None,
            duration: None,
            link: None,
            ..notice()
        },
        "m",
    ));
    for key in ["pusher", "summary", "duration_ms", "url"] {
        assert_eq!(bare["data"][key], Value::Null, "{key}");
    }
}

#[test]
fn webhook_timestamps_are_rfc3339_utc_milliseconds() {
    let at = |secs: u64, millis: u64| {
        let n = Notice {
            at: UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis),
            ..notice()
        };
        json_of(&webhook(&n, "m"))["timestamp"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(at(AT_SECS, 123), "2026-12-02T04:41:00.123Z");
    assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
    assert_eq!(at(951_825_600, 7), "2000-02-29T12:00:00.007Z");
    assert_eq!(at(1_835_481_599, 999), "2028-02-29T23:59:59.999Z");
    assert_eq!(at(1_835_481_600, 0), "2028-03-01T00:00:00.000Z");
    assert_eq!(at(1_772_323_200, 0), "2026-03-01T00:00:00.000Z");
    // Before the epoch is not a time a job event has; it reads as the epoch, not a panic.
    let before = Notice {
        at: UNIX_EPOCH - Duration::from_secs(5),
        ..notice()
    };
    assert_eq!(
        json_of(&webhook(&before, "m"))["timestamp"],
        "1970-01-01T00:00:00.000Z"
    );
}

/// No raw line break, bidi control or other control character in the bytes.
fn assert_inert(what: &str, bytes: &[u8]) {
    let s = std::str::from_utf8(bytes).unwrap();
    for c in ['\n', '\r', '\u{202E}', '\u{2066}', '\u{85}'] {
        assert!(!s.contains(c), "{what} has {c:?}: {s}");
    }
}

#[test]
fn hostile_text_is_plain_in_the_headline() {
    let line = headline(&hostile());
    assert_inert("headline", line.as_bytes());
    assert!(
        line.contains("done FAKE: deploy succeeded \u{FFFD}exe.txt"),
        "{line}"
    );
    assert!(line.contains("deploy of _x_\u{FFFD} @"), "{line}");
}

#[test]
fn hostile_text_is_escaped_for_slack() {
    let b = slack(&hostile());
    let raw = text(&b);
    assert_inert("slack", &b.body);
    for bad in ["<!channel>", "<script>", "<@123>", "<!", "<@"] {
        assert!(!raw.contains(bad), "{bad} in {raw}");
    }
    let t = json_of(&b)["text"].as_str().unwrap().to_owned();
    assert!(
        t.contains("by @everyone &lt;!channel&gt; &lt;script&gt; failed"),
        "{t}"
    );
    // The only `<` left is our own link's.
    assert_eq!(t.matches('<').count(), 1, "{t}");
    assert!(
        t.ends_with(" <https://deploy.example.com/ui/jobs/12|job 12>"),
        "{t}"
    );
}

#[test]
fn hostile_text_is_escaped_for_discord() {
    let b = discord(&hostile());
    assert_inert("discord", &b.body);
    let v = json_of(&b);
    assert_eq!(v["allowed_mentions"], json!({ "parse": [] }));
    let c = v["content"].as_str().unwrap();
    for bad in ["[x](http", "**bold**", "<!channel>", "<@123>", "<script>"] {
        assert!(!c.contains(bad), "{bad} in {c}");
    }
    // Every @ and markdown character of a payload is preceded by a backslash.
    for (i, ch) in c.char_indices() {
        if "@*[]()<_".contains(ch) && !c[..i].ends_with('\\') {
            assert!(
                c[i..].starts_with("@ 1a2b3c4") || c[i..].starts_with("<https://deploy"),
                "unescaped {ch:?} at {i} in {c}"
            );
        }
    }
    assert!(c.contains("by \\@everyone \\<\\!channel\\>"), "{c}");
    assert!(c.contains("\\*\\*bold\\*\\*"), "{c}");
}

#[test]
fn discord_never_parses_mentions_whatever_the_notice() {
    for kind in EventKind::ALL {
        for test in [false, true] {
            for n in [notice(), hostile()] {
                let v = json_of(&discord(&Notice { kind, test, ..n }));
                assert_eq!(v["allowed_mentions"]["parse"], json!([]));
            }
        }
    }
}

#[test]
fn hostile_text_is_plain_text_runs_for_teams() {
    let b = teams(&hostile());
    assert_inert("teams", &b.body);
    let v = json_of(&b);
    let card = &v["attachments"][0]["content"];
    // Markdown is parsed in TextBlock and FactSet; neither is ever used.
    let raw = text(&b);
    assert!(
        !raw.contains(r#""TextBlock""#) && !raw.contains("FactSet"),
        "{raw}"
    );
    for block in card["body"].as_array().unwrap() {
        assert_eq!(block["type"], "RichTextBlock");
        for run in block["inlines"].as_array().unwrap() {
            assert_eq!(run["type"], "TextRun");
        }
    }
    let shown = card["body"][1]["inlines"][0]["text"].as_str().unwrap();
    assert_eq!(shown, headline(&hostile()));
}

#[test]
fn hostile_text_is_plain_for_matrix() {
    let b = matrix(&hostile());
    assert_inert("matrix", &b.body);
    let v = json_of(&b);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["body", "m.mentions", "msgtype"]);
    assert_eq!(v["m.mentions"], json!({}));
}

#[test]
fn ntfy_headers_never_carry_a_line_break_or_payload_text() {
    let nasty_hook = Notice {
        hook: "web\r\nX-Evil: 1",
        rule: "r\nule",
        link: Some("https://deploy.example.com/ui/jobs/12\r\nX-Evil: 1"),
        ..hostile()
    };
    for kind in EventKind::ALL {
        for test in [false, true] {
            for n in [notice(), hostile(), nasty_hook] {
                let b = ntfy(&Notice { kind, test, ..n });
                assert_inert("ntfy body", &b.body);
                for (name, value) in &b.headers {
                    assert!(
                        value.bytes().all(|c| c == b' ' || c.is_ascii_graphic()),
                        "{name}: {value:?}"
                    );
                    for word in ["everyone", "evil", "channel", "bold"] {
                        assert!(!value.contains(word), "{name}: {value:?}");
                    }
                }
            }
        }
    }
    let b = ntfy(&nasty_hook);
    assert_eq!(b.headers[0].1, "web__X-Evil__1: deploy failed");
    assert_eq!(
        b.headers[3].1,
        "https://deploy.example.com/ui/jobs/12%0D%0AX-Evil:%201"
    );
}

#[test]
fn webhook_carries_values_as_they_are_with_inert_bytes() {
    let b = webhook(&hostile(), "m");
    assert_inert("webhook", &b.body);
    let raw = text(&b);
    assert!(raw.contains("\\u202e"), "{raw}");
    let v = json_of(&b);
    assert_eq!(v["data"]["pusher"], HOSTILE_PUSHER);
    assert_eq!(v["data"]["summary"], HOSTILE_SUMMARY);
    assert_eq!(v["data"]["ref"], "refs/heads/_x_\u{2066}");
}

#[test]
fn links_that_are_not_http_are_left_out() {
    let n = Notice {
        link: Some("javascript:alert(1)"),
        ..notice()
    };
    assert!(!text(&slack(&n)).contains("javascript"));
    assert!(!text(&discord(&n)).contains("javascript"));
    assert!(!text(&teams(&n)).contains("javascript"));
    assert!(!text(&matrix(&n)).contains("javascript"));
    assert_eq!(ntfy(&n).headers.len(), 3);
    let odd = Notice {
        link: Some("https://x.example/a b|c>d"),
        ..notice()
    };
    let t = json_of(&slack(&odd))["text"].as_str().unwrap().to_owned();
    assert!(
        t.ends_with(" <https://x.example/a%20b%7Cc%3Ed|job 12>"),
        "{t}"
    );
}

#[test]
fn untrusted_parts_are_cut_to_part_max_chars() {
    let long = "é".repeat(1000);
    let n = Notice {
        summary: Some(&long),
        pusher: Some(&long),
        ..notice()
    };
    let line = headline(&n);
    let cut = format!("{}…", "é".repeat(PART_MAX_CHARS - 1));
    assert!(line.contains(&format!(" by {cut} failed")), "{line}");
    assert!(line.ends_with(&format!(" — {cut}")), "{line}");
    assert!(!line.contains(&"é".repeat(PART_MAX_CHARS)), "{line}");
    // Exactly at the limit is not cut.
    let exact = "a".repeat(PART_MAX_CHARS);
    assert_eq!(clean(&exact), exact);
    assert_eq!(clean(&format!("{exact}b")).chars().count(), PART_MAX_CHARS);
}

#[test]
fn discord_content_fits_discord_max_content() {
    assert_eq!(DISCORD_MAX_CONTENT, 2000);
    // Punctuation doubles when escaped, and astral emoji are two UTF-16 units each.
    let stars = "*".repeat(1000);
    let emoji = "🚀".repeat(1000);
    let slashes = "\\".repeat(1000);
    for fill in [&stars, &emoji, &slashes] {
        let n = Notice {
            rule: fill,
            repository: fill,
            git_ref: fill,
            pusher: Some(fill),
            reason: fill,
            summary: Some(fill),
            ..notice()
        };
        let content = json_of(&discord(&n))["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            content.encode_utf16().count() <= DISCORD_MAX_CONTENT,
            "{}",
            content.encode_utf16().count()
        );
        assert!(
            content.ends_with("… <https://deploy.example.com/ui/jobs/12>"),
            "{content}"
        );
        // The cut never leaves a lone escaping backslash before the `…`.
        let before = content.split('…').next().unwrap();
        let trailing = before.chars().rev().take_while(|&c| c == '\\').count();
        assert_eq!(trailing % 2, 0, "{content}");
    }
}

#[test]
fn ntfy_body_fits_ntfy_max_body() {
    assert_eq!(NTFY_MAX_BODY, 4096);
    let emoji = "🚀".repeat(1000);
    let n = Notice {
        hook: &emoji,
        rule: &emoji,
        repository: &emoji,
        git_ref: &emoji,
        pusher: Some(&emoji),
        reason: &emoji,
        summary: Some(&emoji),
        ..notice()
    };
    assert!(headline(&n).len() > NTFY_MAX_BODY);
    let b = ntfy(&n);
    assert!(b.body.len() <= NTFY_MAX_BODY, "{}", b.body.len());
    assert!(text(&b).ends_with('…'));
}
