//! Two things an answer of ours must get right that webrtc-rs 0.21 leaves to us, as pure
//! functions over the SDP text (the peer task applies them):
//!
//! - **The DTLS role stays what the first exchange made it** (RFC 8842 section 5.5). webrtc-rs
//!   answers every offer with `a=setup:active`, even on a connection where it is the DTLS server
//!   (it offered first and the peer answered `active`). webrtc-rs itself ignores `a=setup` after
//!   the first exchange, but browsers refuse an answer that would swap roles ("Failed to set SSL
//!   role"). [`DtlsRole`] remembers the role and rewrites the answers we send to say it. (The
//!   answer set locally stays as webrtc-rs made it: it refuses any other.)
//! - **Every track I send gets an m-section.** An answer can only use the m-sections of the
//!   offer: a track the offer had no room for (a screen shared before the peer's first offer
//!   arrived, say) is left out, and nothing else would ever offer it. [`carries_all`] tells the
//!   peer task to make an offer of its own after such an answer.

/// My DTLS role on one connection, fixed by its first completed offer/answer exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DtlsRole {
    /// `Some(true)`: I am the DTLS server (`passive`); `Some(false)`: the client (`active`).
    server: Option<bool>,
}

impl DtlsRole {
    /// True when I am known to be the DTLS server.
    #[cfg(test)]
    pub fn is_server(&self) -> bool {
        self.server == Some(true)
    }

    /// The peer's answer to my offer was applied: its `a=setup` is its role, I have the other.
    /// Only the first exchange counts (later ones cannot change the DTLS association).
    pub fn learn_from_their_answer(&mut self, sdp: &str) {
        if self.server.is_none() {
            self.server = setup(sdp).map(|theirs| theirs == Setup::Active);
        }
    }

    /// My answer to their offer was set: its `a=setup` is my role (first exchange only).
    pub fn learn_from_my_answer(&mut self, sdp: &str) {
        if self.server.is_none() {
            self.server = setup(sdp).map(|mine| mine == Setup::Passive);
        }
    }

    /// My answer with every `a=setup` line saying the role I already have (unchanged while the
    /// role is not known yet, i.e. in the first exchange).
    pub fn keep_in_answer(&self, sdp: &str) -> String {
        let Some(server) = self.server else {
            return sdp.to_owned();
        };
        let role = if server { "passive" } else { "active" };
        sdp.split_inclusive('\n')
            .map(|line| {
                let (text, end) = split_line_end(line);
                match text.strip_prefix("a=setup:") {
                    Some("active" | "passive") => format!("a=setup:{role}{end}"),
                    _ => line.to_owned(),
                }
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    Active,
    Passive,
}

/// The first definite `a=setup` of a description (answers say the same in every m-section).
fn setup(sdp: &str) -> Option<Setup> {
    sdp.lines()
        .find_map(|l| match l.trim_end().strip_prefix("a=setup:") {
            Some("active") => Some(Setup::Active),
            Some("passive") => Some(Setup::Passive),
            _ => None,
        })
}

fn split_line_end(line: &str) -> (&str, &str) {
    let text = line.trim_end_matches(['\r', '\n']);
    (text, &line[text.len()..])
}

/// True when every one of `ssrcs` (the tracks I send) is signalled in a sending m-section of
/// `sdp` (my local description).
pub fn carries_all(sdp: &str, ssrcs: impl IntoIterator<Item = u32>) -> bool {
    let sending: Vec<u32> = sdp
        .split("\nm=")
        .skip(1)
        .filter(|section| {
            section.lines().any(|l| {
                let l = l.trim_end();
                l == "a=sendrecv" || l == "a=sendonly"
            })
        })
        .flat_map(|section| {
            section.lines().filter_map(|l| {
                l.strip_prefix("a=ssrc:")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u32>().ok())
            })
        })
        .collect();
    ssrcs.into_iter().all(|s| sending.contains(&s))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;

    /// The shape webrtc-rs 0.21 answers with (trimmed to what matters here).
    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:active\r\na=mid:0\r\na=sendrecv\r\n\
        a=msid:huddle audio-0000002a\r\na=ssrc:42 cname:huddle\r\na=ssrc:42 msid:huddle audio-0000002a\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=setup:active\r\na=mid:1\r\na=recvonly\r\n";

    #[test]
    fn the_first_exchange_fixes_the_role_and_later_answers_keep_it() {
        // I offered first; the peer answered `active`: I am the DTLS server from now on.
        let mut role = DtlsRole::default();
        assert_eq!(
            role.keep_in_answer(ANSWER),
            ANSWER,
            "unknown role: untouched"
        );
        role.learn_from_their_answer(ANSWER);
        assert!(role.is_server());
        // A later answer of mine says `passive` everywhere, and nothing else changes.
        let kept = role.keep_in_answer(ANSWER);
        assert_eq!(kept.matches("a=setup:passive\r\n").count(), 2, "{kept}");
        assert!(!kept.contains("a=setup:active"));
        assert_eq!(kept.replace("a=setup:passive", "a=setup:active"), ANSWER);
        // Later exchanges do not move it.
        role.learn_from_my_answer(ANSWER);
        role.learn_from_their_answer(&ANSWER.replace("active", "passive"));
        assert!(role.is_server());
    }

    #[test]
    fn an_answerer_keeps_the_client_role_it_took() {
        let mut role = DtlsRole::default();
        role.learn_from_my_answer(ANSWER);
        assert!(!role.is_server());
        assert_eq!(role.keep_in_answer(ANSWER), ANSWER);
        // Even if webrtc-rs said otherwise later, the answer says the role I have.
        let swapped = ANSWER.replace("a=setup:active", "a=setup:passive");
        assert_eq!(role.keep_in_answer(&swapped), ANSWER);
    }

    #[test]
    fn an_offer_role_is_not_a_role() {
        let mut role = DtlsRole::default();
        role.learn_from_their_answer("v=0\r\nm=audio 9 X 0\r\na=setup:actpass\r\n");
        assert_eq!(role, DtlsRole::default());
        assert_eq!(
            role.keep_in_answer("a=setup:actpass\r\n"),
            "a=setup:actpass\r\n"
        );
    }

    #[test]
    fn a_track_left_out_of_the_answer_is_noticed() {
        assert!(carries_all(ANSWER, [42]));
        assert!(carries_all(ANSWER, []));
        // 7 (say, a screen shared before the offer arrived) has no m-section.
        assert!(!carries_all(ANSWER, [42, 7]));
        // Signalled in a section that does not send: not carried.
        let receiving = ANSWER.replace("a=sendrecv", "a=recvonly");
        assert!(!carries_all(&receiving, [42]));
        // Plain `\n` line ends work too.
        assert!(carries_all(&ANSWER.replace("\r\n", "\n"), [42]));
    }
}
