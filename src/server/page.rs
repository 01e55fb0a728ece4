//! The status page: plain HTML that reloads itself (a meta refresh, no
//! JavaScript), listing running and recent builds with their steps and
//! timings, the cache hit ratio, the store's size and the warm runs. Every
//! string that comes from a client or a config is escaped.

use super::metrics::{BuildView, Metrics};
use super::warm::record::WarmRun;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// Warm runs shown.
const WARM_RUNS: usize = 20;

/// The warm runs and the run in progress (trigger, seconds so far).
pub type WarmView = (Vec<WarmRun>, Option<(String, f64)>);

/// Escape text for HTML (element content and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The `token` of a query (`/?token=T`, percent-decoded), as the page
/// may be opened with.
pub fn query_token(uri: &axum::http::Uri) -> Option<String> {
    let raw = uri
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))?;
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// Bytes as B, KiB, MiB, GiB.
pub fn human(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut i) = (n as f64, 0);
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SSZ` (UTC).
fn when(secs: u64) -> String {
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let t = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

const HEAD: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"2\"><title>rbuild serve</title><style>\
body{font-family:sans-serif;margin:1em 2em}td,th{padding:2px 8px;text-align:left}\
table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}\
.running{color:#06c}.failed{color:#c00}.cached,.unchanged{color:#888}\
.succeeded,.built,.ok{color:#080}.label{font-family:monospace}</style></head><body>";

/// The page.
pub fn render(m: &Metrics, warm: Option<&WarmView>) -> String {
    let hits = m.cache_hits.load(Relaxed);
    let misses = m.cache_misses.load(Relaxed);
    let ratio = match hits + misses {
        0 => "-".to_string(),
        n => format!("{:.0}%", 100.0 * hits as f64 / n as f64),
    };
    let mut s = String::from(HEAD);
    let _ = write!(
        s,
        "<h1>rbuild serve</h1><p id=\"summary\">running: {} · queued: {} · builds: {} · \
         cache hit ratio: <span id=\"hit-ratio\">{ratio}</span> ({hits} hits, {} from imported caches; {misses} run) · \
         store: <span id=\"store-size\">{}</span></p>",
        m.running.load(Relaxed),
        m.queued.load(Relaxed),
        m.builds.load(Relaxed),
        m.cache_hits_imported.load(Relaxed),
        human(m.store_bytes.load(Relaxed)),
    );
    let builds = m.recent();
    let (running, done): (Vec<_>, Vec<_>) = builds
        .iter()
        .partition(|b| b.state == "running" || b.state == "queued");
    s.push_str("<h2>Running builds</h2>");
    if running.is_empty() {
        s.push_str("<p>none</p>");
    }
    running.iter().for_each(|b| build(&mut s, b));
    s.push_str("<h2>Recent builds</h2>");
    done.iter().for_each(|b| build(&mut s, b));
    if let Some(w) = warm {
        warm_runs(&mut s, w);
    }
    s.push_str("</body></html>\n");
    s
}

/// One build with its steps.
fn build(s: &mut String, b: &BuildView) {
    let cls = b.state.split(' ').next().unwrap_or("");
    let _ = write!(
        s,
        "<div class=\"build\" id=\"build-{id}\" data-state=\"{st}\"><h3><span class=\"{cls}\">#{id} {st}</span> \
         <span class=\"label\">{label}</span> ({secs:.1}s, started {start})</h3>",
        id = b.id,
        st = esc(&b.state),
        cls = esc(cls),
        label = esc(&b.label),
        secs = b.seconds,
        start = when(b.started),
    );
    if b.steps.is_empty() {
        s.push_str("</div>");
        return;
    }
    s.push_str(
        "<table><tr><th>step</th><th>name</th><th>state</th><th>cache</th><th>time</th></tr>",
    );
    for st in &b.steps {
        let secs = match (st.seconds, st.state) {
            (Some(x), _) => format!("{x:.2}s"),
            (None, "running") => format!("{:.0}s…", st.seconds_so_far()),
            _ => String::new(),
        };
        let _ = write!(
            s,
            "<tr class=\"step {state}\"><td>#{}</td><td>{}</td><td>{state}</td><td>{}</td><td>{secs}</td></tr>",
            st.id,
            esc(&st.name),
            st.source.unwrap_or(""),
            state = st.state,
        );
    }
    s.push_str("</table></div>");
}

/// The warm runs, newest first.
fn warm_runs(s: &mut String, (runs, running): &WarmView) {
    s.push_str("<h2>Warm runs</h2>");
    if let Some((trigger, secs)) = running {
        let _ = write!(
            s,
            "<p id=\"warm-running\" class=\"running\">a run ({}) is in progress: {secs:.0}s</p>",
            esc(trigger)
        );
    }
    if runs.is_empty() {
        s.push_str("<p>none yet</p>");
        return;
    }
    s.push_str(
        "<table id=\"warm\"><tr><th>run</th><th>started</th><th>trigger</th><th>result</th>\
         <th>time</th><th>bases</th><th>projects</th></tr>",
    );
    for r in runs.iter().take(WARM_RUNS) {
        let mut bases = String::new();
        for b in &r.bases {
            let d = b.digest.as_deref().unwrap_or("?");
            let short = d.get(..19).unwrap_or(d);
            let note = match (&b.error, b.changed) {
                (Some(e), _) => format!(" <span class=\"failed\">{}</span>", esc(e)),
                (None, true) => " (changed)".into(),
                _ => String::new(),
            };
            let _ = write!(bases, "{} {}{note}<br>", esc(&b.reference), esc(short));
        }
        let mut projects = String::new();
        for p in &r.projects {
            let _ = write!(
                projects,
                "<span class=\"{res}\">{} {res}</span> {:.1}s{}{}<br>",
                esc(&p.name),
                p.seconds,
                p.build.map(|b| format!(" build #{b}")).unwrap_or_default(),
                if p.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", esc(&p.reason))
                },
                res = esc(&p.result),
            );
        }
        let _ = write!(
            s,
            "<tr class=\"warm-run\" id=\"warm-{}\"><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"{res}\">{res}</td><td>{:.1}s</td><td>{bases}</td><td>{projects}</td></tr>",
            r.id,
            r.id,
            when(r.started),
            esc(&r.trigger),
            r.seconds,
            res = esc(&r.result),
        );
    }
    s.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Event;

    #[test]
    fn shows_builds_and_escapes_what_clients_send() {
        let m = Metrics::default();
        let id = m.begin();
        m.set_state(id, "running");
        m.describe(id, "-t x<script>alert(1)</script>");
        m.event(
            id,
            &Event::Started {
                id: 1,
                name: "RUN echo <b>'\"".into(),
            },
        );
        let page = render(&m, None);
        assert!(page.contains("data-state=\"running\""), "{page}");
        assert!(page.contains("RUN echo &lt;b&gt;&#39;&quot;"), "{page}");
        assert!(
            page.contains("x&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("http-equiv=\"refresh\""));
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(when(0), "1970-01-01 00:00:00Z");
        assert_eq!(when(1_700_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(when(951_782_400), "2000-02-29 00:00:00Z");
        let uri: axum::http::Uri = "/?a=1&token=s%2Fx+y".parse().unwrap();
        assert_eq!(query_token(&uri).as_deref(), Some("s/x y"));
    }
}
