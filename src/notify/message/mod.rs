//! What deployhook says about a deploy, as each kind of target wants it: Slack, Discord,
//! Microsoft Teams (Workflows), Matrix, ntfy and deployhook's own webhook JSON. Pure
//! functions from a [`Notice`] to a [`Body`]; sending, signing and retrying are elsewhere.
//!
//! Much of a notice comes from a forge's payload or a deploy command's output (ref, pusher,
//! summary), so none of it is trusted. Every such part goes through the same two steps:
//! `clean` (control and bidi characters replaced, cut to [`PART_MAX_CHARS`]), then the
//! target's own escaping, chosen from that target's documentation (named at each function).
//! Only our own fixed words and the job link (built from `public_url`) are not escaped, and
//! the link is still percent-encoded so that it cannot break out of its syntax.

#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::io;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::store::EventKind;

/// The most characters of one untrusted part (ref, pusher, reason, summary...) a message
/// carries; a longer one is cut and ends in `…`. Keeps every message short whatever a
/// payload holds.
pub const PART_MAX_CHARS: usize = 200;

/// Discord's limit on a message's `content` ("up to 2000 characters", Execute Webhook).
/// Counted here in UTF-16 code units, which is never fewer than characters, so the limit
/// holds whichever way Discord counts.
pub const DISCORD_MAX_CONTENT: usize = 2000;

/// ntfy's default `message-size-limit` (4,096 bytes since v1.11.0): a longer body is kept
/// as an attachment instead of being shown, so ours is cut to fit.
pub const NTFY_MAX_BODY: usize = 4096;

/// Discord's `SUPPRESS_EMBEDS` message flag (1 << 2), one of the two flags Execute Webhook
/// lets a webhook set: a URL in a commit message gets no preview card.
const DISCORD_SUPPRESS_EMBEDS: u64 = 1 << 2;

/// One thing to tell: a job's event, or a test message.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    /// The hook's config id (`[A-Za-z0-9._-]`).
    pub hook: &'a str,
    /// The rule's name or index.
    pub rule: &'a str,
    pub repository: &'a str,
    /// The full ref, `refs/heads/main`; from the payload, so untrusted.
    pub git_ref: &'a str,
    /// 40 hex digits.
    pub sha: &'a str,
    /// From the payload: untrusted (`@everyone`, `<!channel>`, markdown, newlines...).
    pub pusher: Option<&'a str>,
    pub kind: EventKind,
    /// Why, in our words ("command 2 failed: exit status 1"), which may quote config.
    pub reason: &'a str,
    /// One line a deploy command wrote: untrusted.
    pub summary: Option<&'a str>,
    pub duration: Option<Duration>,
    /// The job's page (`https://deploy.example.com/ui/jobs/12`) when `public_url` is set.
    pub link: Option<&'a str>,
    pub job: i64,
    pub attempt: u32,
    /// When the event happened.
    pub at: SystemTime,
    /// `deployhook notify test NAME`: no deploy ran, and the message says so.
    pub test: bool,
}

/// A body to send, with its content type and any extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

const JSON: &str = "application/json";

/// What happened, as words that follow "deploy of main @ 1a2b3c4".
pub fn state_words(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Queued => "is queued",
        EventKind::Started => "started",
        EventKind::Succeeded => "succeeded",
        EventKind::Failed => "failed",
        EventKind::TimedOut => "timed out",
        EventKind::Cancelled => "was cancelled",
        EventKind::Superseded => "was superseded",
        EventKind::Interrupted => "was interrupted",
        EventKind::Requeued => "was queued again",
        EventKind::Held => "is held (the hook is paused)",
        EventKind::Released => "is queued (the hook was resumed)",
    }
}

/// The notice as one line of plain text: "website/0: deploy of main @ 1a2b3c4 by alice
/// failed after 12s: command 2 failed: exit status 1". Untrusted parts are cleaned,
/// nothing is escaped: for targets that show text as it is (Matrix, ntfy, logs).
pub fn headline(n: &Notice) -> String {
    line(n, str::to_owned)
}

/// Slack incoming webhook (Slack's "Sending messages using incoming webhooks": a JSON
/// `{"text": ...}` POSTed to the hook's URL). The text is mrkdwn, so every untrusted part
/// gets Slack's documented escaping ("Formatting text for app surfaces", "Escaping text":
/// `&`, `<` and `>` and only those become `&amp;`, `&lt;`, `&gt;`). That is what makes
/// `<!channel>`, `<@U123>` and `<http://evil|innocent>` plain text (a bare `@channel`
/// is only linked with `link_names`, which is never set). Slack documents no escape for its styling characters
/// (`*bold*`, `_italic_`, `~strike~`, backticks), so an untrusted part may still be
/// styled, but it cannot link, mention, or start a line (it never comes first), which is
/// what `>` quoting needs. The job link is ours: `<url|job 12>`.
pub fn slack(n: &Notice) -> Body {
    let mut text = line(n, slack_escape);
    if let Some(url) = n.link.and_then(safe_url) {
        let _ = write!(text, " <{}|job {}>", slack_escape(&url), n.job);
    }
    json_body(&json!({ "text": text }))
}

