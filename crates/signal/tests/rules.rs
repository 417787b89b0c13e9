//! The shipped rules against real clients: every member is signed in as its peer id (see
//! `common::SECRET`), honest flows pass, and what one member forges as another is refused.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{admin, client_as, pid, signaling, Peer, T};
use serde_json::{json, Value};
use signal::room::{JoinOptions, LeaveReason, Privacy, RoomEvent, SignalError};
use signal::rtdb::RtdbError;

fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, RtdbError>) {
    match r {
        Err(e) if e.is_permission_denied() => {}
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// Waits until `path` reads as `want` (as the administrator sees it).
async fn until_value(url: &str, path: &str, want: Value) {
    let db = admin(url);
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let now = db.get(path).await.unwrap();
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} is {now}, not {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn session_of(ev: &RoomEvent) -> String {
    match ev {
        RoomEvent::Joined { session } => session.clone(),
        other => panic!("expected Joined, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_cannot_forge_records_messages_or_deletions_of_others() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    // The room is created by someone who is not in it: a and b are plain members.
    let room = signaling(&url, &pid("host"))
        .create_room("Forgeries", Privacy::Public)
        .await
        .unwrap();
    let (a, b) = (pid("a"), pid("b"));
    let (ha, mut ea) = signaling(&url, &a)
        .join(&room, JoinOptions::new("Ann"))
        .await
        .unwrap();
    let a_session = session_of(&ea.recv().await.unwrap());
    let mut pb = Peer::join(&url, &room, &b).await;
    let b_record = admin(&url)
        .get(&format!("occupants/{room}/{b}"))
        .await
        .unwrap();
    let b_session = b_record["session"].as_str().unwrap().to_owned();

    let as_a = client_as(&url, &a);
    let as_b = client_as(&url, &b);
    // An occupant record is its owner's only.
    refused(
        "a rewrites b's record",
        as_a.set(&format!("occupants/{room}/{b}"), &b_record).await,
    );
    refused(
        "a rewrites b's streams",
        as_a.update(
            &format!("occupants/{room}/{b}"),
            json!({"streams": {"audio": true, "video": true, "screen": true}})
                .as_object()
                .unwrap(),
        )
        .await,
    );
    refused(
        "a deletes b, who is alive",
        as_a.delete(&format!("occupants/{room}/{b}")).await,
    );
    // Messages are their sender's only, from its current session to the receiver's.
    let offer = |session: &str, to: &str| json!({"session": session, "to": to, "seq": 9, "sdp": "v=0 forged"});
    refused(
        "b sends itself an offer as a",
        as_b.set(
            &format!("offers/{room}/{b}/{a}"),
            &offer(&a_session, &b_session),
        )
        .await,
    );
    refused(
        "a offers from a session that is not its current one",
        as_a.set(
            &format!("offers/{room}/{b}/{a}"),
            &offer("oldSession000001", &b_session),
        )
        .await,
    );
    refused(
        "a offers to a session of b that is not its current one",
        as_a.set(
            &format!("offers/{room}/{b}/{a}"),
            &offer(&a_session, "oldSession000001"),
        )
        .await,
    );
    let candidate = json!({"session": a_session, "to": b_session, "candidate": {"candidate": "candidate:1 1 udp 1 192.0.2.9 9 typ host"}});
    refused(
        "b pushes a candidate as a",
        as_b.push(&format!("ice_candidates/{room}/{b}/{a}"), &candidate)
            .await,
    );
    // The same candidate from a itself goes through and reaches b.
    as_a.push(&format!("ice_candidates/{room}/{b}/{a}"), &candidate)
        .await
        .unwrap();
    pb.until("a's candidate", |e| {
        matches!(e, RoomEvent::Candidate { .. })
    })
    .await;
    // Inboxes are their receiver's to read.
    refused(
        "a reads b's offers",
        as_a.get(&format!("offers/{room}/{b}")).await,
    );
    refused(
        "a reads b's candidates",
        as_a.get(&format!("ice_candidates/{room}/{b}")).await,
    );
    as_b.get(&format!("offers/{room}/{b}")).await.unwrap();
    // A room is its creator's to destroy.
    let by_a = signaling(&url, &a);
    assert!(
        matches!(
            by_a.destroy_room(&room, None).await,
            Err(SignalError::PermissionDenied(_))
        ),
        "a member destroys a room it did not create"
    );
    refused(
        "a wipes the room's occupants",
        as_a.delete(&format!("occupants/{room}")).await,
    );
    // The creator may remove a live member (moderation): b is evicted and comes back.
    client_as(&url, &pid("host"))
        .delete(&format!("occupants/{room}/{b}"))
        .await
        .unwrap();
    assert_eq!(pb.next().await, RoomEvent::Evicted);
    drop(ha);
    signaling(&url, &pid("host"))
        .destroy_room(&room, None)
        .await
        .unwrap();
    pb.until("the room closes", |e| matches!(e, RoomEvent::RoomClosed))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_did_not_create_the_room_removes_a_stale_one_and_its_leftovers() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = signaling(&url, &pid("host"))
        .create_room("Stale", Privacy::Public)
        .await
        .unwrap();
    let mut a = Peer::join(&url, &room, &pid("a")).await;
    // A member whose heartbeat stops at once (its process died), with an offer left for a.
    let ghost = pid("ghost");
    let admin = admin(&url);
    admin
        .set(
            &format!("occupants/{room}/{ghost}"),
            &json!({"name": "Ghost", "session": "ghostSession0001", "joinedAt": {".sv": "timestamp"},
                "seen": {".sv": "timestamp"}, "streams": {"audio": false, "video": false, "screen": false}}),
        )
        .await
        .unwrap();
    let a_session = admin
        .get(&format!("occupants/{room}/{}/session", pid("a")))
        .await
        .unwrap();
    admin
        .set(
            &format!("offers/{room}/{}/{ghost}", pid("a")),
            &json!({"session": "ghostSession0001", "to": a_session, "seq": 1, "sdp": "v=0"}),
        )
        .await
        .unwrap();
    // Before it is stale, a may not remove it.
    refused(
        "a removes the ghost while it is fresh",
        client_as(&url, &pid("a"))
            .delete(&format!("occupants/{room}/{ghost}"))
            .await,
    );
    let left = a
        .until("the ghost expiring", |e| {
            matches!(e, RoomEvent::MemberLeft { .. })
        })
        .await;
    assert_eq!(
        left,
        RoomEvent::MemberLeft {
            peer_id: ghost.clone(),
            reason: LeaveReason::Expired
        }
    );
    until_value(&url, &format!("occupants/{room}/{ghost}"), Value::Null).await;
    until_value(&url, &format!("offers/{room}"), Value::Null).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_room_is_destroyed_by_its_creator_only() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let owner = signaling(&url, &pid("owner"));
    let room = owner
        .create_room("Plans", Privacy::Private("hunter2".into()))
        .await
        .unwrap();
    // The space's owner record was written with the room.
    let spaces = admin(&url).get("spaces").await.unwrap();
    let (space, record) = spaces.as_object().unwrap().iter().next().unwrap();
    assert_eq!(record, &json!({"createdBy": pid("owner")}));
    let opts = JoinOptions {
        secret: Some("hunter2".into()),
        ..JoinOptions::new("Mem")
    };
    let mut m = Peer::join_with(&url, &room, &pid("member"), opts).await;
    let member = signaling(&url, &pid("member"));
    assert!(
        matches!(
            member.destroy_room(&room, Some("hunter2")).await,
            Err(SignalError::PermissionDenied(_))
        ),
        "a member with the secret destroys a private room it did not create"
    );
    refused(
        "a member takes over the space",
        client_as(&url, &pid("member"))
            .set(
                &format!("spaces/{space}"),
                &json!({"createdBy": pid("member")}),
            )
            .await,
    );
    owner.destroy_room(&room, Some("hunter2")).await.unwrap();
    m.until("the room closes", |e| matches!(e, RoomEvent::RoomClosed))
        .await;
    assert_eq!(admin(&url).get("spaces").await.unwrap(), Value::Null);
    assert_eq!(
        admin(&url)
            .get(&format!("occupants/{space}"))
            .await
            .unwrap(),
        Value::Null
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_signed_out_can_do_anything() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = signaling(&url, &pid("a"))
        .create_room("Open", Privacy::Public)
        .await
        .unwrap();
    let nobody =
        signal::rtdb::RtdbClient::new(signal::rtdb::ClientConfig::new(url.as_str())).unwrap();
    refused("list rooms", nobody.get("rooms").await);
    refused(
        "read occupants",
        nobody.get(&format!("occupants/{room}")).await,
    );
    refused(
        "join",
        nobody
            .set(
                &format!("occupants/{room}/{}", pid("z")),
                &json!({"name": "Z", "session": "zzzzSession00001", "joinedAt": 1, "seen": 1,
                    "streams": {"audio": false, "video": false, "screen": false}}),
            )
            .await,
    );
    refused(
        "delete the room",
        nobody.delete(&format!("rooms/{room}")).await,
    );
}

/// A user signed in to the database at `url`, through the sign-in endpoints at `auth_at`.
async fn signed_in(url: &str, auth_at: &str) -> Result<signal::room::Signaling, SignalError> {
    let settings = signal::auth::AuthSettings::new("any-key")
        .with_host(signal::auth::AuthHost::same_origin(auth_at));
    let auth = signal::auth::FirebaseAuth::new(settings).unwrap();
    signal::room::Signaling::sign_in(signal::rtdb::ClientConfig::new(url), auth).await
}

fn is_rules_advice(what: &str, r: Result<impl std::fmt::Debug, SignalError>) {
    match r {
        Err(SignalError::SignIn(e @ signal::auth::AuthError::RulesNotDeployed { .. })) => {
            assert!(
                e.to_string().contains("firebase deploy --only database"),
                "{what}: {e}"
            );
        }
        other => panic!("{what}: expected the advice to deploy the rules, got {other:?}"),
    }
}

/// A new project's database keeps the console's locked rules until Huddle's are deployed: the
/// first thing a signed-in user does is refused, and the refusal says to deploy the rules
/// rather than "permission denied". Under the shipped rules the same steps work, and a real
/// refusal (destroying another's room) stays a plain permission error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_default_rules_tell_a_signed_in_user_to_deploy_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked.rules.json");
    std::fs::write(&locked, r#"{"rules": {".read": false, ".write": false}}"#).unwrap();
    let mut config = rtdb::ServerConfig::new(([127, 0, 0, 1], 0).into(), dir.path().to_owned());
    config.rules_file = Some(locked);
    config.secret = Some(common::SECRET.into());
    let server = rtdb::Server::start(config).await.unwrap();
    let url = server.url();
    let room = signal::room::Signaling::new(admin(&url), pid("host"))
        .create_room("Made by the admin", Privacy::Public)
        .await
        .unwrap();

    let user = signed_in(&url, &url).await.unwrap();
    is_rules_advice("list", user.list_rooms().await);
    is_rules_advice("create", user.create_room("Mine", Privacy::Public).await);
    is_rules_advice(
        "join",
        user.join(&room, JoinOptions::new("U")).await.map(|_| ()),
    );
    drop(server);

    let (_dir, server) = common::server().await;
    let url = server.url();
    let others = signal::room::Signaling::new(client_as(&url, &pid("b")), pid("b"))
        .create_room("B's", Privacy::Public)
        .await
        .unwrap();
    let user = signed_in(&url, &url).await.unwrap();
    assert!(user
        .list_rooms()
        .await
        .unwrap()
        .iter()
        .any(|(id, _)| *id == others));
    match user.destroy_room(&others, None).await {
        Err(SignalError::PermissionDenied(_)) => {}
        other => panic!("destroying another's room: {other:?}"),
    }
}

/// Signed in at one huddle-db, pointed at another's database: the token is not one that
/// database can read, and the error names the mismatch instead of "permission denied".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_another_project_is_named_as_such() {
    let (_a_dir, a) = common::server().await;
    let (_b_dir, b) = common::server().await;
    let user = signed_in(&b.url(), &a.url()).await.unwrap();
    match user.list_rooms().await {
        Err(SignalError::SignIn(e @ signal::auth::AuthError::WrongProject { .. })) => {
            assert!(e.to_string().contains("another Firebase project"), "{e}");
        }
        other => panic!("listing another project's rooms: {other:?}"),
    }
}
