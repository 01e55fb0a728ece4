//! The status page: plain HTML that reloads itself (a meta refresh, no
//! JavaScript), listing running and recent builds with their steps.

use super::metrics::Metrics;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// Escape text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page.
pub fn render(m: &Metrics) -> String {
    let hits = m.cache_hits.load(Relaxed);
    let misses = m.cache_misses.load(Relaxed);
    let ratio = match hits + misses {
        0 => "-".to_string(),
        n => format!("{:.0}%", 100.0 * hits as f64 / n as f64),
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>rbuild serve</title><style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}\
         .running{{color:#06c}}.failed{{color:#c00}}.cached{{color:#888}}</style></head><body>\
         <h1>rbuild serve</h1><p id=\"summary\">running: {} · queued: {} · builds: {} · cache hit ratio: {ratio}</p>",
        m.running.load(Relaxed),
        m.queued.load(Relaxed),
        m.builds.load(Relaxed),
    );
    s.push_str("<h2>Builds</h2>");
    for b in m.recent() {
        let cls = b.state.split(' ').next().unwrap_or("");
        let _ = write!(
            s,
            "<div class=\"build\" id=\"build-{}\" data-state=\"{}\"><h3 class=\"{cls}\">#{} {} ({:.1}s)</h3><table>",
            b.id,
            esc(&b.state),
            b.id,
            esc(&b.state),
            b.seconds
        );
        for st in &b.steps {
            let secs = st.seconds.map(|x| format!("{x:.1}s")).unwrap_or_default();
            let _ = write!(
                s,
                "<tr class=\"{}\"><td>#{}</td><td>{}</td><td>{}</td><td>{secs}</td></tr>",
                st.state,
                st.id,
                esc(&st.name),
                st.state
            );
        }
        s.push_str("</table></div>");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Event;

    #[test]
    fn shows_builds_and_escapes_step_names() {
        let m = Metrics::default();
        let id = m.begin();
        m.set_state(id, "running");
        m.event(
            id,
            &Event::Started {
                id: 1,
                name: "RUN echo <b>".into(),
            },
        );
        let page = render(&m);
        assert!(page.contains("data-state=\"running\""), "{page}");
        assert!(page.contains("RUN echo &lt;b&gt;"), "{page}");
        assert!(page.contains("http-equiv=\"refresh\""));
    }
}