/// Discord webhook (Discord's "Execute Webhook": JSON with `content`, at most
/// [`DISCORD_MAX_CONTENT`]). `allowed_mentions` is always `{"parse": []}` ("Allowed
/// Mentions Object": an empty `parse` means no mention in the content notifies anyone),
/// so `@everyone`, `@here` or `<@id>` in a commit pings nobody. Every ASCII punctuation
/// character of an untrusted part is backslash-escaped, which is how Discord's markdown
/// shows a character as itself: no bold, links (`[x](http://evil)`), headings, spoilers,
/// emoji or mention pills come from a payload. `SUPPRESS_EMBEDS` is set so that a URL in
/// a summary gets no preview card either. The job link is ours, in `<...>`.
pub fn discord(n: &Notice) -> Body {
    let suffix = n
        .link
        .and_then(safe_url)
        .map(|url| format!(" <{url}>"))
        .unwrap_or_default();
    let budget = DISCORD_MAX_CONTENT.saturating_sub(suffix.encode_utf16().count());
    let content = cut_escaped(line(n, discord_escape), budget) + &suffix;
    json_body(&json!({
        "content": content,
        "allowed_mentions": { "parse": [] },
        "flags": DISCORD_SUPPRESS_EMBEDS,
    }))
}

/// Microsoft Teams, through a Workflows flow "Post to a channel when a webhook request is
/// received" (Teams' "Create and send messages": Workflows take Adaptive Cards only, not
/// the retired connectors' MessageCard): a `message` with one adaptive-card attachment.
///
/// Adaptive Cards render a markdown subset in `TextBlock` and in `FactSet` titles and
/// values ("Text features"; Teams' "Text formatting in cards"), and document no way to
/// escape it. `RichTextBlock` does not parse markdown ("RichTextBlock does not support
/// markdown"), so every line here is a `RichTextBlock` of `TextRun`s: untrusted text is
/// shown as written, with nothing to escape and no escaping scheme to get wrong. The job
/// link is an `Action.OpenUrl` button.
pub fn teams(n: &Notice) -> Body {
    let run = |text: String| json!({ "type": "TextRun", "text": text });
    let block = |inlines: Vec<Value>| json!({ "type": "RichTextBlock", "inlines": inlines });
    let mut title = run(title(n, true));
    title["weight"] = json!("Bolder");
    title["size"] = json!("Medium");
    title["color"] = json!(teams_color(n));
    let mut context = clean(n.repository);
    let _ = write!(context, " · job {}", n.job);
    if n.attempt > 1 {
        let _ = write!(context, " · attempt {}", n.attempt);
    }
    let mut context = run(context);
    context["isSubtle"] = json!(true);
    context["size"] = json!("Small");
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [block(vec![title]), block(vec![run(headline(n))]), block(vec![context])],
    });
    if let Some(url) = n.link.and_then(safe_url) {
        card["actions"] = json!([{
            "type": "Action.OpenUrl",
            "title": format!("Open job {}", n.job),
            "url": url,
        }]);
    }
    json_body(&json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    }))
}

/// Matrix: the content of an `m.room.message` event, for [`matrix_path`] (client-server
/// API, "m.notice": for automated clients, which bots watching the room ignore, so two
/// bots never answer each other). Only the plain `body`, never `format` or
/// `formatted_body`, so no HTML is ever produced from a payload; the job link follows
/// the headline as a bare URL, which clients linkify. `m.mentions` is empty ("User and
/// room mentions", Matrix 1.7): the event mentions nobody, and homeservers then skip the
/// legacy body-matching push rules, so `@room` or a display name in a pusher notifies no one.
pub fn matrix(n: &Notice) -> Body {
    let mut body = headline(n);
    if let Some(url) = n.link.and_then(safe_url) {
        let _ = write!(body, " — {url}");
    }
    json_body(&json!({ "msgtype": "m.notice", "body": body, "m.mentions": {} }))
}

/// The path to `PUT` a [`matrix`] body to: `/_matrix/client/v3/rooms/{roomId}/send/
/// m.room.message/{txnId}` (client-server API, "PUT .../send/{eventType}/{txnId}"). The
/// room id (`!abc123:example.org`) and transaction id are path segments, so everything but
/// RFC 3986's unreserved characters is percent-encoded (`!` is `%21`, `:` is `%3A`).
pub fn matrix_path(room: &str, txn_id: &str) -> String {
    format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        percent_encode(room),
        percent_encode(txn_id)
    )
}

