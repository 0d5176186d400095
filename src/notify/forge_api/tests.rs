//! Tests of the forge requests: exact URL, headers and body per forge and phase, path
//! encoding and refusals, the length limits, answer reading, and GitHub's bodies checked
//! against the request schemas vendored from GitHub's OpenAPI description.

use serde_json::{Value, json};

use super::schema_check::{Objects, check};
use super::*;

const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
const TOKEN: &str = "t0ken";

/// The vendored fragment (scripts/github-openapi-fragment.sh writes it).
const FRAGMENT: &str = include_str!("../../../tests/fixtures/github-openapi/requests.json");

fn status(phase: Phase) -> Status<'static> {
    Status {
        repository: "acme/website",
        sha: SHA,
        phase,
        context: "deployhook/website/0",
        description: "deploy 42",
        target_url: Some("https://deploy.example.com/jobs/42"),
    }
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).expect("the body is JSON")
}

fn headers(r: &Request) -> Vec<(&str, &str)> {
    r.headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

fn build(kind: ApiKind, api: &str, s: &Status) -> Request {
    status_request(kind, api, TOKEN, s).expect("a valid status")
}

fn schema(operation: &str) -> Value {
    let fragment: Value = serde_json::from_str(FRAGMENT).expect("the fragment is JSON");
    fragment["operations"][operation].clone()
}

const STATUSES_OP: &str = "POST /repos/{owner}/{repo}/statuses/{sha}";
const DEPLOYMENTS_OP: &str = "POST /repos/{owner}/{repo}/deployments";
const DEPLOYMENT_STATUSES_OP: &str =
    "POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses";

// ---- every forge, every phase ----

#[test]
fn github_commit_status_for_every_phase() {
    let expected = [
        (Phase::Queued, "pending"),
        (Phase::Running, "pending"),
        (Phase::Succeeded, "success"),
        (Phase::Failed, "failure"),
        (Phase::Error, "error"),
        (Phase::Cancelled, "error"),
    ];
    for (phase, state) in expected {
        let r = build(ApiKind::Github, "https://api.github.com", &status(phase));
        assert_eq!(
            r.url,
            format!("https://api.github.com/repos/acme/website/statuses/{SHA}")
        );
        assert_eq!(
            headers(&r),
            [
                ("Authorization", "Bearer t0ken"),
                ("Accept", "application/vnd.github+json"),
                ("X-GitHub-Api-Version", "2022-11-28"),
                ("Content-Type", "application/json"),
            ]
        );
        assert_eq!(
            body(&r),
            json!({
                "state": state,
                "target_url": "https://deploy.example.com/jobs/42",
                "description": "deploy 42",
                "context": "deployhook/website/0",
            }),
            "{phase:?}"
        );
    }
}

#[test]
fn gitlab_commit_status_for_every_phase() {
    let expected = [
        (Phase::Queued, "pending"),
        (Phase::Running, "running"),
        (Phase::Succeeded, "success"),
        (Phase::Failed, "failed"),
        (Phase::Error, "failed"),
        (Phase::Cancelled, "canceled"),
    ];
    for (phase, state) in expected {
        let r = build(ApiKind::Gitlab, "https://gitlab.com/api/v4", &status(phase));
        assert_eq!(
            r.url,
            format!("https://gitlab.com/api/v4/projects/acme%2Fwebsite/statuses/{SHA}")
        );
        assert_eq!(
            headers(&r),
            [
                ("PRIVATE-TOKEN", "t0ken"),
                ("Accept", "application/json"),
                ("Content-Type", "application/json"),
            ]
        );
        assert_eq!(
            body(&r),
            json!({
                "state": state,
                "name": "deployhook/website/0",
                "target_url": "https://deploy.example.com/jobs/42",
                "description": "deploy 42",
            }),
            "{phase:?}"
        );
    }
}

#[test]
fn gitea_commit_status_for_every_phase() {
    let expected = [
        (Phase::Queued, "pending"),
        (Phase::Running, "pending"),
        (Phase::Succeeded, "success"),
        (Phase::Failed, "failure"),
        (Phase::Error, "error"),
        (Phase::Cancelled, "error"),
    ];
    for (phase, state) in expected {
        let r = build(
            ApiKind::Gitea,
            "https://git.example.com/api/v1",
            &status(phase),
        );
        assert_eq!(
            r.url,
            format!("https://git.example.com/api/v1/repos/acme/website/statuses/{SHA}")
        );
        assert_eq!(
            headers(&r),
            [
                ("Authorization", "token t0ken"),
                ("Accept", "application/json"),
                ("Content-Type", "application/json"),
            ]
        );
        assert_eq!(
            body(&r),
            json!({
                "state": state,
                "target_url": "https://deploy.example.com/jobs/42",
                "description": "deploy 42",
                "context": "deployhook/website/0",
            }),
            "{phase:?}"
        );
    }
}

#[test]
fn bitbucket_cloud_build_status_for_every_phase() {
    let expected = [
        (Phase::Queued, "INPROGRESS"),
        (Phase::Running, "INPROGRESS"),
        (Phase::Succeeded, "SUCCESSFUL"),
        (Phase::Failed, "FAILED"),
        (Phase::Error, "FAILED"),
        (Phase::Cancelled, "STOPPED"),
    ];
    for (phase, state) in expected {
        let r = build(
            ApiKind::BitbucketCloud,
            "https://api.bitbucket.org/2.0",
            &status(phase),
        );
        assert_eq!(
            r.url,
            format!(
                "https://api.bitbucket.org/2.0/repositories/acme/website/commit/{SHA}/statuses/build"
            )
        );
        assert_eq!(
            headers(&r),
            [
                ("Authorization", "Bearer t0ken"),
                ("Accept", "application/json"),
                ("Content-Type", "application/json"),
            ]
        );
        assert_eq!(
            body(&r),
            json!({
                "key": "deployhook/website/0",
                "state": state,
                "name": "deployhook/website/0",
                "url": "https://deploy.example.com/jobs/42",
                "description": "deploy 42",
            }),
            "{phase:?}"
        );
    }
}

#[test]
fn bitbucket_data_center_build_status_for_every_phase() {
    let expected = [
        (Phase::Queued, "INPROGRESS"),
        (Phase::Running, "INPROGRESS"),
        (Phase::Succeeded, "SUCCESSFUL"),
        (Phase::Failed, "FAILED"),
        (Phase::Error, "FAILED"),
        (Phase::Cancelled, "CANCELLED"),
    ];
    for (phase, state) in expected {
        let s = Status {
            repository: "ACME/website",
            ..status(phase)
        };
        let r = build(
            ApiKind::BitbucketDataCenter,
            "https://bitbucket.example.com",
            &s,
        );
        assert_eq!(
            r.url,
            format!(
                "https://bitbucket.example.com/rest/api/latest/projects/ACME/repos/website/commits/{SHA}/builds"
            )
        );
        assert_eq!(
            headers(&r),
            [
                ("Authorization", "Bearer t0ken"),
                ("Accept", "application/json"),
                ("Content-Type", "application/json"),
            ]
        );
        assert_eq!(
            body(&r),
            json!({
                "key": "deployhook/website/0",
                "state": state,
                "url": "https://deploy.example.com/jobs/42",
                "name": "deployhook/website/0",
                "description": "deploy 42",
            }),
            "{phase:?}"
        );
    }
}

#[test]
fn the_body_bytes_are_compact_json() {
    let r = build(
        ApiKind::Github,
        "https://api.github.com",
        &status(Phase::Succeeded),
    );
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        r#"{"context":"deployhook/website/0","description":"deploy 42","state":"success","target_url":"https://deploy.example.com/jobs/42"}"#
    );
}

