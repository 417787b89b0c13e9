//! Invite links: `huddle://join/<room>?db=<database URL>` opens the app and joins; the same
//! invite in `http(s)` form (`<database URL>/web/?room=<room>`) opens the browser client that
//! huddle-db serves, for a guest without the app.

use tauri::Url;

/// An invitation, parsed from a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub room: signal::RoomId,
    /// The database holding the room, when the link names one.
    pub db: Option<String>,
}

/// Why a link is not an invitation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// Not a URL at all.
    #[error("this is not a link: {0}")]
    NotALink(String),
    /// A URL, but not one of ours.
    #[error("this link is not a Huddle invitation")]
    NotAnInvite,
    /// The room part is missing or has characters a room id never has.
    #[error("the invitation names no valid room")]
    BadRoom,
    /// The database part is not an http(s) URL.
    #[error("the invitation's database address is not an http(s) address")]
    BadDb,
}

/// Who can use an invitation: whom its database address reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// A loopback address: only this computer.
    ThisComputer,
    /// A private or link-local address (or a `.local` name): people on the same network.
    Lan,
    /// A public name or address (a Firebase project, a host on the internet).
    Anywhere,
}

/// Whom a database at `db_url` reaches, from its address alone.
pub fn reach(db_url: &str) -> Reach {
    let Ok(url) = Url::parse(db_url) else {
        return Reach::ThisComputer;
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Reach::ThisComputer,
        Some(url::Host::Ipv4(ip)) if ip.is_private() || ip.is_link_local() => Reach::Lan,
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Reach::ThisComputer,
        // Unique local (fc00::/7) and link-local (fe80::/10) IPv6.
        Some(url::Host::Ipv6(ip))
            if (ip.segments()[0] & 0xfe00) == 0xfc00 || (ip.segments()[0] & 0xffc0) == 0xfe80 =>
        {
            Reach::Lan
        }
        Some(url::Host::Domain("localhost")) => Reach::ThisComputer,
        Some(url::Host::Domain(d)) if d.ends_with(".local") || !d.contains('.') => Reach::Lan,
        None => Reach::ThisComputer,
        Some(_) => Reach::Anywhere,
    }
}

/// The app link for `room` in the database at `db_url`.
pub fn app_link(room: &str, db_url: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("db", db_url)
        .finish();
    format!("huddle://join/{room}?{query}")
}

/// The browser form of the invitation (huddle-db serves the web client at `/web/`).
pub fn web_link(room: &str, db_url: &str) -> String {
    let base = db_url.trim_end_matches('/');
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("room", room)
        .finish();
    format!("{base}/web/?{query}")
}

/// Reads an invitation from either form.
pub fn parse(link: &str) -> Result<Invite, LinkError> {
    let url = Url::parse(link.trim()).map_err(|_| LinkError::NotALink(link.to_owned()))?;
    let query = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    let (room, db) = match url.scheme() {
        "huddle" => {
            if url.host_str() != Some("join") {
                return Err(LinkError::NotAnInvite);
            }
            let room = url.path().trim_start_matches('/').to_owned();
            (room, query("db"))
        }
        "http" | "https" => {
            let path = url.path();
            let Some(prefix) = path.strip_suffix("/web/").or(path.strip_suffix("/web")) else {
                return Err(LinkError::NotAnInvite);
            };
            let room = query("room").ok_or(LinkError::BadRoom)?;
            let mut base = url.clone();
            base.set_query(None);
            base.set_fragment(None);
            base.set_path(prefix);
            (room, Some(base.as_str().trim_end_matches('/').to_owned()))
        }
        _ => return Err(LinkError::NotAnInvite),
    };
    if !signal::room::model::valid_id(&room) {
        return Err(LinkError::BadRoom);
    }
    if let Some(db) = &db {
        if !(db.starts_with("http://") || db.starts_with("https://")) {
            return Err(LinkError::BadDb);
        }
    }
    Ok(Invite {
        room: room.into(),
        db,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_app_link_round_trips() {
        let link = app_link("standup-42", "http://192.168.1.5:9443");
        assert_eq!(
            link,
            "huddle://join/standup-42?db=http%3A%2F%2F192.168.1.5%3A9443"
        );
        assert_eq!(
            parse(&link).unwrap(),
            Invite {
                room: "standup-42".into(),
                db: Some("http://192.168.1.5:9443".into())
            }
        );
    }

    #[test]
    fn a_web_link_round_trips() {
        let link = web_link("abc", "http://10.0.0.2:9000/");
        assert_eq!(link, "http://10.0.0.2:9000/web/?room=abc");
        assert_eq!(
            parse(&link).unwrap(),
            Invite {
                room: "abc".into(),
                db: Some("http://10.0.0.2:9000".into())
            }
        );
    }

    #[test]
    fn an_address_says_who_can_use_the_link() {
        for (url, r) in [
            ("http://127.0.0.1:9000", Reach::ThisComputer),
            ("http://localhost:9000", Reach::ThisComputer),
            ("http://[::1]:9000", Reach::ThisComputer),
            ("http://192.168.1.5:9443", Reach::Lan),
            ("http://10.0.0.2:9443", Reach::Lan),
            ("http://[fd00::5]:9443", Reach::Lan),
            ("http://studio.local:9443", Reach::Lan),
            ("http://nas:9443", Reach::Lan),
            (
                "https://my-project-default-rtdb.firebaseio.com",
                Reach::Anywhere,
            ),
            ("http://203.0.113.7:9443", Reach::Anywhere),
            ("not a url", Reach::ThisComputer),
        ] {
            assert_eq!(reach(url), r, "{url}");
        }
    }

    #[test]
    fn links_without_db_and_bad_links() {
        assert_eq!(parse("huddle://join/r1").unwrap().db, None);
        assert_eq!(parse("huddle://call/r1"), Err(LinkError::NotAnInvite));
        assert_eq!(parse("huddle://join/a%20b"), Err(LinkError::BadRoom));
        assert_eq!(parse("huddle://join/"), Err(LinkError::BadRoom));
        assert_eq!(parse("huddle://join/r?db=ftp://x"), Err(LinkError::BadDb));
        assert_eq!(parse("https://x.org/page"), Err(LinkError::NotAnInvite));
        assert!(matches!(parse("not a link"), Err(LinkError::NotALink(_))));
    }
}