/// ntfy publish (ntfy's "Publishing": the message is the plain request body; `Title`,
/// `Tags`, `Priority` and `Click` headers). The body is the [`headline`], cut to
/// [`NTFY_MAX_BODY`] bytes; no `Markdown` header, so ntfy shows it as plain text. Header
/// values cannot carry a line break, so the title is made only of the hook id and our
/// state words (never payload text), tags and priority are fixed words, and the link is
/// percent-encoded ASCII.
pub fn ntfy(n: &Notice) -> Body {
    let mut headers = vec![
        ("Title".to_owned(), title(n, false)),
        ("Tags".to_owned(), ntfy_tags(n).to_owned()),
        ("Priority".to_owned(), ntfy_priority(n).to_owned()),
    ];
    if let Some(url) = n.link.and_then(safe_url) {
        headers.push(("Click".to_owned(), url));
    }
    debug_assert!(headers.iter().all(|(_, v)| header_safe(v)), "{headers:?}");
    Body {
        content_type: "text/plain; charset=utf-8",
        headers,
        body: cut_bytes(headline(n), NTFY_MAX_BODY).into_bytes(),
    }
}

/// deployhook's own webhook, in the Standard Webhooks payload shape (`type`, `timestamp`,
/// `data`; the signature headers are added by the sender). `type` is `deploy.<state>`
/// (`deploy.failed`, `deploy.timed_out`...) or `deploy.test`; `timestamp` is when the
/// event happened, RFC 3339 UTC with milliseconds. `id` is the message id the signature
/// covers, repeated in `data`. Values are passed as they are (a program reads them, and
/// JSON encoding escapes what needs it); the bidi and line-separator characters JSON
/// allows raw are written as `\u` escapes all the same, so no byte of the body can
/// reorder text in a log or terminal that shows it.
pub fn webhook(n: &Notice, id: &str) -> Body {
    let kind = if n.test { "test" } else { n.kind.as_str() };
    json_body(&json!({
        "type": format!("deploy.{kind}"),
        "timestamp": crate::joblog::timestamp(n.at),
        "data": {
            "job": n.job,
            "hook": n.hook,
            "rule": n.rule,
            "repository": n.repository,
            "ref": n.git_ref,
            "sha": n.sha,
            "pusher": n.pusher,
            "state": n.kind.as_str(),
            "reason": n.reason,
            "summary": n.summary,
            "duration_ms": n.duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            "url": n.link,
            "attempt": n.attempt,
            "id": id,
        },
    }))
}