#[test]
fn a_trailing_slash_on_the_api_url_is_dropped() {
    let r = build(
        ApiKind::Github,
        "https://ghe.example.com/api/v3/",
        &status(Phase::Queued),
    );
    assert_eq!(
        r.url,
        format!("https://ghe.example.com/api/v3/repos/acme/website/statuses/{SHA}")
    );
    let r = build(
        ApiKind::Gitlab,
        "https://gitlab.example.com/api/v4/",
        &status(Phase::Queued),
    );
    assert!(
        r.url
            .starts_with("https://gitlab.example.com/api/v4/projects/"),
        "{}",
        r.url
    );
}

#[test]
fn default_api_urls() {
    assert_eq!(
        default_api_url(ApiKind::Github),
        Some("https://api.github.com")
    );
    assert_eq!(
        default_api_url(ApiKind::Gitlab),
        Some("https://gitlab.com/api/v4")
    );
    assert_eq!(
        default_api_url(ApiKind::BitbucketCloud),
        Some("https://api.bitbucket.org/2.0")
    );
    assert_eq!(default_api_url(ApiKind::Gitea), None);
    assert_eq!(default_api_url(ApiKind::BitbucketDataCenter), None);
}

// ---- links ----

#[test]
fn without_a_link_github_gitlab_and_gitea_send_none() {
    let s = Status {
        target_url: None,
        ..status(Phase::Running)
    };
    for (kind, api) in [
        (ApiKind::Github, "https://api.github.com"),
        (ApiKind::Gitlab, "https://gitlab.com/api/v4"),
        (ApiKind::Gitea, "https://git.example.com/api/v1"),
    ] {
        let b = body(&build(kind, api, &s));
        assert!(b.get("target_url").is_none(), "{kind:?}: {b}");
    }
}