/// The one line every chat message is built on, with each variable part passed through
/// `esc` (the target's escaping) after [`clean`]; our own words are not.
fn line(n: &Notice, esc: fn(&str) -> String) -> String {
    let part = |s: &str| esc(&clean(s));
    let mut out = format!("{}/{}: ", part(n.hook), part(n.rule));
    let reason = part(n.reason);
    if n.test {
        out.push_str("test message from deployhook, no deploy ran");
        if !reason.is_empty() {
            let _ = write!(out, ": {reason}");
        }
        return out;
    }
    let _ = write!(
        out,
        "deploy of {} @ {}",
        part(short_ref(n.git_ref)),
        part(&n.sha.chars().take(7).collect::<String>())
    );
    if let Some(pusher) = n.pusher.map(part).filter(|p| !p.is_empty()) {
        let _ = write!(out, " by {pusher}");
    }
    let _ = write!(out, " {}", state_words(n.kind));
    if let Some(d) = n.duration {
        let _ = write!(out, " after {}", for_people(d));
    }
    let summary = n.summary.map(part).unwrap_or_default();
    let tail: Vec<&str> = [reason.as_str(), summary.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if !tail.is_empty() {
        let _ = write!(out, ": {}", tail.join(" — "));
    }
    out
}

/// "website/0: deploy failed", "website: deploy is queued", "website: test message": our
/// words and config ids only, so it can be a header.
fn title(n: &Notice, with_rule: bool) -> String {
    let mut out = header_word(n.hook);
    if with_rule {
        out.push('/');
        out.push_str(&clean(n.rule));
    }
    if n.test {
        out.push_str(": test message");
    } else {
        let _ = write!(out, ": deploy {}", state_words(n.kind));
    }
    out
}

/// `main` for `refs/heads/main`, `v1.2` for `refs/tags/v1.2`, any other ref in full.
fn short_ref(git_ref: &str) -> &str {
    git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(git_ref)
}

/// An untrusted part made fit to show on one line: line breaks and tabs become spaces,
/// other control characters and the bidi embeddings, overrides, isolates and marks (which
/// can make `exe.txt` read as `txt.exe`) become U+FFFD, and the whole is cut to
/// [`PART_MAX_CHARS`].
fn clean(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.trim().chars().enumerate() {
        if i == PART_MAX_CHARS {
            out.pop();
            out.push('…');
            break;
        }
        out.push(match c {
            '\n' | '\r' | '\t' | '\u{85}' | '\u{2028}' | '\u{2029}' => ' ',
            c if is_hidden(c) => '\u{FFFD}',
            c => c,
        });
    }
    out
}

/// Characters that are not shown but change what is around them.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// Slack's three: `&`, `<`, `>`.
fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A backslash before every ASCII punctuation character: Discord's markdown shows `\*` as
/// `*`, and escaping them all (not a list of today's syntax) also covers syntax Discord
/// adds later (`-#` subtext was added in 2024).
fn discord_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `s` cut to `max` UTF-16 code units, ending in `…` when cut; never leaves a lone
/// backslash of [`discord_escape`] that would escape the `…`.
fn cut_escaped(s: String, max: usize) -> String {
    if s.encode_utf16().count() <= max {
        return s;
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() > max.saturating_sub(1) {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    if out.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1 {
        out.pop();
    }
    out.push('…');
    out
}

/// `s` cut to at most `max` bytes, on a character boundary, ending in `…` when cut.
fn cut_bytes(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

/// The job link, if it is an http(s) URL, with every byte that could end its syntax in a
/// message or header (space, controls, `<>|"\^`{}`, non-ASCII) percent-encoded. The URL is
/// ours (from `public_url`), so this is a guarantee, not a filter.
fn safe_url(link: &str) -> Option<String> {
    let lower = link.get(..8).unwrap_or(link).to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let mut out = String::with_capacity(link.len());
    for b in link.bytes() {
        if b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Some(out)
}

/// One path segment: everything but RFC 3986's unreserved characters percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A config id as it may go in a header: its own characters kept, any other replaced.
fn header_word(s: &str) -> String {
    s.chars()
        .take(PART_MAX_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A header value: printable ASCII and spaces, so never a line break.
fn header_safe(v: &str) -> bool {
    v.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// ntfy tags that are emoji short codes (ntfy's "Tags & emojis"), one per state.
fn ntfy_tags(n: &Notice) -> &'static str {
    if n.test {
        return "test_tube";
    }
    match n.kind {
        EventKind::Queued => "hourglass_flowing_sand",
        EventKind::Started => "rocket",
        EventKind::Succeeded => "white_check_mark",
        EventKind::Failed => "x",
        EventKind::TimedOut => "alarm_clock",
        EventKind::Cancelled => "no_entry_sign",
        EventKind::Superseded => "fast_forward",
        EventKind::Interrupted => "warning",
        EventKind::Requeued => "repeat",
        EventKind::Held => "pause_button",
        EventKind::Released => "arrow_forward",
    }
}

/// ntfy priorities (ntfy's "Message priority"): a deploy that did not finish is `high`
/// (a long vibration), one on its way `low` (no sound), an outcome `default`.
fn ntfy_priority(n: &Notice) -> &'static str {
    if n.test {
        return "default";
    }
    match n.kind {
        EventKind::Failed | EventKind::TimedOut | EventKind::Interrupted => "high",
        EventKind::Succeeded | EventKind::Cancelled => "default",
        EventKind::Queued
        | EventKind::Started
        | EventKind::Superseded
        | EventKind::Requeued
        | EventKind::Held
        | EventKind::Released => "low",
    }
}

/// The title's colour, from the Adaptive Cards `TextRun.color` values.
fn teams_color(n: &Notice) -> &'static str {
    if n.test {
        return "Accent";
    }
    match n.kind {
        EventKind::Succeeded => "Good",
        EventKind::Failed | EventKind::TimedOut | EventKind::Interrupted => "Attention",
        EventKind::Cancelled | EventKind::Superseded => "Warning",
        EventKind::Queued
        | EventKind::Started
        | EventKind::Requeued
        | EventKind::Held
        | EventKind::Released => "Default",
    }
}

/// `350ms`, `12s`, `4m 5s`, `2h 3m`: how long, for people.
fn for_people(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{secs}s"),
        60..3600 if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ if secs % 3600 / 60 == 0 => format!("{}h", secs / 3600),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

fn json_body(v: &Value) -> Body {
    let mut body = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut body, EscapeHidden);
    serde::Serialize::serialize(v, &mut ser).expect("a JSON value always serializes");
    Body {
        content_type: JSON,
        headers: Vec::new(),
        body,
    }
}

/// serde_json's compact output, with the characters JSON lets through raw but that a
/// terminal or log viewer acts on (DEL, C1 controls, bidi controls, U+2028/U+2029)
/// written as `\uXXXX`: the decoded value is the same, the bytes are inert.
struct EscapeHidden;

impl serde_json::ser::Formatter for EscapeHidden {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_hidden(c) || matches!(c, '\u{2028}' | '\u{2029}') {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}