#[test]
fn without_a_link_bitbucket_links_to_the_commit() {
    let s = Status {
        target_url: None,
        ..status(Phase::Running)
    };
    let r = build(ApiKind::BitbucketCloud, "https://api.bitbucket.org/2.0", &s);
    assert_eq!(
        body(&r)["url"],
        format!("https://bitbucket.org/acme/website/commits/{SHA}")
    );
    let s = Status {
        repository: "~JDOE/web site",
        ..s
    };
    let r = build(
        ApiKind::BitbucketDataCenter,
        "https://bitbucket.example.com/",
        &s,
    );
    assert_eq!(
        body(&r)["url"],
        format!("https://bitbucket.example.com/projects/~JDOE/repos/web%20site/commits/{SHA}")
    );
}

// ---- paths ----

#[test]
fn a_gitlab_project_path_is_one_encoded_segment() {
    let s = Status {
        repository: "group/sub group/my.project",
        ..status(Phase::Queued)
    };
    let r = build(ApiKind::Gitlab, "https://gitlab.example.com/api/v4", &s);
    assert_eq!(
        r.url,
        format!(
            "https://gitlab.example.com/api/v4/projects/group%2Fsub%20group%2Fmy.project/statuses/{SHA}"
        )
    );
    let s = Status {
        repository: "1234",
        ..s
    };
    let r = build(ApiKind::Gitlab, "https://gitlab.example.com/api/v4", &s);
    assert_eq!(
        r.url,
        format!("https://gitlab.example.com/api/v4/projects/1234/statuses/{SHA}")
    );
}

#[test]
fn a_bitbucket_data_center_path_is_encoded_per_segment() {
    let s = Status {
        repository: "~JDOE/repo?x#y%2F",
        ..status(Phase::Queued)
    };
    let r = build(
        ApiKind::BitbucketDataCenter,
        "https://bitbucket.example.com",
        &s,
    );
    assert_eq!(
        r.url,
        format!(
            "https://bitbucket.example.com/rest/api/latest/projects/~JDOE/repos/repo%3Fx%23y%252F/commits/{SHA}/builds"
        )
    );
}

#[test]
fn non_ascii_names_are_percent_encoded_as_utf8() {
    let s = Status {
        repository: "åcme/wébsite",
        ..status(Phase::Queued)
    };
    let r = build(ApiKind::Gitea, "https://git.example.com/api/v1", &s);
    assert_eq!(
        r.url,
        format!("https://git.example.com/api/v1/repos/%C3%A5cme/w%C3%A9bsite/statuses/{SHA}")
    );
}

#[test]
fn repositories_that_could_leave_their_path_are_refused() {
    let two_part = [
        "acme",
        "/website",
        "acme/",
        "acme//website",
        "../website",
        "acme/..",
        "./website",
        "acme/.",
        "acme/web/site",
        "",
    ];
    for kind in [
        ApiKind::Github,
        ApiKind::Gitea,
        ApiKind::BitbucketCloud,
        ApiKind::BitbucketDataCenter,
    ] {
        for repository in two_part {
            let s = Status {
                repository,
                ..status(Phase::Queued)
            };
            assert_eq!(
                status_request(kind, "https://forge.example.com", TOKEN, &s),
                Err(RequestError::Repository(repository.to_owned())),
                "{kind:?} {repository:?}"
            );
        }
    }
    for repository in [
        "group/../other",
        "group//project",
        "..",
        "group/.",
        "/group/p",
        "group/p/",
        "",
    ] {
        let s = Status {
            repository,
            ..status(Phase::Queued)
        };
        assert_eq!(
            status_request(ApiKind::Gitlab, "https://gitlab.com/api/v4", TOKEN, &s),
            Err(RequestError::Repository(repository.to_owned())),
            "{repository:?}"
        );
    }
    // Dots inside a name are ordinary.
    let s = Status {
        repository: "acme/..website",
        ..status(Phase::Queued)
    };
    assert!(status_request(ApiKind::Github, "https://api.github.com", TOKEN, &s).is_ok());
}

#[test]
fn a_sha_must_be_40_or_64_hex_digits() {
    let sha256 = "a".repeat(64);
    for (sha, ok) in [
        (SHA, true),
        (sha256.as_str(), true),
        (&SHA[..39], false),
        ("../../../../../../../../../../../../user", false),
        ("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1g", false),
        ("", false),
    ] {
        let s = Status {
            sha,
            ..status(Phase::Queued)
        };
        let r = status_request(ApiKind::Github, "https://api.github.com", TOKEN, &s);
        if ok {
            assert!(r.is_ok(), "{sha}");
        } else {
            assert_eq!(r, Err(RequestError::Sha(sha.to_owned())));
        }
    }
    let d = Deployment {
        repository: "acme/website",
        sha: "main",
        environment: "production",
        description: "",
    };
    assert_eq!(
        deployment_request("https://api.github.com", TOKEN, &d),
        Err(RequestError::Sha("main".to_owned()))
    );
}

// ---- text and limits ----

#[test]
fn control_characters_in_a_description_become_spaces() {
    let s = Status {
        description: "line one\nline two\r\n\ttabbed\u{1b}[31m\u{7f}",
        ..status(Phase::Failed)
    };
    for (kind, api, field) in [
        (ApiKind::Github, "https://api.github.com", "description"),
        (ApiKind::Gitlab, "https://gitlab.com/api/v4", "description"),
        (
            ApiKind::Gitea,
            "https://git.example.com/api/v1",
            "description",
        ),
        (
            ApiKind::BitbucketCloud,
            "https://api.bitbucket.org/2.0",
            "description",
        ),
        (
            ApiKind::BitbucketDataCenter,
            "https://bb.example.com",
            "description",
        ),
    ] {
        let b = body(&build(kind, api, &s));
        assert_eq!(b[field], "line one line two   tabbed [31m ", "{kind:?}");
    }
}

#[test]
fn github_description_is_cut_to_its_limit() {
    let long = "é".repeat(GITHUB_DESCRIPTION_MAX + 1);
    let s = Status {
        description: &long,
        ..status(Phase::Failed)
    };
    let b = body(&build(ApiKind::Github, "https://api.github.com", &s));
    let d = b["description"].as_str().unwrap();
    assert_eq!(d.chars().count(), GITHUB_DESCRIPTION_MAX);
    assert!(d.ends_with("é…"), "{d}");
    // At the limit nothing is cut.
    let exact = "x".repeat(GITHUB_DESCRIPTION_MAX);
    let s = Status {
        description: &exact,
        ..s
    };
    let b = body(&build(ApiKind::Github, "https://api.github.com", &s));
    assert_eq!(b["description"], exact);
}

#[test]
fn github_context_is_cut_to_its_limit_and_stays_distinct() {
    let a = format!("{}a", "c".repeat(GITHUB_CONTEXT_MAX));
    let b = format!("{}b", "c".repeat(GITHUB_CONTEXT_MAX));
    let context = |c: &str| {
        let s = Status {
            context: c,
            ..status(Phase::Queued)
        };
        body(&build(ApiKind::Github, "https://api.github.com", &s))["context"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (ca, cb) = (context(&a), context(&b));
    assert_eq!(ca.chars().count(), GITHUB_CONTEXT_MAX);
    assert_eq!(cb.chars().count(), GITHUB_CONTEXT_MAX);
    assert_ne!(ca, cb);
    assert!(ca.starts_with(&"c".repeat(GITHUB_CONTEXT_MAX - 17)), "{ca}");
    assert_eq!(context(&a), ca, "the same context is cut the same way");
}

#[test]
fn github_deployment_status_description_is_cut_to_its_limit() {
    let long = "d".repeat(1000);
    let d = DeploymentStatus {
        repository: "acme/website",
        deployment_id: 1,
        phase: Phase::Failed,
        description: &long,
        log_url: None,
        environment: "production",
    };
    let b = body(&deployment_status_request("https://api.github.com", TOKEN, &d).unwrap());
    assert_eq!(
        b["description"].as_str().unwrap().chars().count(),
        GITHUB_DESCRIPTION_MAX
    );
}

#[test]
fn gitlab_description_is_cut_to_its_limit() {
    let long = "g".repeat(GITLAB_DESCRIPTION_MAX * 3);
    let s = Status {
        description: &long,
        ..status(Phase::Failed)
    };
    let b = body(&build(ApiKind::Gitlab, "https://gitlab.com/api/v4", &s));
    let d = b["description"].as_str().unwrap();
    assert_eq!(d.chars().count(), GITLAB_DESCRIPTION_MAX);
    assert!(d.ends_with("g…"));
}

#[test]
fn gitlab_target_url_past_its_limit_is_left_out() {
    let base = "https://deploy.example.com/";
    let fits = format!("{base}{}", "u".repeat(GITLAB_TARGET_URL_MAX - base.len()));
    let over = format!("{fits}u");
    for (url, kept) in [(&fits, true), (&over, false)] {
        let s = Status {
            target_url: Some(url),
            ..status(Phase::Running)
        };
        let b = body(&build(ApiKind::Gitlab, "https://gitlab.com/api/v4", &s));
        assert_eq!(
            b.get("target_url").is_some(),
            kept,
            "{} characters",
            url.len()
        );
    }
}

#[test]
fn bitbucket_cloud_key_is_cut_to_its_limit_and_stays_distinct() {
    let fits = "k".repeat(BITBUCKET_CLOUD_KEY_MAX);
    let a = format!("{fits}/a");
    let b = format!("{fits}/b");
    let sent = |c: &str| {
        let s = Status {
            context: c,
            ..status(Phase::Queued)
        };
        body(&build(
            ApiKind::BitbucketCloud,
            "https://api.bitbucket.org/2.0",
            &s,
        ))
    };
    assert_eq!(sent(&fits)["key"], fits);
    let (ba, bb) = (sent(&a), sent(&b));
    let (ka, kb) = (ba["key"].as_str().unwrap(), bb["key"].as_str().unwrap());
    assert_eq!(ka.chars().count(), BITBUCKET_CLOUD_KEY_MAX);
    assert_eq!(kb.chars().count(), BITBUCKET_CLOUD_KEY_MAX);
    assert_ne!(ka, kb);
    assert!(ka.starts_with("kkkkkkkkkkkkkkkkkkkkkkk~"), "{ka}");
    assert_eq!(ba["name"], a, "the name shows the whole context");
}

#[test]
fn bitbucket_data_center_fields_are_cut_to_their_limit_in_utf16() {
    // U+1F680 counts 2 in Java's String.length.
    let long = "🚀".repeat(BITBUCKET_DC_FIELD_MAX);
    let s = Status {
        repository: "ACME/website",
        context: &long,
        description: &long,
        ..status(Phase::Failed)
    };
    let b = body(&build(
        ApiKind::BitbucketDataCenter,
        "https://bb.example.com",
        &s,
    ));
    for field in ["key", "name", "description"] {
        let v = b[field].as_str().unwrap();
        assert!(
            v.encode_utf16().count() <= BITBUCKET_DC_FIELD_MAX,
            "{field}"
        );
        assert!(
            v.encode_utf16().count() >= BITBUCKET_DC_FIELD_MAX - 1,
            "{field}"
        );
    }
    let ascii = "n".repeat(BITBUCKET_DC_FIELD_MAX + 1);
    let s = Status {
        context: &ascii,
        description: &ascii,
        ..s
    };
    let b = body(&build(
        ApiKind::BitbucketDataCenter,
        "https://bb.example.com",
        &s,
    ));
    for field in ["key", "name", "description"] {
        assert_eq!(
            b[field].as_str().unwrap().encode_utf16().count(),
            BITBUCKET_DC_FIELD_MAX,
            "{field}"
        );
    }
    assert_ne!(b["key"], b["name"], "the key ends in a hash, the name in …");
}

#[test]
fn bitbucket_data_center_url_past_its_limit_links_to_the_commit() {
    let base = "https://deploy.example.com/";
    let fits = format!("{base}{}", "u".repeat(BITBUCKET_DC_URL_MAX - base.len()));
    let over = format!("{fits}u");
    for (url, kept) in [(&fits, true), (&over, false)] {
        let s = Status {
            repository: "ACME/website",
            target_url: Some(url),
            ..status(Phase::Running)
        };
        let b = body(&build(
            ApiKind::BitbucketDataCenter,
            "https://bb.example.com",
            &s,
        ));
        let expected = if kept {
            url.clone()
        } else {
            format!("https://bb.example.com/projects/ACME/repos/website/commits/{SHA}")
        };
        assert_eq!(b["url"], expected);
    }
}

#[test]
fn cutting_is_at_character_boundaries() {
    assert_eq!(cut("abcdef", 4, chars), "abc…");
    assert_eq!(cut("abcd", 4, chars), "abcd");
    assert_eq!(cut("ééééé", 3, chars), "éé…");
    assert_eq!(cut("🚀🚀🚀", 4, utf16), "🚀…");
    assert_eq!(cut("abc", 0, chars), "");
    assert_eq!(cut_unique("short", 40, chars), "short");
}

// ---- GitHub deployments ----

#[test]
fn github_deployment_request() {
    let d = Deployment {
        repository: "acme/website",
        sha: SHA,
        environment: "production",
        description: "deployhook: website",
    };
    let r = deployment_request("https://api.github.com/", TOKEN, &d).unwrap();
    assert_eq!(
        r.url,
        "https://api.github.com/repos/acme/website/deployments"
    );
    assert_eq!(
        headers(&r),
        [
            ("Authorization", "Bearer t0ken"),
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
            ("Content-Type", "application/json"),
        ]
    );
    assert_eq!(
        body(&r),
        json!({
            "ref": SHA,
            "task": "deploy",
            "auto_merge": false,
            "required_contexts": [],
            "environment": "production",
            "description": "deployhook: website",
        })
    );
}

#[test]
fn github_deployment_status_for_every_phase() {
    let expected = [
        (Phase::Queued, "queued"),
        (Phase::Running, "in_progress"),
        (Phase::Succeeded, "success"),
        (Phase::Failed, "failure"),
        (Phase::Error, "error"),
        (Phase::Cancelled, "error"),
    ];
    for (phase, state) in expected {
        let d = DeploymentStatus {
            repository: "acme/website",
            deployment_id: 1_234_567_890_123,
            phase,
            description: "deploy 42",
            log_url: Some("https://deploy.example.com/jobs/42/log"),
            environment: "production",
        };
        let r = deployment_status_request("https://api.github.com", TOKEN, &d).unwrap();
        assert_eq!(
            r.url,
            "https://api.github.com/repos/acme/website/deployments/1234567890123/statuses"
        );
        assert_eq!(
            r.headers[0],
            ("Authorization".to_owned(), "Bearer t0ken".to_owned())
        );
        assert_eq!(
            body(&r),
            json!({
                "state": state,
                "log_url": "https://deploy.example.com/jobs/42/log",
                "description": "deploy 42",
                "environment": "production",
            }),
            "{phase:?}"
        );
    }
    let d = DeploymentStatus {
        repository: "acme/website",
        deployment_id: 7,
        phase: Phase::Running,
        description: "",
        log_url: None,
        environment: "staging",
    };
    let b = body(&deployment_status_request("https://api.github.com", TOKEN, &d).unwrap());
    assert!(b.get("log_url").is_none(), "{b}");
}

#[test]
fn deployment_id_reads_githubs_answer() {
    assert_eq!(
        deployment_id(
            r#"{"url":"https://api.github.com/repos/acme/website/deployments/1","id":1,"sha":"a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d"}"#
        ),
        Some(1)
    );
    assert_eq!(
        deployment_id(r#"{"id": 9007199254740993}"#),
        Some(9_007_199_254_740_993)
    );
    assert_eq!(
        deployment_id(r#"{"message":"Auto-merged master into topic-branch on deployment."}"#),
        None
    );
    assert_eq!(deployment_id(r#"{"id":"1"}"#), None);
    assert_eq!(deployment_id(r#"{"id":-1}"#), None);
    assert_eq!(deployment_id("not json"), None);
}

// ---- answers ----

#[test]
fn gitlab_repeating_a_state_is_done() {
    let body = |m: &str| json!({ "message": m }).to_string();
    let done = [
        "Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")",
        "Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via \"enqueue\")",
        "Cannot transition status via :enqueue from :running (Reason(s): Status cannot transition via \"enqueue\")",
        "Cannot transition status via :success from :success (Reason(s): Status cannot transition via \"success\")",
        "Cannot transition status via :drop from :failed (Reason(s): Status cannot transition via \"drop\")",
        "Cannot transition status via :cancel from :canceled (Reason(s): Status cannot transition via \"cancel\")",
    ];
    for m in done {
        assert!(already_done(ApiKind::Gitlab, 400, &body(m)), "{m}");
    }
    // Not JSON: the text itself is read.
    assert!(already_done(
        ApiKind::Gitlab,
        400,
        "Cannot transition status via :run from :running"
    ));
    let not_done = [
        "Cannot transition status via :run from :success (Reason(s): Status cannot transition via \"run\")",
        "Cannot transition status via :drop from :success",
        "Cannot transition status via :frobnicate from :frobnicated",
        "Cannot transition status",
        "state does not have a valid value",
    ];
    for m in not_done {
        assert!(!already_done(ApiKind::Gitlab, 400, &body(m)), "{m}");
    }
    let repeat = body(done[0]);
    assert!(!already_done(ApiKind::Gitlab, 422, &repeat));
    assert!(!already_done(ApiKind::Gitlab, 500, &repeat));
    for kind in [
        ApiKind::Github,
        ApiKind::Gitea,
        ApiKind::BitbucketCloud,
        ApiKind::BitbucketDataCenter,
    ] {
        assert!(!already_done(kind, 400, &repeat), "{kind:?}");
    }
}

#[test]
fn error_messages_per_forge() {
    let github = r#"{"message":"Validation Failed","errors":[{"resource":"Status","code":"custom","field":"description","message":"description is too long (maximum is 140 characters)"},{"resource":"Status","field":"state","code":"missing_field"}],"documentation_url":"https://docs.github.com/rest/commits/statuses#create-a-commit-status","status":"422"}"#;
    assert_eq!(
        error_message(ApiKind::Github, github),
        "Validation Failed: description is too long (maximum is 140 characters); state: missing_field"
    );
    assert_eq!(
        error_message(
            ApiKind::Github,
            r#"{"message":"Not Found","documentation_url":"x"}"#
        ),
        "Not Found"
    );
    assert_eq!(
        error_message(ApiKind::Gitlab, r#"{"message":"404 Project Not Found"}"#),
        "404 Project Not Found"
    );
    assert_eq!(
        error_message(
            ApiKind::Gitlab,
            r#"{"message":{"name":["is too long (maximum is 255 characters)"],"ref":["can't be blank"]}}"#
        ),
        "name is too long (maximum is 255 characters); ref can't be blank"
    );
    assert_eq!(
        error_message(
            ApiKind::Gitlab,
            r#"{"error":"state does not have a valid value"}"#
        ),
        "state does not have a valid value"
    );
    assert_eq!(
        error_message(
            ApiKind::Gitea,
            r#"{"message":"token is required","url":"https://git.example.com/api/swagger"}"#
        ),
        "token is required"
    );
    assert_eq!(
        error_message(
            ApiKind::BitbucketCloud,
            r#"{"type":"error","error":{"message":"key: Ensure this value has at most 40 characters (it has 48).","fields":{"key":["Ensure this value has at most 40 characters (it has 48)."]}}}"#
        ),
        "key: Ensure this value has at most 40 characters (it has 48)."
    );
    assert_eq!(
        error_message(
            ApiKind::BitbucketCloud,
            r#"{"type":"error","error":{"message":"Resource not found","detail":"There is no API hosted at this URL."}}"#
        ),
        "Resource not found: There is no API hosted at this URL."
    );
    assert_eq!(
        error_message(
            ApiKind::BitbucketDataCenter,
            r#"{"errors":[{"context":null,"message":"Please specify a valid url","exceptionName":null}]}"#
        ),
        "Please specify a valid url"
    );
}

#[test]
fn an_error_answer_without_a_known_message_is_shown_itself() {
    let html = "<html>\n<head><title>502 Bad Gateway</title></head>\n</html>\n";
    assert_eq!(
        error_message(ApiKind::Github, html),
        "<html> <head><title>502 Bad Gateway</title></head> </html>"
    );
    assert_eq!(
        error_message(ApiKind::Gitea, r#"{"message":""}"#),
        r#"{"message":""}"#
    );
    assert_eq!(error_message(ApiKind::Gitlab, ""), "");
}

#[test]
fn error_messages_are_one_short_line() {
    let noisy = json!({ "message": "bad\n\u{1b}[2Jthing\r\n\u{0}here" }).to_string();
    assert_eq!(error_message(ApiKind::Gitea, &noisy), "bad [2Jthing here");
    let long = "e".repeat(ERROR_MESSAGE_MAX * 4);
    let m = error_message(ApiKind::Github, &long);
    assert_eq!(m.chars().count(), ERROR_MESSAGE_MAX);
    assert!(m.ends_with("e…"));
}

#[test]
fn debug_output_hides_the_token() {
    for kind in [ApiKind::Github, ApiKind::Gitlab, ApiKind::Gitea] {
        let r = build(kind, "https://forge.example.com", &status(Phase::Queued));
        let shown = format!("{r:?}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("deployhook/website/0"), "{shown}");
    }
}

// ---- GitHub's OpenAPI request schemas ----

#[test]
fn the_fragment_says_where_it_came_from() {
    let fragment: Value = serde_json::from_str(FRAGMENT).unwrap();
    assert!(
        fragment["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("@octokit/openapi ")),
        "{}",
        fragment["source"]
    );
    assert_eq!(fragment["license"], "MIT");
    assert_eq!(
        fragment["extracted_by"],
        "scripts/github-openapi-fragment.sh"
    );
    for op in [STATUSES_OP, DEPLOYMENTS_OP, DEPLOYMENT_STATUSES_OP] {
        assert!(fragment["operations"][op].is_object(), "{op}");
    }
}

#[test]
fn github_commit_statuses_match_githubs_schema() {
    let schema = schema(STATUSES_OP);
    let long = "x".repeat(1000);
    for phase in Phase::ALL {
        for s in [
            status(phase),
            Status {
                target_url: None,
                description: "",
                ..status(phase)
            },
            Status {
                context: &long,
                description: &long,
                ..status(phase)
            },
        ] {
            let b = body(&build(ApiKind::Github, "https://api.github.com", &s));
            assert_eq!(
                check(&schema, &b, Objects::Closed),
                Ok(()),
                "{phase:?}: {b}"
            );
        }
    }
}

#[test]
fn github_deployments_match_githubs_schema() {
    let d = Deployment {
        repository: "acme/website",
        sha: SHA,
        environment: "production",
        description: "deployhook: website",
    };
    let b = body(&deployment_request("https://api.github.com", TOKEN, &d).unwrap());
    assert_eq!(
        check(&schema(DEPLOYMENTS_OP), &b, Objects::Closed),
        Ok(()),
        "{b}"
    );

    let schema = schema(DEPLOYMENT_STATUSES_OP);
    for phase in Phase::ALL {
        for log_url in [Some("https://deploy.example.com/jobs/1/log"), None] {
            let d = DeploymentStatus {
                repository: "acme/website",
                deployment_id: 1,
                phase,
                description: "deploy 1",
                log_url,
                environment: "production",
            };
            let b = body(&deployment_status_request("https://api.github.com", TOKEN, &d).unwrap());
            assert_eq!(
                check(&schema, &b, Objects::Closed),
                Ok(()),
                "{phase:?}: {b}"
            );
        }
    }
}

#[test]
fn the_schema_check_can_fail() {
    let statuses = schema(STATUSES_OP);
    let bad_state = json!({ "state": "running", "context": "c" });
    let problems = check(&statuses, &bad_state, Objects::AsWritten).unwrap_err();
    assert!(
        problems[0].starts_with("$.state: \"running\" is not one of"),
        "{problems:?}"
    );

    let missing = json!({ "context": "c", "description": "d" });
    assert_eq!(
        check(&statuses, &missing, Objects::AsWritten),
        Err(vec!["$: required property \"state\" is missing".to_owned()])
    );

    let wrong_type = json!({ "state": "success", "context": 7 });
    assert_eq!(
        check(&statuses, &wrong_type, Objects::AsWritten),
        Err(vec!["$.context: a number is not of type string".to_owned()])
    );

    // A misspelt field passes as GitHub wrote the schema, and fails closed.
    let misspelt = json!({ "state": "success", "targt_url": "https://x.example" });
    assert_eq!(check(&statuses, &misspelt, Objects::AsWritten), Ok(()));
    assert_eq!(
        check(&statuses, &misspelt, Objects::Closed),
        Err(vec!["$.targt_url: not a property of the schema".to_owned()])
    );

    // `nullable` allows null, and only where it is said.
    let nulls = json!({ "state": "success", "target_url": null, "description": null });
    assert_eq!(check(&statuses, &nulls, Objects::Closed), Ok(()));
    let null_context = json!({ "state": "success", "context": null });
    assert!(check(&statuses, &null_context, Objects::Closed).is_err());

    let deployments = schema(DEPLOYMENTS_OP);
    let bad = json!({ "ref": SHA, "auto_merge": "false", "required_contexts": [1] });
    let problems = check(&deployments, &bad, Objects::Closed).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    // `payload` is oneOf an object or a string.
    assert_eq!(
        check(
            &deployments,
            &json!({ "ref": "r", "payload": { "a": 1 } }),
            Objects::Closed
        ),
        Ok(())
    );
    assert!(
        check(
            &deployments,
            &json!({ "ref": "r", "payload": 1 }),
            Objects::Closed
        )
        .is_err()
    );

    let deployment_statuses = schema(DEPLOYMENT_STATUSES_OP);
    assert!(
        check(
            &deployment_statuses,
            &json!({ "state": "cancelled" }),
            Objects::Closed
        )
        .is_err()
    );
}

#[test]
fn the_schema_check_refuses_keywords_it_does_not_know() {
    let schema = json!({ "type": "string", "pattern": "^a" });
    assert_eq!(
        check(&schema, &json!("b"), Objects::AsWritten),
        Err(vec![
            "$: schema keyword \"pattern\" is not supported".to_owned()
        ])
    );
    let lengths = json!({ "type": ["string", "null"], "minLength": 2, "maxLength": 3 });
    assert_eq!(check(&lengths, &json!("ab"), Objects::AsWritten), Ok(()));
    assert_eq!(check(&lengths, &Value::Null, Objects::AsWritten), Ok(()));
    assert!(check(&lengths, &json!("a"), Objects::AsWritten).is_err());
    assert!(check(&lengths, &json!("abcd"), Objects::AsWritten).is_err());
    let any = json!({ "anyOf": [{ "type": "integer" }, { "enum": [1.5] }] });
    assert_eq!(check(&any, &json!(1.5), Objects::AsWritten), Ok(()));
    assert!(check(&any, &json!("1"), Objects::AsWritten).is_err());
}
